#!/usr/bin/env node
// Before any test runs: checks that the Debian tools the tests drive are on PATH. As root with apt-get it
// installs the missing packages; otherwise it stops at once with the exact install line.
// Usage: node scripts/preflight.js [--check] [--vm]   (--check: never install, only report; --vm: also the
// tools of `npm run e2e:vm`, which plain `npm test` does not need)
// Environment: CAIRN_PREFLIGHT_NO_INSTALL=1 behaves like --check.
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'

/** Each command the tests run, and the Debian package that ships it. */
const TOOLS = [
  { command: 'nbdinfo', pkg: 'libnbd-bin', usedBy: 'NBD tests (export sizes, allocation maps)' },
  { command: 'nbdcopy', pkg: 'libnbd-bin', usedBy: 'NBD and backup tests (copying exports)' },
  { command: 'nbdkit', pkg: 'nbdkit', usedBy: 'data-plane tests (a reference NBD server)' },
  { command: 'qemu-img', pkg: 'qemu-utils', usedBy: 'NBD tests (qemu as an NBD client)' },
  { command: 'mkfs.ext4', pkg: 'e2fsprogs', usedBy: 'agent and disk-full tests (small real file systems)' },
  {
    command: 'debugfs',
    pkg: 'e2fsprogs',
    usedBy: 'file-system reader tests (listings to compare, damaged images)',
  },
  { command: 'sgdisk', pkg: 'gdisk', usedBy: 'file-system reader tests (GPT disks)' },
  { command: 'sfdisk', pkg: 'fdisk', usedBy: 'file-system reader tests (MBR disks with logical partitions)' },
  { command: 'mkfs.vfat', pkg: 'dosfstools', usedBy: 'file-system reader tests (FAT images)' },
  { command: 'mcopy', pkg: 'mtools', usedBy: 'file-system reader tests (filling FAT images, mdir listings)' },
  { command: 'mkntfs', pkg: 'ntfs-3g', usedBy: 'file-system reader tests (NTFS images)' },
  {
    command: 'ntfs-3g',
    pkg: 'ntfs-3g',
    usedBy: 'file-system reader tests (filling NTFS images over FUSE, as root; ntfsls/ntfsinfo listings)',
  },
  { command: 'mkfs.xfs', pkg: 'xfsprogs', usedBy: 'file-recovery tests (an XFS volume refused by name)' },
  {
    command: 'pvcreate',
    pkg: 'lvm2',
    usedBy: 'file-recovery tests (an LVM2 physical volume refused by name; as root)',
  },
  { command: 'unzip', pkg: 'unzip', usedBy: 'file-recovery tests (extracting a zip of several paths)' },
  { command: 'fls', pkg: 'sleuthkit', usedBy: 'file-system reader tests (NTFS listings to compare)' },
  { command: 'fsfreeze', pkg: 'util-linux', usedBy: 'agent tests (freezing a mounted file system)' },
  { command: 'nbdfuse', pkg: 'nbdfuse', usedBy: 'file-recovery tests (the attach script, as root)' },
  { command: 'fusermount3', pkg: 'fuse3', usedBy: 'file-recovery tests (the attach script, as root)' },
  {
    command: '/usr/bin/python3',
    module: 'nbd',
    pkg: 'python3-libnbd',
    usedBy: 'file-recovery tests (an NBD client holding a connection open)',
  },
  // `npm run build` compiles native/crc64.c (the blob API's CRC-64; without it a 6x slower fallback).
  { command: 'gcc', pkg: 'gcc', usedBy: 'the native CRC-64 of the blob API (scripts/build-native.js)' },
  {
    file: '/usr/include/string.h',
    pkg: 'libc6-dev',
    usedBy: 'the native CRC-64 of the blob API (C headers)',
  },
  { command: 'az', pkg: 'azure-cli', usedBy: 'blob API tests (the Azure CLI as a client)' },
  {
    // Debian keeps PostgreSQL's server binaries off PATH: the scratch cluster runs them from here.
    command: '/usr/lib/postgresql/15/bin/initdb',
    pkg: 'postgresql',
    usedBy: 'catalog and service tests on PostgreSQL (a throwaway cluster: initdb, pg_ctl)',
  },
  {
    // Debian's own Python, wherever PATH leads python3 (pyenv, a venv): the package installs there.
    command: '/usr/bin/python3',
    module: 'azure.storage.blob',
    pkg: 'python3-azure',
    usedBy: 'blob API tests (the Azure Storage SDK for Python as a client)',
  },
  // Debian's browser, driven by playwright-core (which never downloads a browser of its own).
  { command: '/usr/bin/chromium', pkg: 'chromium', usedBy: 'portal tests (a real browser)' },
]

/** The tools of `npm run e2e:vm` only (`--vm`): a Debian guest built and booted under QEMU. */
const VM_TOOLS = [
  { command: 'mmdebstrap', pkg: 'mmdebstrap', usedBy: 'e2e:vm (building the Debian guest image)' },
  {
    command: 'qemu-system-x86_64',
    pkg: 'qemu-system-x86',
    usedBy: 'e2e:vm (booting the guest from the NBD export)',
  },
  { command: 'debugfs', pkg: 'e2fsprogs', usedBy: 'e2e:vm (reading the guest log from a recovery point)' },
  // libvirt without libvirt-daemon-system (which pulls systemd): the test runs its own libvirtd.
  { command: 'libvirtd', pkg: 'libvirt-daemon', usedBy: 'e2e:vm (the libvirt form of docs/vms.md)' },
  {
    command: 'virsh',
    pkg: 'libvirt-clients',
    usedBy: 'e2e:vm (defining and starting the libvirt domain; cairn serve reaching its guest agent)',
  },
]
if (process.argv.includes('--vm')) TOOLS.push(...VM_TOOLS)

const executable = (path) => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const onPath = (command) =>
  isAbsolute(command)
    ? executable(command)
    : (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && executable(join(dir, command)))

/** True when the tool is there: its command on PATH and, for a Python module, importable by it. */
const present = (t) =>
  (t.file === undefined ? onPath(t.command) : existsSync(t.file)) &&
  (t.module === undefined ||
    spawnSync(t.command, ['-c', `import ${t.module}`], { stdio: 'ignore' }).status === 0)

/** The packages whose tools are missing, in TOOLS order, each once. */
function missingPackages() {
  return [...new Set(TOOLS.filter((t) => !present(t)).map((t) => t.pkg))]
}

function main() {
  const checkOnly = process.argv.includes('--check') || process.env.CAIRN_PREFLIGHT_NO_INSTALL === '1'
  let missing = missingPackages()
  if (missing.length === 0) return 0
  const line = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (!checkOnly && isRoot && onPath('apt-get')) {
    console.error(`preflight: installing the Debian packages the tests need: ${missing.join(' ')}`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    const install =
      update.status === 0
        ? spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
            stdio: 'inherit',
            env,
          })
        : update
    missing = missingPackages()
    if (install.status === 0 && missing.length === 0) return 0
  }
  const why = TOOLS.filter((t) => missing.includes(t.pkg)).map(
    (t) =>
      `  ${t.file ?? (t.module === undefined ? t.command : `${t.command} -c "import ${t.module}"`)} (${t.pkg}): ${t.usedBy}`,
  )
  console.error(
    `preflight: the tests need Debian tools that are not installed:\n${why.join('\n')}\n` +
      `Install them as root, then run the tests again:\n  ${line}`,
  )
  return 1
}

process.exitCode = main()
