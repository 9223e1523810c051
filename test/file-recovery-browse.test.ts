// Browsing recovery points inside the service (no root, no mount): volumes, listings checked against the
// source tree (lstat), stat, reads with HTTP Range, `..` that cannot leave the file system, tar checked
// by GNU tar, zip by Python's zipfile, `cairn rp download` into a folder and as a job, file history,
// CLI listings that read every page;
// from the snapshot tier and, the snapshot deleted, straight from the vault.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FileEntry, FileVersion, PointVolume } from '../src/api/index.js'
import {
  describeTree,
  gptExt4Disk,
  makeTree,
  pathQuery,
  pseudoRandom,
  recoveryCalls,
  run,
  sha256,
  sha256File,
  uploadDisk,
} from './_recovery-images.js'
import { cairnAt, type RunningService, startService } from './_service.js'

const BIG_DIR = 2_500

describe('rp files, download and history: browsing recovery points in the service', () => {
  let dir: string
  let tree: string
  let service: RunningService
  let base: string
  let first: string

  const { ok, get, getJson } = recoveryCalls(() => service)
  const q = pathQuery
  const points = async () => (await ok(['rp', 'list', 'web'])) as { id: string; tier: string }[]

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-browse-'))
    tree = join(dir, 'tree')
    mkdirSync(tree)
    makeTree(tree)
    mkdirSync(join(tree, 'srv/app'), { recursive: true })
    writeFileSync(join(tree, 'srv/app/readme.txt'), 'another app\n')
    // Several pieces long (a piece is 4 MiB): the answers' reused buffers are tried by it.
    mkdirSync(join(tree, 'opt'))
    writeFileSync(join(tree, 'opt/data.bin'), pseudoRandom(9 * 1024 * 1024 + 4321, 11))
    mkdirSync(join(tree, 'big'))
    for (let i = 0; i < BIG_DIR; i++)
      writeFileSync(join(tree, 'big', `f${String(i).padStart(5, '0')}`), `${i}\n`)
    const image = gptExt4Disk(dir, tree, 96, 80)
    mkdirSync(join(dir, 'exports'))
    service = await startService(['--export-root', join(dir, 'exports')])
    await uploadDisk((p, i) => get(p, i), 'web-os', image)
    await ok(['vault', 'create', 'main'])
    await ok(['vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os'])
    await ok(['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
    await ok(['protect', 'web', '--vault', 'main', '--policy', 'daily'])
    await ok(['backup', 'now', 'web', '--wait'])
    first = (await points())[0]!.id
    base = `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${first}`
  })
  after(async () => {
    await service?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lists the volumes of the point: one GPT partition with ext4, browsable', async () => {
    const vols = (await ok(['rp', 'volumes', 'web', '--rp', first])) as PointVolume[]
    assert.equal(vols.length, 1)
    assert.equal(vols[0]!.partition, 1)
    assert.equal(vols[0]!.scheme, 'gpt')
    assert.equal(vols[0]!.fsType, 'ext4')
    assert.equal(vols[0]!.label, 'cairnroot')
    assert.equal(vols[0]!.supported, true)
  })

  it('rp files lists a folder as lstat sees the source: names, types, sizes, modes, mtimes, symlink targets', async () => {
    const rows = (await ok(['rp', 'files', 'web', '--rp', first, '/home/ana'])) as FileEntry[]
    const want = readdirSync(join(tree, 'home/ana')).sort()
    assert.deepEqual(rows.map((r) => r.name).sort(), want)
    for (const r of rows) {
      const st = lstatSync(join(tree, 'home/ana', r.name))
      assert.equal(r.mode, st.mode, r.name)
      assert.equal(Math.floor(r.mtime / 1000), Math.floor(st.mtimeMs / 1000), r.name)
      if (r.type === 'file') assert.equal(r.size, st.size, r.name)
      if (r.type === 'symlink') assert.equal(r.target, 'docs/report.txt')
    }
    const hard = rows.filter((r) => r.name === 'report-hardlink.txt')
    assert.equal(hard[0]!.nlink, 2)
  })

  it(`pages a ${BIG_DIR}-entry folder with cursors: every name once, in order`, async () => {
    const names: string[] = []
    let cursor: string | undefined
    for (let pages = 0; pages < 20; pages++) {
      const page = await getJson<{ items: FileEntry[]; nextCursor?: string; total: number }>(
        `${base}/files${q('/big', `&limit=700${cursor ? `&cursor=${cursor}` : ''}`)}`,
      )
      assert.equal(page.total, BIG_DIR)
      names.push(...page.items.map((e) => e.name))
      cursor = page.nextCursor
      if (!cursor) break
    }
    assert.equal(names.length, BIG_DIR)
    assert.deepEqual(names, [...names].sort())
    assert.equal(new Set(names).size, BIG_DIR)
    // Pages of another size (a warm folder is sliced from bytes encoded once) hold the same entries.
    const pagesOf = async (limit: number) => {
      const all: FileEntry[] = []
      let at: string | undefined
      do {
        const page = await getJson<{ items: FileEntry[]; nextCursor?: string }>(
          `${base}/files${q('/big', `&limit=${limit}${at ? `&cursor=${at}` : ''}`)}`,
        )
        all.push(...page.items)
        at = page.nextCursor
      } while (at)
      return all
    }
    const byThousand = await pagesOf(1000)
    assert.deepEqual(
      byThousand.map((e) => e.name),
      names,
    )
    assert.deepEqual(await pagesOf(333), byThousand)
    assert.equal(byThousand[1234]!.path, `/big/${names[1234]}`)
    const empty = await getJson<{ items: FileEntry[]; total: number; nextCursor?: string }>(
      `${base}/files${q('/lost+found')}`,
    )
    assert.deepEqual([empty.items, empty.total, empty.nextCursor], [[], 0, undefined])
    // The CLI reads every page (700 a page here), or the first --limit entries.
    const paged = await cairnAt(service.url, ['rp', 'files', 'web', '--rp', first, '/big'], {
      env: { CAIRN_PAGE_SIZE: '700' },
    })
    assert.equal(paged.code, 0, paged.stderr)
    assert.deepEqual(
      (JSON.parse(paged.stdout) as FileEntry[]).map((e) => e.name),
      names,
    )
    const limited = (await ok([
      'rp',
      'files',
      'web',
      '--rp',
      first,
      '/big',
      '--limit',
      '1200',
    ])) as FileEntry[]
    assert.deepEqual(
      limited.map((e) => e.name),
      names.slice(0, 1200),
    )
  })

  it('reads a file whole and by HTTP Range (206), and refuses a range past its end (416)', async () => {
    const src = readFileSync(join(tree, 'home/ana/docs/deep/er/still/bottom.bin'))
    const path = q('/home/ana/docs/deep/er/still/bottom.bin')
    const whole = await get(`${base}/file/content${path}`)
    assert.equal(whole.status, 200)
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), sha256(src))
    const part = await get(`${base}/file/content${path}`, { headers: { range: 'bytes=1000000-1099999' } })
    assert.equal(part.status, 206)
    assert.equal(part.headers.get('content-range'), `bytes 1000000-1099999/${src.length}`)
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(src.subarray(1_000_000, 1_100_000)))
    const tail = await get(`${base}/file/content${path}`, { headers: { range: 'bytes=-10' } })
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(src.subarray(src.length - 10)))
    const past = await get(`${base}/file/content${path}`, { headers: { range: `bytes=${src.length + 5}-` } })
    assert.equal(past.status, 416)
    // A sparse file reads as zeros in its holes.
    const sparse = Buffer.from(
      await (await get(`${base}/file/content${q('/home/ana/sparse.img')}`)).arrayBuffer(),
    )
    assert.ok(sparse.equals(readFileSync(join(tree, 'home/ana/sparse.img'))))
  })

  it('reads of a file of several MiB, five at once after one cut short by its client, each answer the exact bytes with its request id', async () => {
    const src = readFileSync(join(tree, 'opt/data.bin'))
    const path = `${base}/file/content${q('/opt/data.bin')}`
    // A client that goes away after its first bytes: the buffers of its answer must not be handed to
    // the next answers while its socket or a read may still use them.
    const stop = new AbortController()
    const cut = await get(path, { signal: stop.signal })
    assert.equal(cut.status, 200)
    await cut.body!.getReader().read()
    stop.abort()
    const answers = await Promise.all(
      [1, 2, 3, 4, 5].map(async (i) => {
        const res = await get(path, { headers: { 'x-request-id': `read-${i}` } })
        return {
          status: res.status,
          id: res.headers.get('x-request-id'),
          length: res.headers.get('content-length'),
          sha: sha256(Buffer.from(await res.arrayBuffer())),
        }
      }),
    )
    for (const [i, a] of answers.entries())
      assert.deepEqual(a, { status: 200, id: `read-${i + 1}`, length: String(src.length), sha: sha256(src) })
    // A range over piece boundaries, and HEAD (answered without a body) give the same headers.
    const part = await get(path, { headers: { range: 'bytes=4194000-8389000' } })
    assert.equal(part.status, 206)
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(src.subarray(4_194_000, 8_389_001)))
    const head = await get(path, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(src.length))
  })

  it('.. and absolute paths never leave the file system of the point', async () => {
    const escaped = await getJson<FileEntry>(`${base}/file${q('/home/../../../../etc/app/config.yaml')}`)
    assert.equal(escaped.path, '/etc/app/config.yaml')
    const body = await get(`${base}/file/content${q('../../../../etc/app/config.yaml')}`)
    assert.equal(await body.text(), readFileSync(join(tree, 'etc/app/config.yaml'), 'utf8'))
    // The host's /etc/passwd is not in the image: not found, not the host file.
    const host = await get(`${base}/file/content${q('/../../../../../etc/passwd')}`)
    assert.equal(host.status, 404)
    assert.equal(((await host.json()) as { error: { code: string } }).error.code, 'FileSystemPathNotFound')
  })

  it('a tar of a folder, extracted by GNU tar, equals the source: modes, mtimes, symlinks, hard links, bytes', async () => {
    const res = await get(`${base}/archive${q('/home/ana', '&format=tar')}`)
    assert.equal(res.status, 200)
    const file = join(dir, 'ana.tar')
    writeFileSync(file, Buffer.from(await res.arrayBuffer()))
    const out = join(dir, 'untar')
    mkdirSync(out)
    run('tar', ['-xpf', file, '-C', out])
    assert.deepEqual(describeTree(join(out, 'ana')), describeTree(join(tree, 'home/ana')))
    const a = lstatSync(join(out, 'ana/docs/report.txt'))
    const b = lstatSync(join(out, 'ana/report-hardlink.txt'))
    assert.equal(a.ino, b.ino, 'the hard link was not kept')
  })

  it('a tar and a zip of several paths hold each under its own name, once, equal to the source (GNU tar, unzip)', async () => {
    // A folder, a file inside it (stored once, in the folder), the folder again spelled otherwise, a file,
    // a symlink reached through `..` (which never leaves the file system) and a second `docs` folder.
    const paths = [
      '/etc/app',
      '/etc/app/config.yaml',
      '/etc/./app/',
      '/home/ana/empty',
      '/../../home/ana/report-link',
    ]
    const query = `?${paths.map((p) => `path=${encodeURIComponent(p)}`).join('&')}`
    const want = new Map<string, string>()
    for (const [rel, d] of describeTree(join(tree, 'etc/app'))) want.set(`app/${rel}`, d)
    const top = describeTree(join(tree, 'etc'))
    want.set('app', top.get('app')!)
    const ana = describeTree(join(tree, 'home/ana'))
    want.set('empty', ana.get('empty')!)
    want.set('report-link', ana.get('report-link')!)
    for (const format of ['tar', 'zip'] as const) {
      const res = await get(`${base}/archive${query}&format=${format}`)
      assert.equal(res.status, 200, await res.clone().text())
      assert.match(res.headers.get('content-disposition') ?? '', new RegExp(`web-files\\.${format}`))
      const file = join(dir, `several.${format}`)
      writeFileSync(file, Buffer.from(await res.arrayBuffer()))
      const out = join(dir, `several-${format}`)
      mkdirSync(out)
      if (format === 'tar') run('tar', ['-xpf', file, '-C', out])
      else run('unzip', ['-q', file, '-d', out])
      assert.deepEqual(describeTree(out), want, format)
    }
    // Paths inside a folder also given are stored once, in it; two of one name from two folders: the
    // second is "app (2)".
    const names = await get(
      `${base}/archive?path=/etc/app&path=/srv/app&path=/home/ana/docs/report.txt&path=/home/ana/docs/deep&path=/home/ana/docs/deep/er/still`,
    )
    writeFileSync(join(dir, 'names.tar'), Buffer.from(await names.arrayBuffer()))
    const listed = run('tar', ['-tf', join(dir, 'names.tar')])
      .split('\n')
      .filter(Boolean)
    assert.deepEqual(
      listed.filter((n) => !n.includes('/')),
      ['app', 'app (2)', 'report.txt', 'deep'],
    )
    assert.ok(listed.includes('app (2)/readme.txt'))
    assert.ok(listed.includes('deep/er/still/bottom.bin'))
  })

  it('an archive of several paths refuses a missing path, no path, and more paths than one archive takes', async () => {
    const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code
    const missing = await get(`${base}/archive?path=/etc/app&path=/no/such/file`)
    assert.equal(missing.status, 404)
    assert.equal(await code(missing), 'FileSystemPathNotFound')
    const many = `?${Array.from({ length: 257 }, (_, i) => `path=/etc/app/f${i}`).join('&')}`
    const tooMany = await get(`${base}/archive${many}`)
    assert.equal(tooMany.status, 400)
    assert.match(((await tooMany.json()) as { error: { message: string } }).error.message, /at most 256/)
    const none = await get(`${base}/archive`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: [], to: join(dir, 'exports', 'none.tar') }),
    })
    assert.equal(none.status, 400)
    assert.equal(await code(none), 'InvalidRequest')
    const cli = await cairnAt(service.url, [
      'rp',
      'download',
      'web',
      '--rp',
      first,
      '/etc/app',
      '/nope',
      '--to',
      join(dir, 'cli-bad.tar'),
    ])
    assert.notEqual(cli.code, 0)
    assert.match(cli.stderr, /FileSystemPathNotFound/)
  })

  it('a zip of a folder holds every file byte for byte, with symlinks and modes (Python zipfile)', async () => {
    const res = await get(`${base}/archive${q('/home/ana', '&format=zip')}`)
    assert.equal(res.status, 200)
    const file = join(dir, 'ana.zip')
    writeFileSync(file, Buffer.from(await res.arrayBuffer()))
    const py = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        `import zipfile, hashlib, json, sys
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
out = {}
for i in z.infolist():
    mode = i.external_attr >> 16
    data = z.read(i)
    out[i.filename.rstrip('/')] = [oct(mode), hashlib.sha256(data).hexdigest(), data.decode('utf8', 'replace') if (mode & 0o170000) == 0o120000 else '']
print(json.dumps(out))`,
        file,
      ],
      { encoding: 'utf8' },
    )
    assert.equal(py.status, 0, py.stderr)
    const got = JSON.parse(py.stdout) as Record<string, [string, string, string]>
    for (const [rel, what] of describeTree(join(tree, 'home/ana'))) {
      const z = got[`ana/${rel}`]
      assert.ok(z, `${rel} is missing from the zip`)
      const st = lstatSync(join(tree, 'home/ana', rel))
      assert.equal(Number.parseInt(z[0].replace('0o', ''), 8) & 0o170777, st.mode & 0o170777, rel)
      if (what.startsWith('file')) assert.equal(z[1], sha256(readFileSync(join(tree, 'home/ana', rel))), rel)
      if (what.startsWith('link')) assert.equal(z[2], 'docs/report.txt')
    }
  })

  it('rp download puts a folder and a file into a folder, and a folder into a tar file by a job under the export root', async () => {
    const into = join(dir, 'download')
    await ok(['rp', 'download', 'web', '--rp', first, '/home/ana', '--to', into])
    assert.deepEqual(describeTree(join(into, 'ana')), describeTree(join(tree, 'home/ana')))
    await ok(['rp', 'download', 'web', '--rp', first, '/etc/app/config.yaml', '--to', join(dir, 'one')])
    assert.equal(
      readFileSync(join(dir, 'one/config.yaml'), 'utf8'),
      readFileSync(join(tree, 'etc/app/config.yaml'), 'utf8'),
    )
    assert.equal(lstatSync(join(dir, 'one/config.yaml')).mode & 0o777, 0o600)
    // Several paths: into a folder (extracted), and as one zip.
    const several = join(dir, 'several-cli')
    await ok(['rp', 'download', 'web', '--rp', first, '/etc/app', '/home/ana/empty', '--to', several])
    assert.deepEqual(readdirSync(several).sort(), ['app', 'empty'])
    assert.deepEqual(describeTree(join(several, 'app')), describeTree(join(tree, 'etc/app')))
    await ok(['rp', 'download', 'web', '--rp', first, '/etc/app', '/srv/app', '--to', join(dir, 'apps.zip')])
    assert.deepEqual(
      run('zipinfo', ['-1', join(dir, 'apps.zip')])
        .split('\n')
        .filter(Boolean)
        .sort(),
      ['app (2)/', 'app (2)/readme.txt', 'app/', 'app/config.yaml'],
    )
    const zip = join(dir, 'etc.zip')
    await ok(['rp', 'download', 'web', '--rp', first, '/etc', '--to', zip])
    run('/usr/bin/python3', [
      '-c',
      'import zipfile,sys; assert zipfile.ZipFile(sys.argv[1]).testzip() is None',
      zip,
    ])
    const target = join(dir, 'exports/home.tar')
    const job = (await ok(['rp', 'download', 'web', '--rp', first, '/home', '--to', target, '--job'])) as {
      state: string
      progress?: { bytesDone: number; bytesTotal: number }
    }
    assert.equal(job.state, 'Completed')
    const listed = run('tar', ['-tf', target]).split('\n')
    assert.ok(listed.includes('home/ana/docs/deep/er/still/bottom.bin'))
    // A job of several paths.
    const two = join(dir, 'exports/two.tar')
    const job2 = (await ok([
      'rp',
      'download',
      'web',
      '--rp',
      first,
      '/etc/app',
      '/srv/app/readme.txt',
      '--to',
      two,
      '--job',
    ])) as {
      state: string
    }
    assert.equal(job2.state, 'Completed')
    assert.deepEqual(run('tar', ['-tf', two]).split('\n').filter(Boolean), [
      'app',
      'app/config.yaml',
      'readme.txt',
    ])
    // Outside the export roots: refused before any job runs.
    const refused = await cairnAt(service.url, [
      'rp',
      'download',
      'web',
      '--rp',
      first,
      '/home',
      '--to',
      join(dir, 'x.tar'),
      '--job',
    ])
    assert.notEqual(refused.code, 0)
  })

  it('the same files read straight from the vault once the point lost its snapshot', async () => {
    const snaps = (await (
      await get('/api/v1/accounts/devstoreaccount1/containers/disks/disks/web-os/snapshots')
    ).json()) as {
      items: { snapshot: string }[]
    }
    for (const s of snaps.items) {
      const res = await get(
        `/api/v1/accounts/devstoreaccount1/containers/disks/disks/web-os/snapshots/${encodeURIComponent(s.snapshot)}?force=true`,
        { method: 'DELETE' },
      )
      assert.ok(res.status < 300, await res.text())
    }
    assert.equal((await points())[0]!.tier, 'Vault')
    const rows = (await ok(['rp', 'files', 'web', '--rp', first, '/home/ana'])) as FileEntry[]
    assert.deepEqual(rows.map((r) => r.name).sort(), readdirSync(join(tree, 'home/ana')).sort())
    const res = await get(`${base}/file/content${q('/home/ana/docs/deep/er/still/bottom.bin')}`)
    assert.equal(
      sha256(Buffer.from(await res.arrayBuffer())),
      sha256File(join(tree, 'home/ana/docs/deep/er/still/bottom.bin')),
    )
    const tar = join(dir, 'vault.tar')
    writeFileSync(tar, Buffer.from(await (await get(`${base}/archive${q('/home/ana')}`)).arrayBuffer()))
    const out = join(dir, 'vault-untar')
    mkdirSync(out)
    run('tar', ['-xpf', tar, '-C', out])
    assert.deepEqual(describeTree(join(out, 'ana')), describeTree(join(tree, 'home/ana')))
  })

  it('rp history lists each version of a file once across the points, with its size, mtime and sha256', async () => {
    // A second point with a changed config.yaml, a third with the same content.
    const changed = Buffer.concat([readFileSync(join(tree, 'etc/app/config.yaml')), pseudoRandom(5000, 3)])
    writeFileSync(join(tree, 'etc/app/config.yaml'), changed)
    const work = join(dir, 'v2')
    mkdirSync(work)
    const image = gptExt4Disk(work, tree, 96, 80)
    await uploadDisk((p, i) => get(p, i), 'web-os', image, { create: false, previous: join(dir, 'disk.img') })
    await ok(['backup', 'now', 'web', '--wait'])
    await ok(['backup', 'now', 'web', '--wait'])
    const all = await points()
    const versions = (await ok(['rp', 'history', 'web', '/etc/app/config.yaml'])) as FileVersion[]
    assert.equal(versions.length, 2)
    assert.deepEqual(
      versions[0]!.points.map((p) => p.id),
      [all[0]!.id],
    )
    assert.deepEqual(
      versions[1]!.points.map((p) => p.id),
      [all[1]!.id, all[2]!.id],
    )
    assert.equal(versions[1]!.sha256, sha256(changed))
    assert.equal(versions[1]!.size, changed.length)
    // One version a page: the CLI still reads them all, or the first --limit.
    const paged = await cairnAt(service.url, ['rp', 'history', 'web', '/etc/app/config.yaml'], {
      env: { CAIRN_PAGE_SIZE: '1' },
    })
    assert.equal(paged.code, 0, paged.stderr)
    assert.deepEqual(JSON.parse(paged.stdout), versions)
    const one = (await ok(['rp', 'history', 'web', '/etc/app/config.yaml', '--limit', '1'])) as FileVersion[]
    assert.deepEqual(one, versions.slice(0, 1))
    const missing = (await ok(['rp', 'history', 'web', '/no/such/file'])) as FileVersion[]
    assert.deepEqual(missing, [])
  })
})
