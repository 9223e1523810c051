import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { CATALOG_DIALECTS, openCatalog } from '../catalog/index.js'
import type { CairnError } from '../util/index.js'
import type { ObjectStoreOptions } from './_object-store-location.js'
import { bufferSink, bufferSource, textBytes } from './_testing.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { AZURE_BACKEND, openPlace, S3_BACKEND } from './vault-backend.contract.js'
import { VaultRegistry } from './vault-registry.js'

async function withRegistry(
  dialect: (typeof CATALOG_DIALECTS)[number],
  fn: (
    dir: string,
    open: (memoryVaults?: boolean, objectStores?: ObjectStoreOptions) => VaultRegistry,
  ) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-registry-'))
  const data = join(dir, 'data')
  await mkdir(data)
  const catalog = await openCatalog(dialect.url(data))
  const registries: VaultRegistry[] = []
  try {
    await fn(dir, (memoryVaults = false, objectStores = undefined) => {
      const r = new VaultRegistry(catalog, {
        dataDir: data,
        workers: 1,
        memoryVaults,
        ...(objectStores ? { objectStores } : {}),
      })
      registries.push(r)
      return r
    })
  } finally {
    for (const r of registries) await r.close()
    await catalog.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const unsupported = (pattern: RegExp) => (e: CairnError) => {
  assert.equal(e.code, 'UnsupportedVaultLocation', e.message)
  assert.match(e.message, pattern)
  return true
}

for (const dialect of CATALOG_DIALECTS)
  describe(`VaultRegistry backends (catalog: ${dialect.name})`, () => {
    it('opens a vault made at a file:/// URL again after a restart, through the factory', async () => {
      await withRegistry(dialect, async (dir, open) => {
        const folder = join(dir, 'off site')
        const info = await open().create('offsite', { location: pathToFileURL(folder).href })
        assert.equal(info.backend, 'fs')
        assert.equal(info.location, folder)
        assert.match((await readFile(join(folder, 'config'))).toString('latin1'), /^CRN1CONF/)
        const data = textBytes(70_000)
        const rp = await (await open().open('offsite')).backup({
          item: { kind: 'disk', name: 'a' },
          sources: [bufferSource('os', data)],
        })
        const again = open()
        const sink = bufferSink(data.length)
        await (await again.open('offsite')).restore(rp.id, 'os', sink)
        assert.ok(sink.data.equals(data))
      })
    })

    for (const store of [AZURE_BACKEND, S3_BACKEND])
      it(`makes a vault on ${store.name}, opens it again after a restart and refuses a second one there`, async () => {
        const place = await store.place()
        try {
          await withRegistry(dialect, async (_dir, open) => {
            const reg = () => open(false, place.options?.objectStores)
            const first = reg()
            const info = await first.create('offsite', { location: place.url })
            assert.equal(info.backend, store === AZURE_BACKEND ? 'azure' : 's3')
            assert.equal(info.location, openPlace(place).location)
            const data = textBytes(70_000)
            const rp = await (await first.open('offsite')).backup({
              item: { kind: 'disk', name: 'a' },
              sources: [bufferSource('os', data)],
            })
            await assert.rejects(
              first.create('again', { location: place.url }),
              (e: CairnError) => e.code === 'VaultAlreadyExists',
            )
            const again = reg()
            const sink = bufferSink(data.length)
            await (await again.open('offsite')).restore(rp.id, 'os', sink)
            assert.ok(sink.data.equals(data))
          })
        } finally {
          await place.cleanup()
        }
      })

    it('refuses an object-store place that holds objects but no vault, and unknown schemes', async () => {
      const place = await S3_BACKEND.place()
      try {
        await withRegistry(dialect, async (_dir, open) => {
          const backend = openPlace(place)
          await backend.put('someone-else/file', Buffer.from('x'))
          const r = open(false, place.options?.objectStores)
          await assert.rejects(r.create('s3', { location: place.url }), (e: CairnError) => {
            assert.equal(e.code, 'VaultLocationNotAllowed', e.message)
            assert.match(e.message, /holds 1 objects and no Cairn vault/)
            return true
          })
          await assert.rejects(r.create('ftp', { location: 'ftp://host/x' }), unsupported(/"ftp:"/))
          assert.deepEqual(await r.list(), [])
          await backend.close?.()
        })
      } finally {
        await place.cleanup()
      }
    })

    it('keeps memory:// vaults to registries made for tests', async () => {
      const name = `registry-${randomUUID()}`
      try {
        await withRegistry(dialect, async (_dir, open) => {
          await assert.rejects(
            open().create('mem', { location: `memory://${name}` }),
            unsupported(/memory vaults are for tests only/),
          )
          const info = await open(true).create('mem', { location: `memory://${name}` })
          assert.deepEqual([info.backend, info.location], ['memory', `memory://${name}`])
          const rp = await (await open(true).open('mem')).backup({
            item: { kind: 'disk', name: 'a' },
            sources: [bufferSource('os', textBytes(5000))],
          })
          assert.deepEqual(
            (await (await open(true).open('mem')).listRecoveryPoints()).map((p) => p.id),
            [rp.id],
          )
          await assert.rejects(open().open('mem'), unsupported(/memory vaults are for tests only/))
        })
      } finally {
        MemoryVaultBackend.drop(name)
      }
    })
  })
