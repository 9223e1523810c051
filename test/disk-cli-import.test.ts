import assert from 'node:assert/strict'
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runner } from './_disk-cli.js'
import { apiFetch, cairn, startService } from './_service.js'

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

      // The pieces went without waiting for durability, the last one durably: a service killed right
      // after the import still has all of it in its log.
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
})
