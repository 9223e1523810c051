// A real Debian 12 guest for `npm run e2e:vm`: built once with mmdebstrap from the mirror the host's apt
// uses, cached (CAIRN_E2E_VM_CACHE, default ~/.cache/cairn/e2e-vm), booted with qemu-system-x86_64 (TCG;
// KVM only with CAIRN_E2E_VM_KVM=1) from Cairn's NBD export, driven through its QEMU guest agent.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { QgaSession } from '../../src/protection/index.js'

/** The writer inside the guest: numbered records, each made durable (fsync) before the next. */
const WRITER = `#!/bin/sh
set -e
mkdir -p /var/lib/writer
f=/var/lib/writer/log
i=$(($(wc -l < "$f" 2>/dev/null || echo 0) + 1))
while :; do
  printf '%08d\\n' "$i" >> "$f"
  sync "$f"
  i=$((i + 1))
done
`
const UNIT = `[Unit]
Description=Cairn test writer: numbered records, each fsynced
After=local-fs.target

[Service]
ExecStart=/usr/local/bin/cairn-writer
Restart=always

[Install]
WantedBy=multi-user.target
`
const PACKAGES = ['linux-image-amd64', 'systemd-sysv', 'udev', 'qemu-guest-agent', 'e2fsprogs', 'kmod']
/** The modules in the initrd: what mounts an ext4 root on virtio block. */
const INITRD_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4']
/** Kernel modules a guest on virtio block and serial never loads: left out of the image. */
const PRUNE = [
  'kernel/sound',
  'kernel/net',
  'kernel/drivers/net',
  'kernel/drivers/gpu',
  'kernel/drivers/media',
  'kernel/drivers/infiniband',
  'kernel/drivers/usb',
  'kernel/drivers/scsi',
  'kernel/drivers/iio',
  'kernel/drivers/hwmon',
  'kernel/drivers/staging',
  'kernel/drivers/bluetooth',
  'kernel/drivers/isdn',
]

/** The cached guest: a raw ext4 image of the root file system, and the kernel and initrd to boot it. */
export interface GuestImage {
  image: string
  kernel: string
  initrd: string
  dir: string
}

/** The host's apt sources for its own release, as files mmdebstrap takes as MIRROR (no host name here). */
function hostSources(dir: string): string[] {
  const codename = /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.trim()
  if (!codename) throw new Error('cannot tell the host release from /etc/os-release')
  const files: string[] = []
  const stanzas: string[] = []
  const lines: string[] = []
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '')
  const sourcesDir = '/etc/apt/sources.list.d'
  const names = existsSync(sourcesDir) ? readdirSync(sourcesDir).sort() : []
  for (const n of names.filter((n) => n.endsWith('.sources'))) {
    for (const st of read(join(sourcesDir, n)).split(/\n\s*\n/)) {
      const suites = /^Suites:\s*(.*)$/m.exec(st)?.[1]?.split(/\s+/) ?? []
      if (/^Types:.*\bdeb\b/m.test(st) && suites.some((s) => s === codename || s.startsWith(`${codename}-`)))
        stanzas.push(st.trim())
    }
  }
  for (const text of [
    read('/etc/apt/sources.list'),
    ...names.filter((n) => n.endsWith('.list')).map((n) => read(join(sourcesDir, n))),
  ]) {
    for (const l of text.split('\n')) {
      const words = l.trim().split(/\s+/)
      if (words[0] === 'deb' && words.some((w) => w === codename || w.startsWith(`${codename}-`)))
        lines.push(l.trim())
    }
  }
  if (stanzas.length > 0) {
    writeFileSync(join(dir, 'host.sources'), `${stanzas.join('\n\n')}\n`)
    files.push(join(dir, 'host.sources'))
  }
  if (lines.length > 0) {
    writeFileSync(join(dir, 'host.list'), `${lines.join('\n')}\n`)
    files.push(join(dir, 'host.list'))
  }
  if (files.length === 0) throw new Error(`the host's apt has no source for ${codename}`)
  return files
}

