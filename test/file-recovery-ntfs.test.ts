// Browsing an NTFS recovery point inside the service: a GPT disk whose partition was made by mkntfs and
// filled through ntfs-3g, backed up, then listed (API and `cairn rp files`), read with HTTP Range,
// downloaded as tar (extracted by GNU tar), zip and into a folder, its file history across points, and
// read again straight from the vault.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FileEntry, FileVersion, PointVolume } from '../src/api/index.js'
import {
  makeGptDisk,
  makeNtfsImage,
  makeTree,
  placeAt,
  UNICODE_NAME,
  withNtfsMount,
} from '../src/filesystems/_test-images.js'
import { describeTree, pathQuery, recoveryCalls, run, sha256, uploadDisk } from './_recovery-images.js'
import { type RunningService, startService } from './_service.js'

const MANY = 700

describe('browsing and downloading from an NTFS recovery point', () => {
  let dir: string
  let tree: string
  let fsImage: string
  let disk: string
  let service: RunningService
  let base: string
  let first: string

  const { ok, get, getJson } = recoveryCalls(() => service)
  const q = pathQuery
  const points = async () => (await ok(['rp', 'list', 'win'])) as { id: string; tier: string }[]

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-ntfs-browse-'))
    tree = join(dir, 'tree')
    makeTree(tree, { many: MANY, bigBytes: 1024 * 1024 + 7 })
    rmSync(join(tree, 'deleted.txt'))
    fsImage = join(dir, 'ntfs.img')
    await makeNtfsImage(fsImage, tree, 24, {
      fill: (mnt) => {
        writeFileSync(join(mnt, 'deleted.txt'), 'gone before the backup\n')
        rmSync(join(mnt, 'deleted.txt'))
      },
    })
    disk = join(dir, 'disk.img')
    makeGptDisk(disk, fsImage, 26)
    mkdirSync(join(dir, 'exports'))
    service = await startService(['--export-root', join(dir, 'exports')])
    await uploadDisk((p, i) => get(p, i), 'win-os', disk)
    await ok(['vault', 'create', 'main'])
    await ok(['vm', 'create', 'win', '--os-disk', 'devstoreaccount1/disks/win-os'])
    await ok(['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
    await ok(['protect', 'win', '--vault', 'main', '--policy', 'daily'])
    await ok(['backup', 'now', 'win', '--wait'])
    first = (await points())[0]!.id
    base = `/api/v1/vaults/main/protectedItems/win/recoveryPoints/${first}`
  })
  after(async () => {
    await service?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lists the volume: one GPT partition with NTFS, its label, browsable', async () => {
    const vols = (await ok(['rp', 'volumes', 'win', '--rp', first])) as PointVolume[]
    assert.equal(vols.length, 1)
    assert.equal(vols[0]!.partition, 1)
    assert.equal(vols[0]!.scheme, 'gpt')
    assert.equal(vols[0]!.fsType, 'ntfs')
    assert.equal(vols[0]!.label, 'CAIRNNTFS')
    assert.equal(vols[0]!.supported, true)
  })

  it('rp files lists the root as the source has it: names, sizes, mtimes, symlinks, no deleted file', async () => {
    const rows = (await ok(['rp', 'files', 'win', '--rp', first, '/'])) as FileEntry[]
    assert.deepEqual(rows.map((r) => r.name).sort(), readdirSync(tree).sort())
    const byName = new Map(rows.map((r) => [r.name, r]))
    assert.equal(byName.get('big.bin')!.size, 1024 * 1024 + 7)
    assert.equal(byName.get('link-to-hello')!.type, 'symlink')
    assert.equal(byName.get('link-to-hello')!.target, 'hello.txt')
    assert.equal(byName.get('hello.txt')!.mtime, Date.parse('2024-05-06T07:08:10.000Z'))
    assert.ok(byName.has(UNICODE_NAME))
    assert.ok(!byName.has('deleted.txt'))
  })

  it(`pages the ${MANY}-entry folder with cursors: every name once, in order`, async () => {
    const names: string[] = []
    let cursor: string | undefined
    for (let pages = 0; pages < 10; pages++) {
      const page = await getJson<{ items: FileEntry[]; nextCursor?: string; total: number }>(
        `${base}/files${q('/many', `&limit=300${cursor ? `&cursor=${cursor}` : ''}`)}`,
      )
      assert.equal(page.total, MANY)
      names.push(...page.items.map((e) => e.name))
      cursor = page.nextCursor
      if (!cursor) break
    }
    assert.deepEqual(names, readdirSync(join(tree, 'many')).sort())
  })

  it('reads a file whole, by HTTP Range and case-insensitively; .. never leaves the volume', async () => {
    const src = readFileSync(join(tree, 'big.bin'))
    const whole = await get(`${base}/file/content${q('/big.bin')}`)
    assert.equal(whole.status, 200)
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), sha256(src))
    const part = await get(`${base}/file/content${q('/BIG.BIN')}`, {
      headers: { range: 'bytes=1000000-1099999' },
    })
    assert.equal(part.status, 206)
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(src.subarray(1_000_000, 1_100_000)))
    const sparse = Buffer.from(await (await get(`${base}/file/content${q('/sparse.bin')}`)).arrayBuffer())
    assert.ok(sparse.equals(readFileSync(join(tree, 'sparse.bin'))))
    const host = await get(`${base}/file/content${q('/../../../../etc/passwd')}`)
    assert.equal(host.status, 404)
    assert.equal(((await host.json()) as { error: { code: string } }).error.code, 'FileSystemPathNotFound')
  })

  it('a tar of a folder, extracted by GNU tar, equals the source; a zip passes zipfile', async () => {
    const res = await get(`${base}/archive${q('/dir with spaces', '&format=tar')}`)
    assert.equal(res.status, 200)
    const file = join(dir, 'spaces.tar')
    writeFileSync(file, Buffer.from(await res.arrayBuffer()))
    const out = join(dir, 'untar')
    mkdirSync(out)
    run('tar', ['-xpf', file, '-C', out])
    assert.deepEqual(describeTree(join(out, 'dir with spaces')), describeTree(join(tree, 'dir with spaces')))
    const zip = await get(`${base}/archive${q('/level0', '&format=zip')}`)
    const zipFile = join(dir, 'level0.zip')
    writeFileSync(zipFile, Buffer.from(await zip.arrayBuffer()))
    run('/usr/bin/python3', [
      '-c',
      'import zipfile,sys; assert zipfile.ZipFile(sys.argv[1]).testzip() is None',
      zipFile,
    ])
  })

  it('rp download puts a folder into a folder equal to the source', async () => {
    const into = join(dir, 'download')
    await ok(['rp', 'download', 'win', '--rp', first, '/level0', '--to', into])
    assert.deepEqual(describeTree(join(into, 'level0')), describeTree(join(tree, 'level0')))
  })

  it('rp history finds the changed version of a file in a later point, and reads from the vault tier', async () => {
    const changed = Buffer.from('hello, changed world\n')
    await withNtfsMount(fsImage, [], (mnt) => writeFileSync(join(mnt, 'hello.txt'), changed))
    const previous = join(dir, 'previous.img')
    writeFileSync(previous, readFileSync(disk))
    placeAt(disk, 1024 * 1024, fsImage)
    await uploadDisk((p, i) => get(p, i), 'win-os', disk, { create: false, previous })
    await ok(['backup', 'now', 'win', '--wait'])
    const versions = (await ok(['rp', 'history', 'win', '/Hello.txt'])) as FileVersion[]
    assert.equal(versions.length, 2)
    assert.equal(versions[0]!.sha256, sha256(readFileSync(join(tree, 'hello.txt'))))
    assert.equal(versions[1]!.sha256, sha256(changed))
    // Drop the disk's snapshots: the first point is then read straight from the vault.
    const snaps = (await (
      await get('/api/v1/accounts/devstoreaccount1/containers/disks/disks/win-os/snapshots')
    ).json()) as { items: { snapshot: string }[] }
    for (const s of snaps.items) {
      const res = await get(
        `/api/v1/accounts/devstoreaccount1/containers/disks/disks/win-os/snapshots/${encodeURIComponent(s.snapshot)}?force=true`,
        { method: 'DELETE' },
      )
      assert.ok(res.status < 300, await res.text())
    }
    assert.equal((await points()).find((p) => p.id === first)!.tier, 'Vault')
    const body = await get(`${base}/file/content${q('/hello.txt')}`)
    assert.equal(await body.text(), 'hello, world\n')
    const rows = (await ok(['rp', 'files', 'win', '--rp', first, '/many'])) as FileEntry[]
    assert.equal(rows.length, MANY)
  })
})
