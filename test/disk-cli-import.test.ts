import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { extentHeader } from '../src/diskstore/index.js'
import { runner } from './_disk-cli.js'
import { apiFetch, authHeaders, CAIRN_BIN, cairn, startService, tokenOf } from './_service.js'

const MiB = 1024 * 1024
/** The page route of the disk `sparse` (devstoreaccount1/disks, the CLI's default). */
const PAGES = '/api/v1/accounts/devstoreaccount1/containers/disks/disks/sparse/pages'

describe('cairn disk import and export, accounts and containers against a running service', () => {
  it('streams a sparse image in and out, names disks in other accounts, and keeps them across a restart', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-disk-cli-'))
    const svc = await startService()
    try {
      const { ok } = runner(svc.url)
      const accounts = ok('account', 'list', '--json').json() as { name: string; keys?: string[] }[]
      assert.deepEqual(
        accounts.map((a) => a.name),
        ['devstoreaccount1'],
      )
      assert.equal(accounts[0]!.keys, undefined)
      assert.equal(
        (ok('account', 'keys', 'devstoreaccount1', '--json').json() as { key1: string }).key1,
        'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
      )

      // Import a sparse image through the API and export it back.
      const image = Buffer.alloc(10 * MiB + 512)
      image.fill(0x33, 512, 8192)
      image.fill(0x44, 9 * MiB, 9 * MiB + 4096)
      writeFileSync(join(work, 'image.raw'), image)
      const imported = ok('disk', 'import', 'img', join(work, 'image.raw'), '--json').json()
      assert.equal(imported.size, image.length)
      assert.equal(imported.usedBytes, 8192 - 512 + 4096)
      ok('disk', 'export', 'img', join(work, 'back.raw'))
      assert.ok(readFileSync(join(work, 'back.raw')).equals(image))
      assert.ok(statSync(join(work, 'back.raw')).blocks * 512 < MiB, 'the export is sparse')

      ok('account', 'create', 'prodeu1', '--redundancy', 'GRS')
      ok('container', 'create', 'prodeu1/vhds')
      ok('disk', 'create', 'prodeu1/vhds/web1-os', '--size', '1TiB')
      const big = ok('disk', 'show', 'prodeu1/vhds/web1-os', '--json').json()
      assert.equal(big.size, 1024 ** 4)
      assert.match(ok('account', 'show', 'prodeu1').stdout, /redundancy:\s+GRS/)

      // Everything survives a restart of the service.
      const data = svc.data
      await svc.stop()
      const again = await startService([], { data })
      try {
        const r = cairn(['disk', 'read', 'img', '--offset', '9MiB', '--length', '512', '--url', again.url])
        assert.equal(r.status, 0, r.stderr)
        assert.ok(Buffer.from(r.stdout, 'latin1').equals(Buffer.alloc(512, 0x44)))
        const shown = JSON.parse(
          cairn(['disk', 'show', 'prodeu1/vhds/web1-os', '--json', '--url', again.url]).stdout,
        )
        assert.equal(shown.size, 1024 ** 4)
      } finally {
        await again.stop()
      }
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('imports a sparse image reading only its data ranges, bytes at odd offsets and the last partial page included', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-disk-cli-sparse-'))
    const svc = await startService()
    try {
      const { ok } = runner(svc.url)
      const path = join(work, 'sparse.raw')
      const size = 64 * MiB + 300
      const pieces: [number, Buffer][] = [
        [0, Buffer.alloc(4096, 0x11)],
        [5 * MiB + 100, Buffer.alloc(3000, 0x22)],
        [33 * MiB - 512, Buffer.alloc(9 * MiB, 0x33)],
        [size - 200, Buffer.alloc(200, 0x44)],
      ]
      const fd = openSync(path, 'w')
      for (const [at, data] of pieces) writeSync(fd, data, 0, data.length, at)
      ftruncateSync(fd, size)
      closeSync(fd)
      assert.ok(statSync(path).blocks * 512 < 16 * MiB, 'the image is sparse')
      const imported = ok('disk', 'import', 'sparse', path, '--json').json()
      assert.equal(imported.size, Math.ceil(size / 512) * 512)
      ok('disk', 'export', 'sparse', join(work, 'back.raw'))
      const back = readFileSync(join(work, 'back.raw'))
      const expected = Buffer.alloc(imported.size)
      for (const [at, data] of pieces) data.copy(expected, at)
      assert.ok(back.equals(expected), 'the export holds the image, zeros elsewhere')

      // The import is durable once the CLI answers (one fsync with the disk's publish record): a
      // service killed right after the import still has all of it in its log.
      await svc.stop('SIGKILL')
      const again = await startService([], { data: svc.data })
      try {
        const r = cairn(['disk', 'export', 'sparse', join(work, 'again.raw'), '--url', again.url])
        assert.equal(r.status, 0, r.stderr)
        assert.ok(readFileSync(join(work, 'again.raw')).equals(expected), 'the import survives a kill')
        const bad = await apiFetch(`${again.url}${PAGES}?offset=0&durable=maybe`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream' },
          body: Buffer.alloc(512),
        })
        assert.equal(bad.status, 400)
      } finally {
        await again.stop()
      }
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('imports holes and zero runs as holes: the same bytes back, only the data stored; a file that shrinks, a missing file or a stream cut short leaves no disk', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-disk-cli-zero-'))
    const svc = await startService()
    try {
      const { ok, run } = runner(svc.url)
      // Holes, data, and runs of zeros written into the file (allocated, so SEEK_DATA reports them).
      const path = join(work, 'zeros.raw')
      const size = 40 * MiB
      const data: [number, Buffer][] = [
        [0, randomFillSync(Buffer.alloc(MiB))],
        [3 * MiB + 512, randomFillSync(Buffer.alloc(5 * MiB - 1024))],
        [20 * MiB, Buffer.alloc(512, 0x5a)],
        [39 * MiB, randomFillSync(Buffer.alloc(MiB))],
      ]
      const zeros: [number, number][] = [
        [MiB, 2 * MiB],
        [12 * MiB, 6 * MiB],
        [20 * MiB + 512, 3 * MiB],
      ]
      const fd = openSync(path, 'w')
      for (const [at, n] of zeros) writeSync(fd, Buffer.alloc(n), 0, n, at)
      for (const [at, bytes] of data) writeSync(fd, bytes, 0, bytes.length, at)
      ftruncateSync(fd, size)
      closeSync(fd)
      const dataBytes = data.reduce((n, [, b]) => n + b.length, 0)
      assert.ok(
        statSync(path).blocks * 512 >= dataBytes + 11 * MiB,
        'the zero runs are allocated in the file',
      )

      const before = allocated(svc.data)
      const imported = ok('disk', 'import', 'zeros', path, '--json').json()
      assert.equal(imported.size, size)
      assert.equal(imported.usedBytes, dataBytes, 'only the data pages are written')
      const grown = allocated(svc.data) - before
      assert.ok(grown >= dataBytes && grown < dataBytes + 2 * MiB, `the store grew by ${grown} bytes`)
      ok('disk', 'export', 'zeros', join(work, 'back.raw'))
      assert.ok(readFileSync(join(work, 'back.raw')).equals(readFileSync(path)), 'the same bytes back')

      // A missing file, a folder: refused before any disk exists.
      const missing = run('disk', 'import', 'gone', join(work, 'missing.raw'))
      assert.equal(missing.status, 3, missing.stderr)
      assert.match(missing.stderr, /FileNotFound/)
      const folder = run('disk', 'import', 'gone', work)
      assert.equal(folder.status, 2, folder.stderr)
      assert.match(folder.stderr, /not a regular file/)
      assert.equal(await diskStatus(svc.url, 'gone'), 404)

      // A file that shrinks while it is streamed: the CLI stops with IoError, the service drops the
      // half-imported disk. The CLI is frozen as soon as the import job runs (the job cannot end before
      // the stream's end frame, which follows the last block), the file cut, the CLI let go.
      const big = join(work, 'big.raw')
      const bigFd = openSync(big, 'w')
      const block = randomFillSync(Buffer.alloc(4 * MiB))
      for (let at = 0; at < 128 * MiB; at += block.length) writeSync(bigFd, block, 0, block.length, at)
      closeSync(bigFd)
      const cli = spawn(process.execPath, [CAIRN_BIN, 'disk', 'import', 'shrunk', big, '--url', svc.url], {
        env: { ...process.env, CAIRN_TOKEN: tokenOf(svc.url) },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      cli.stderr!.on('data', (d) => {
        stderr += d
      })
      const exited = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)))
      const job = await runningImport(svc.url)
      cli.kill('SIGSTOP')
      truncateSync(big, MiB)
      cli.kill('SIGCONT')
      const code = await exited
      assert.notEqual(code, 0)
      assert.match(stderr, /IoError.*changed meanwhile/)
      assert.notEqual((await jobEnd(svc.url, job)).state, 'Completed')
      assert.equal(await diskStatus(svc.url, 'shrunk'), 404, 'no half disk is left')
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('refuses an extent stream that is cut short, malformed or outside the disk, and leaves no disk', async () => {
    const svc = await startService()
    try {
      const STREAM = '/api/v1/accounts/devstoreaccount1/containers/disks/disks/cut/import-stream'
      const page = Buffer.alloc(4096, 0x61)
      const frame = (at: number, b: Buffer) => Buffer.concat([extentHeader(at, b.length), b])
      const cases: [string, Buffer, RegExp][] = [
        ['no end frame', frame(0, page), /end frame/],
        ['a bad magic', Buffer.concat([Buffer.alloc(16), page]), /CXT1/],
        ['bytes after the end', Buffer.concat([frame(0, page), extentHeader(MiB, 0), page]), /follow/],
        [
          'an end naming another size',
          Buffer.concat([frame(0, page), extentHeader(2 * MiB, 0)]),
          /end frame/,
        ],
        ['an extent past the end', Buffer.concat([frame(MiB, page), extentHeader(MiB, 0)]), /inside/],
        [
          'extents going back',
          Buffer.concat([frame(8192, page), frame(0, page), extentHeader(MiB, 0)]),
          /after/,
        ],
        ['half a page', Buffer.concat([frame(0, page.subarray(0, 100)), extentHeader(MiB, 0)]), /pages/],
      ]
      for (const [what, body, message] of cases) {
        const res = await apiFetch(`${svc.url}${STREAM}?size=${MiB}`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream' },
          body,
        })
        const answer = (await res.json()) as { error: { code: string; message: string } }
        assert.equal(res.status, 400, what)
        assert.equal(answer.error.code, 'ImageStreamInvalid', what)
        assert.match(answer.error.message, message, what)
        assert.equal(await diskStatus(svc.url, 'cut'), 404, `${what}: no disk`)
      }
      // A well-formed stream makes the disk.
      const good = await apiFetch(`${svc.url}${STREAM}?size=${MiB}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: Buffer.concat([frame(8192, page), extentHeader(MiB, 0)]),
      })
      assert.equal(good.status, 201, await good.clone().text())
      assert.equal(((await good.json()) as { usedBytes: number }).usedBytes, 4096)

      // A client that goes away mid-stream: the service drops the pending disk.
      const url = new URL(`${svc.url}${STREAM.replace('/cut/', '/gone/')}?size=${MiB}`)
      const req = request(url, {
        method: 'POST',
        headers: { ...authHeaders(svc.url), 'content-type': 'application/octet-stream' },
      })
      req.on('error', () => {})
      req.write(frame(0, page))
      const job = await runningImport(svc.url)
      req.destroy()
      assert.notEqual((await jobEnd(svc.url, job)).state, 'Completed')
      assert.equal(await diskStatus(svc.url, 'gone'), 404, 'no half disk is left')
    } finally {
      await svc.dispose()
    }
  })

  it('lets a service on this host read a file under its import root itself, only that very file, and streams every other file', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cairn-import-root-'))
    const elsewhere = mkdtempSync(join(tmpdir(), 'cairn-import-elsewhere-'))
    const svc = await startService(['--import-root', root])
    try {
      const { ok } = runner(svc.url)
      const image = Buffer.alloc(8 * MiB)
      randomFillSync(image, MiB, 2 * MiB)
      const inside = join(root, 'inside.raw')
      const outside = join(elsewhere, 'outside.raw')
      writeFileSync(inside, image)
      writeFileSync(outside, image)
      for (const [disk, file, extra] of [
        ['local', inside, []],
        ['streamed', inside, ['--stream']],
        ['outside', outside, []],
      ] as const) {
        const info = ok('disk', 'import', disk, file, ...extra, '--json').json()
        assert.equal(info.usedBytes, 2 * MiB, disk)
        ok('disk', 'export', disk, join(elsewhere, `${disk}.back`))
        assert.ok(readFileSync(join(elsewhere, `${disk}.back`)).equals(image), `${disk}: the same bytes`)
      }
      const audit = (
        (await (await apiFetch(`${svc.url}/api/v1/audit?limit=200`)).json()) as {
          items: { target: string; status: number }[]
        }
      ).items
      const calls = (disk: string) =>
        audit
          .filter((a) => a.target.includes(`/disks/${disk}/import`))
          .map((a) => `${a.target.slice(a.target.lastIndexOf('/') + 1)} ${a.status}`)
          .sort()
      assert.deepEqual(calls('local'), ['import 201'], 'the service read the file itself')
      assert.deepEqual(calls('streamed'), ['import-stream 201'], '--stream streams')
      assert.deepEqual(calls('outside'), ['import 403', 'import-stream 201'], 'outside the roots: streamed')

      // The service reads the file only if it is the one described.
      const st = statSync(inside)
      const res = await apiFetch(
        `${svc.url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/other/import`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            path: inside,
            expect: { size: st.size + 512, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs },
          }),
        },
      )
      assert.equal(res.status, 409)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'HostFileMismatch')
      assert.equal(await diskStatus(svc.url, 'other'), 404)
    } finally {
      await svc.dispose()
      rmSync(root, { recursive: true, force: true })
      rmSync(elsewhere, { recursive: true, force: true })
    }
  })
})

/** The HTTP status of GET on a disk of the CLI's default container. */
async function diskStatus(url: string, disk: string): Promise<number> {
  const res = await apiFetch(`${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/${disk}`)
  await res.arrayBuffer()
  return res.status
}

/** Bytes allocated on disk by the files under `dir`. */
function allocated(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).blocks * 512
  return n
}

/** The id of the first running import job (waits for one; loose timeout). */
async function runningImport(url: string): Promise<string> {
  for (let i = 0; i < 6000; i++) {
    const res = await apiFetch(`${url}/api/v1/jobs?kind=import&state=Running`)
    const page = (await res.json()) as { items: { id: string }[] }
    if (page.items[0] !== undefined) return page.items[0].id
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error('no import job started')
}

/** The job once it has ended (loose timeout). */
async function jobEnd(url: string, id: string): Promise<{ state: string }> {
  for (let i = 0; i < 600; i++) {
    const job = (await (await apiFetch(`${url}/api/v1/jobs/${id}`)).json()) as { state: string }
    if (!['Queued', 'Running', 'Cancelling'].includes(job.state)) return job
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`job ${id} did not end`)
}