/** Builds the guest once (mmdebstrap, about 5–25 minutes), then answers the cached files. */
export function guestImage(log: (s: string) => void): GuestImage {
  const key = createHash('sha256')
    .update(JSON.stringify({ WRITER, UNIT, PACKAGES, PRUNE, INITRD_MODULES, v: 2 }))
    .digest('hex')
    .slice(0, 12)
  const root = process.env.CAIRN_E2E_VM_CACHE ?? join(homedir(), '.cache', 'cairn', 'e2e-vm')
  const dir = join(root, `debian12-${key}`)
  const out: GuestImage = {
    dir,
    image: join(dir, 'root.img'),
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
  }
  if (existsSync(join(dir, 'done'))) return out
  const work = `${dir}.building`
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  const tree = join(work, 'root')
  log(`building the guest image in ${work} with mmdebstrap (once; cached in ${dir})`)
  execFileSync(
    'mmdebstrap',
    [
      '--variant=minbase',
      `--mode=${process.getuid?.() === 0 ? 'root' : 'unshare'}`,
      `--include=${PACKAGES.join(',')}`,
      // A small initrd: only the modules that mount a virtio root (MODULES=most makes 130 MB that TCG
      // unpacks at every boot). The kernel's install makes one with none; the last hook the real one.
      `--setup-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/cairn"`,
      `--customize-hook=printf '%s\\n' ${INITRD_MODULES.join(' ')} >> "$1/etc/initramfs-tools/modules" && chroot "$1" update-initramfs -u -k all`,
      'bookworm',
      tree,
      ...hostSources(work),
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  )
  writeFileSync(join(tree, 'usr/local/bin/cairn-writer'), WRITER, { mode: 0o755 })
  writeFileSync(join(tree, 'etc/systemd/system/cairn-writer.service'), UNIT)
  execFileSync('ln', [
    '-sf',
    '/etc/systemd/system/cairn-writer.service',
    join(tree, 'etc/systemd/system/multi-user.target.wants/cairn-writer.service'),
  ])
  writeFileSync(join(tree, 'etc/fstab'), '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n')
  writeFileSync(join(tree, 'etc/hostname'), 'cairn-guest\n')
  const boot = readdirSync(join(tree, 'boot'))
  const kernel = boot.find((n) => n.startsWith('vmlinuz-'))
  const initrd = boot.find((n) => n.startsWith('initrd.img-'))
  if (!kernel || !initrd) throw new Error(`no kernel or initrd in the guest's /boot: ${boot.join(' ')}`)
  execFileSync('cp', [join(tree, 'boot', kernel), join(work, 'vmlinuz')])
  execFileSync('cp', [join(tree, 'boot', initrd), join(work, 'initrd.img')])
  for (const n of boot) rmSync(join(tree, 'boot', n), { force: true })
  for (const m of readdirSync(join(tree, 'usr/lib/modules')))
    for (const p of PRUNE) rmSync(join(tree, 'usr/lib/modules', m, p), { recursive: true, force: true })
  for (const p of ['usr/share/doc', 'usr/share/locale', 'usr/share/man', 'var/cache/apt'])
    rmSync(join(tree, p), { recursive: true, force: true })
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', tree, '-L', 'root', '-F', join(work, 'root.img'), '1G'])
  rmSync(tree, { recursive: true, force: true })
  writeFileSync(join(work, 'done'), new Date().toISOString())
  rmSync(dir, { recursive: true, force: true })
  renameSync(work, dir)
  return out
}

/** A running guest: QEMU booted from an NBD export, its serial console in a file, its agent socket. */
export interface Guest {
  qemu: ChildProcess
  qga: string
  serial: string
  bootedAt: number
  /** Runs a shell command in the guest (guest-exec); its exit code and stdout. */
  sh(command: string, timeoutMs?: number): Promise<{ code: number; out: string }>
  kill(): Promise<void>
}

/** Boots the guest's kernel with its root on `export` of Cairn's NBD server; resolves once its agent answers. */
export async function bootGuest(
  image: GuestImage,
  options: {
    nbdPort: number
    export: string
    dir: string
    name: string
    log: (s: string) => void
    /** More disks, /dev/vdb, /dev/vdc, … in order: a format over a QEMU `file` node (cache=none). */
    extra?: { format: 'raw' | 'qcow2'; file: Record<string, unknown> }[]
  },
): Promise<Guest> {
  const qga = join(options.dir, `${options.name}.qga`)
  const serial = join(options.dir, `${options.name}.serial`)
  const blockdev = {
    driver: 'raw',
    'node-name': 'os',
    discard: 'unmap',
    // cache=none: no host page cache between the guest and Cairn; flushes reach the export.
    cache: { direct: true, 'no-flush': false },
    file: {
      driver: 'nbd',
      server: { type: 'inet', host: '127.0.0.1', port: String(options.nbdPort) },
      export: options.export,
      // A restarted cairn serve: QEMU reconnects and replays what was in flight.
      'reconnect-delay': 60,
    },
  }
  const accel = process.env.CAIRN_E2E_VM_KVM === '1' ? 'kvm' : 'tcg'
  const started = Date.now()
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      accel,
      '-m',
      '512',
      '-smp',
      '1',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      'root=/dev/vda rw console=ttyS0 panic=-1 quiet',
      '-blockdev',
      JSON.stringify(blockdev),
      '-device',
      'virtio-blk-pci,drive=os',
      ...(options.extra ?? []).flatMap((d, i) => [
        '-blockdev',
        JSON.stringify({
          driver: d.format,
          'node-name': `extra${i}`,
          discard: 'unmap',
          cache: { direct: true, 'no-flush': false },
          file: d.file,
        }),
        '-device',
        `virtio-blk-pci,drive=extra${i}`,
      ]),
      '-chardev',
      `socket,path=${qga},server=on,wait=off,id=qga0`,
      '-device',
      'virtio-serial',
      '-device',
      'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-serial',
      `file:${serial}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  qemu.stderr!.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise<void>((r) => qemu.once('exit', () => r()))
  const sh = async (command: string, timeoutMs = 60_000) => {
    const s = await QgaSession.open(`unix:${qga}`, 20_000)
    try {
      const { pid } = (await s.execute(
        'guest-exec',
        { path: '/bin/sh', arg: ['-c', command], 'capture-output': true },
        timeoutMs,
      )) as { pid: number }
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const st = (await s.execute('guest-exec-status', { pid }, timeoutMs)) as {
          exited: boolean
          exitcode?: number
          'out-data'?: string
        }
        if (st.exited)
          return {
            code: st.exitcode ?? -1,
            out: Buffer.from(st['out-data'] ?? '', 'base64').toString('utf8'),
          }
        if (Date.now() > deadline) throw new Error(`guest command ran past ${timeoutMs} ms: ${command}`)
        await new Promise((r) => setTimeout(r, 200))
      }
    } finally {
      s.close()
    }
  }
  // Booted when the guest agent answers a command (up to 8 minutes of TCG on a busy host: 186 s at a
  // load of 20 on 2 cores).
  for (;;) {
    if (qemu.exitCode !== null) throw new Error(`qemu exited: ${stderr}\n${tail(serial)}`)
    try {
      await sh('true', 20_000)
      break
    } catch (err) {
      if (Date.now() - started > 480_000)
        throw new Error(`the guest did not boot in 8 minutes (${(err as Error).message}):\n${tail(serial)}`)
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  const bootedAt = Date.now()
  options.log(`${options.name}: booted (${accel}) in ${((bootedAt - started) / 1000).toFixed(1)} s`)
  return {
    qemu,
    qga,
    serial,
    bootedAt: bootedAt - started,
    sh,
    async kill() {
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL')
      await exited
    },
  }
}

/** The last lines of a file (a guest's serial console), for error messages. */
export function tail(path: string, n = 30): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-n).join('\n')
  } catch {
    return '(no serial output)'
  }
}

/**
 * Checks the writer's records are a clean prefix: 1, 2, …, N, each a whole line (a last line cut short
 * by a crash may be a prefix of the next number's text). Answers N.
 */
export function cleanPrefix(text: string): number {
  const lines = text.split('\n')
  const last = lines.pop() ?? ''
  lines.forEach((l, i) => {
    if (l !== String(i + 1).padStart(8, '0'))
      throw new Error(`record ${i + 1} reads ${JSON.stringify(l)}: not a clean prefix`)
  })
  if (
    last !== '' &&
    !String(lines.length + 1)
      .padStart(8, '0')
      .startsWith(last)
  )
    throw new Error(`the last line reads ${JSON.stringify(last)}: not a clean prefix`)
  return lines.length
}
