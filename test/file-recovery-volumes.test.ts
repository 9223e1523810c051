// Volumes Cairn cannot browse, made by the real tools: an MBR disk with ext4 (mkfs.ext4 -d), XFS
// (mkfs.xfs) and an LVM2 physical volume (pvcreate/vgcreate on a loop device, as root) is backed up;
// `rp volumes` names XFS and LVM2 as detected and not supported, browsing them answers
// FileSystemUnsupported naming the type (never garbage), and the ext4 partition browses; the CLI's
// volume listing reads every page.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FileEntry, PointVolume } from '../src/api/index.js'
import { run, uploadDisk } from './_recovery-images.js'
import { apiFetch, cairnAt, type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024
const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const why =
  process.getuid?.() !== 0
    ? 'needs root: pvcreate writes through a loop device'
    : !onPath('mkfs.xfs') || !onPath('pvcreate')
      ? 'needs mkfs.xfs (xfsprogs) and pvcreate (lvm2): node scripts/preflight.js installs them'
      : undefined

/** A partition image of `mib` MiB holding an LVM2 physical volume in a volume group of its own. */
function lvmPhysicalVolume(file: string, mib: number): void {
  run('truncate', ['-s', `${mib}M`, file])
  const loop = run('losetup', ['-f', '--show', file]).trim()
  const env = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' }
  const lvm = (args: string[]) => {
    const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', env })
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`)
  }
  try {
    lvm(['pvcreate', '-y', loop])
    lvm(['vgcreate', `cairntest${randomBytes(4).toString('hex')}`, loop])
  } finally {
    spawnSync('losetup', ['-d', loop])
  }
}

describe('volumes Cairn does not browse (XFS, LVM2) are named and refused, made by mkfs.xfs and pvcreate', {
  skip: why,
}, () => {
  let dir: string
  let service: RunningService
  let rp: string
  const ok = async (args: string[], env?: NodeJS.ProcessEnv) => {
    const r = await cairnAt(service.url, args, env ? { env } : {})
    assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
    return JSON.parse(r.stdout) as unknown
  }
  const get = (path: string, init: RequestInit = {}) => apiFetch(`${service.url}${path}`, init)

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-volumes-'))
    const tree = join(dir, 'tree')
    mkdirSync(tree)
    writeFileSync(join(tree, 'hello.txt'), 'hello from ext4\n')
    // 64 MiB MBR: 1 ext4 (16 MiB), 2 XFS (24 MiB), 3 LVM2 PV (20 MiB, type 8e).
    const disk = join(dir, 'disk.img')
    run('truncate', ['-s', '64M', disk])
    run('sfdisk', ['-q', disk], {
      input:
        'label: dos\nstart=2048,size=32768,type=83\nstart=34816,size=49152,type=83\nstart=83968,size=40960,type=8e\n',
    })
    const ext4 = join(dir, 'p1.img')
    run('mkfs.ext4', ['-q', '-F', '-L', 'cairnext', '-d', tree, ext4, '16M'])
    const xfs = join(dir, 'p2.img')
    run('truncate', ['-s', '24M', xfs])
    // xfsprogs refuses file systems under 300 MB unless told it is a test file system.
    const r = spawnSync('mkfs.xfs', ['-q', '-f', '-L', 'cairnxfs', xfs], {
      encoding: 'utf8',
      env: { ...process.env, TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' },
    })
    assert.equal(r.status, 0, r.stderr)
    const pv = join(dir, 'p3.img')
    lvmPhysicalVolume(pv, 20)
    for (const [file, mib] of [
      [ext4, 1],
      [xfs, 17],
      [pv, 41],
    ] as const)
      run('dd', [`if=${file}`, `of=${disk}`, 'bs=1M', `seek=${mib}`, 'conv=notrunc,sparse', 'status=none'])
    service = await startService()
    await uploadDisk((p, i) => get(p, i), 'mixed-os', disk)
    await ok(['vault', 'create', 'main'])
    await ok(['vm', 'create', 'mixed', '--os-disk', 'devstoreaccount1/disks/mixed-os'])
    await ok(['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
    await ok(['protect', 'mixed', '--vault', 'main', '--policy', 'daily'])
    await ok(['backup', 'now', 'mixed', '--wait'])
    rp = ((await ok(['rp', 'list', 'mixed'])) as { id: string }[])[0]!.id
  })
  after(async () => {
    await service?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  it('rp volumes names ext4 browsable, XFS and the LVM2 physical volume detected but not supported, one page at a time', async () => {
    const vols = (await ok(['rp', 'volumes', 'mixed', '--rp', rp])) as PointVolume[]
    assert.deepEqual(
      vols.map((v) => [v.partition, v.type, v.fsType, v.supported]),
      [
        [1, 'ext', 'ext4', true],
        [2, 'xfs', 'xfs', false],
        [3, 'lvm', 'LVM2_member', false],
      ],
    )
    assert.equal(vols[0]!.label, 'cairnext')
    assert.equal(vols[1]!.label, 'cairnxfs')
    assert.equal(vols[1]!.start, 17 * MiB)
    assert.match(vols[1]!.reason ?? '', /XFS.*not supported/)
    assert.match(vols[2]!.reason ?? '', /LVM2 physical volume.*not supported/)
    // One volume a page: the CLI reads all three pages; --limit stops early.
    assert.deepEqual(await ok(['rp', 'volumes', 'mixed', '--rp', rp], { CAIRN_PAGE_SIZE: '1' }), vols)
    assert.deepEqual(await ok(['rp', 'volumes', 'mixed', '--rp', rp, '--limit', '2']), vols.slice(0, 2))
  })

  it('browsing the XFS or LVM2 volume answers FileSystemUnsupported naming it; the ext4 one lists its files', async () => {
    for (const [partition, name] of [
      ['2', /XFS file system/],
      ['3', /LVM2 physical volume/],
    ] as const) {
      const r = await cairnAt(
        service.url,
        ['rp', 'files', 'mixed', '--rp', rp, '--partition', partition, '/'],
        {
          json: false,
        },
      )
      assert.equal(r.code, 2, `${r.stderr}${r.stdout}`)
      assert.match(r.stderr, /^cairn: FileSystemUnsupported: /)
      assert.match(r.stderr, name)
      for (const route of ['file/content?path=/x', 'archive?path=/&format=tar', 'files?path=/']) {
        const res = await get(
          `/api/v1/vaults/main/protectedItems/mixed/recoveryPoints/${rp}/${route}&partition=${partition}`,
        )
        assert.equal(res.status, 422, route)
        const body = (await res.json()) as { error: { code: string; message: string } }
        assert.equal(body.error.code, 'FileSystemUnsupported')
        assert.match(body.error.message, name)
      }
    }
    const files = (await ok(['rp', 'files', 'mixed', '--rp', rp, '/'])) as FileEntry[]
    assert.ok(files.some((f) => f.name === 'hello.txt'))
  })
})
