// Requests an object-store vault makes, counted at the store: requests are seen by a proxy in front of
// Azurite and s3rver. Chunks are read a pack's run at a time (a checksum backup's base, a restore). The
// local cache of pack indexes and manifests: a warm cache saves exactly one request per pack and per
// manifest; what another writer changed, a damaged cache file and a small bound are all handled.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type FaultProxy, startFaultProxy } from './_fault-proxy.js'
import { sharedAzurite, sharedS3rver } from './_test-object-stores.js'
import { bufferSink, bufferSource, mixedImage, scatterWrites } from './_testing.js'
import { openVaultBackend } from './open-vault-backend.js'
import { Vault } from './vault.js'
import { AZURE_BACKEND, type BackendUnderTest, S3_BACKEND } from './vault-backend.contract.js'

const MiB = 1024 * 1024
const item = { kind: 'disk', name: 'vm1' }
const STORES: [BackendUnderTest, () => Promise<{ endpoint: string }>][] = [
  [AZURE_BACKEND, sharedAzurite],
  [S3_BACKEND, sharedS3rver],
]
const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups) await c()
})

/** Requests the proxy saw since `from`, by what they touched. */
function counts(proxy: FaultProxy, from: number) {
  const seen = proxy.log.slice(from)
  const gets = (part: string) =>
    seen.filter((r) => r.method === 'GET' && r.url.includes(part) && !/[?&](comp=list|list-type)/.test(r.url))
      .length
  return { total: seen.length, packGets: gets('/packs/'), manifestGets: gets('/rp/') }
}

/** A place of `store` reached through a fault proxy (counting requests), and a cache folder; all removed after. */
async function behindProxy(
  store: (typeof STORES)[number][0],
  server: (typeof STORES)[number][1],
  prefix: string,
) {
  const { endpoint } = await server()
  const place = await store.place()
  const proxy = await startFaultProxy(new URL(endpoint).origin)
  const dir = await mkdtemp(join(tmpdir(), prefix))
  cleanups.push(async () => {
    await proxy.close()
    await place.cleanup()
    await rm(dir, { recursive: true, force: true })
  })
  const url = place.url.replace(
    encodeURIComponent(new URL(endpoint).origin),
    encodeURIComponent(proxy.endpoint),
  )
  return { proxy, backend: () => openVaultBackend(url, place.options), cacheDir: join(dir, 'cache') }
}

for (const [store, server] of STORES)
  describe(`reads of chunks from an object store (${store.name})`, () => {
    it('a checksum backup reads its base a leaf and pack at a time, and a restore reads one range per leaf and pack, not one per chunk, byte-exact', async () => {
      const { endpoint } = await server()
      const place = await store.place()
      const proxy = await startFaultProxy(new URL(endpoint).origin)
      const dir = await mkdtemp(join(tmpdir(), 'cairn-objreads-'))
      cleanups.push(async () => {
        await proxy.close()
        await place.cleanup()
        await rm(dir, { recursive: true, force: true })
      })
      const url = place.url.replace(
        encodeURIComponent(new URL(endpoint).origin),
        encodeURIComponent(proxy.endpoint),
      )
      const backend = () => openVaultBackend(url, place.options)
      const cacheDir = join(dir, 'cache')
      const img = Buffer.concat([randomBytes(16 * MiB), mixedImage(16 * MiB)])
      const chunks = 28 // the image's non-zero 1 MiB chunks (the mixed half's third quarter is zeros)
      const vault = await Vault.create(backend(), { packSize: 8 * MiB, workers: 1, cacheDir })
      const rp1 = await vault.backup({ item, sources: [bufferSource('os', img)] })
      const basePacks = rp1.packs.length
      assert.ok(basePacks >= 3, `${basePacks} packs`)

      // Pages scattered over every chunk, no change list: each chunk is read, hashed, found changed and
      // compared page by page with the base's bytes, which come a pack's run at a time (the page
      // digests the full backup kept are removed first: with them nothing of the base is read).
      await rm(join(cacheDir, vault.id, 'digests'), { recursive: true, force: true })
      const old = Buffer.from(img)
      for (let c = 0; c < img.length / MiB; c++)
        if (!old.subarray(c * MiB, (c + 1) * MiB).equals(Buffer.alloc(MiB)))
          randomBytes(4096).copy(img, c * MiB + ((c * 37) % 256) * 4096)
      let from = proxy.log.length
      const rp2 = await vault.backup({ item, sources: [bufferSource('os', img)], base: rp1.id })
      const backup = counts(proxy, from)
      assert.equal(rp2.disks[0]!.mode, 'checksum')
      assert.equal(rp2.disks[0]!.chunksNew, chunks, 'each changed chunk stored only its changed page')
      assert.ok(rp2.bytesAdded < 2 * MiB, `${rp2.bytesAdded} bytes stored for ${chunks} changed pages`)
      // The index pages (the root and two leaves), then per leaf one read of its base in each pack it
      // lies in (a leaf crosses into the next pack at most once per pack boundary); one GET per chunk
      // before reads were joined.
      const pages = 3
      const leaves = 2
      assert.ok(
        backup.packGets <= pages + leaves + (basePacks - 1),
        `${backup.packGets} pack reads for ${chunks} changed chunks in ${basePacks} packs`,
      )

      // A restore of each point from a fresh open with a warm cache (its first open read the pack
      // indexes): the pack reads are the index pages and the data's runs, not one per chunk.
      const first = await Vault.open(backend(), undefined, { workers: 1, cacheDir })
      await first.restore(rp1.id, 'os', bufferSink(img.length))
      await first.close()
      for (const [rp, data] of [
        [rp1, old],
        [rp2, img],
      ] as const) {
        const v = await Vault.open(backend(), undefined, { workers: 1, cacheDir })
        try {
          from = proxy.log.length
          const sink = bufferSink(img.length)
          await v.restore(rp.id, 'os', sink)
          const restore = counts(proxy, from)
          assert.ok(sink.data.equals(data), `point ${rp.id} restores byte-exact`)
          // The index pages, then per leaf one read in each pack its chunks lie in: the base's (a leaf
          // crosses a pack boundary at most once per boundary) and, for the patched point, the new
          // pages' pack. One read per chunk before they were joined (28 for the full point, 56 for the other).
          assert.ok(
            restore.packGets - pages <=
              leaves + (basePacks - 1) + (rp === rp2 ? leaves * rp2.packs.length : 0),
            `${restore.packGets - pages} pack reads to restore ${chunks} chunks (${rp === rp2 ? 'patched' : 'full'} point, ${basePacks} base packs, ${rp2.packs.length} new)`,
          )
        } finally {
          await v.close()
        }
      }
      await vault.close()
    })
  })

for (const [store, server] of STORES)
  describe(`page digests in the local cache (${store.name})`, () => {
    it("a checksum backup compares pages by the digests its base kept and reads no data of the base; a damaged, missing or other point's digest file is not believed (the base is read), and every point restores byte-exact", async () => {
      const { proxy, backend, cacheDir } = await behindProxy(store, server, 'cairn-digests-')
      // 8 MiB of data and a tail that is not a whole page (its last digest covers a short page).
      let img = Buffer.concat([randomBytes(4 * MiB), mixedImage(4 * MiB), randomBytes(1000)])
      const vault = await Vault.create(backend(), { packSize: 4 * MiB, workers: 1, cacheDir })
      const file = join(cacheDir, vault.id, 'digests', item.name, 'os')
      const points: { id: string; data: Buffer }[] = []
      let base = (await vault.backup({ item, sources: [bufferSource('os', img)] })).id
      points.push({ id: base, data: Buffer.from(img) })
      /** A checksum backup after a page changed in every data chunk, a zero page made data and the tail changed. */
      const next = async (what: string) => {
        img = Buffer.from(img)
        for (let c = 0; c < 8; c++)
          if (c !== 6) randomBytes(4096).copy(img, c * MiB + ((c * 53) % 256) * 4096)
        randomBytes(4096).copy(img, 6 * MiB + 8192) // the mixed half's zeros: a hole becomes data
        img[img.length - 1] = img[img.length - 1]! ^ 0xff
        const from = proxy.log.length
        const rp = await vault.backup({ item, sources: [bufferSource('os', img)], base })
        assert.equal(rp.disks[0]!.mode, 'checksum', what)
        assert.ok(rp.bytesAdded < MiB, `${what}: ${rp.bytesAdded} bytes stored for 9 changed pages`)
        base = rp.id
        points.push({ id: rp.id, data: Buffer.from(img) })
        return counts(proxy, from)
      }
      // With the digests: the only pack reads are the base's index pages (the root and its one leaf).
      const good = await readFile(file)
      const kept = await next('with digests')
      assert.ok(kept.packGets <= 2, `${kept.packGets} pack reads with the base's digests`)
      const reads = (what: string, n: number) =>
        assert.ok(n > kept.packGets, `${what}: ${n} pack reads, against ${kept.packGets} with digests`)
      // The file of the point before the base (valid, but another point's): not believed, the base is read.
      await writeFile(file, good)
      reads("another point's digests", (await next("another point's digests")).packGets)
      // A flipped byte in the file that run wrote for its point: the checksum fails, the base is read.
      const data = await readFile(file)
      data[60]! ^= 1
      await writeFile(file, data)
      reads('a damaged digest file', (await next('a damaged digest file')).packGets)
      // That run kept its point's digests anew: used again.
      assert.ok((await next('digests again')).packGets <= 2)
      await rm(file)
      reads('no digest file', (await next('no digest file')).packGets)
      // The cache's digest key replaced: digests made under the old one are not believed.
      const keyFile = join(cacheDir, vault.id, 'digest-key')
      await writeFile(keyFile, randomBytes(16))
      reads('another digest key', (await next('another digest key')).packGets)
      assert.ok((await next('digests under the new key')).packGets <= 2)
      // A cache that cannot keep a digest key: the backups go on without digests (the base is read).
      await rm(keyFile)
      await mkdir(keyFile)
      reads('no digest key', (await next('no digest key')).packGets)
      await rm(keyFile, { recursive: true })
      for (const p of points) {
        const sink = bufferSink(img.length)
        await vault.restore(p.id, 'os', sink)
        assert.ok(sink.data.equals(p.data), `point ${p.id} restores byte-exact`)
      }
      await vault.close()
    })
  })

for (const [store, server] of STORES)
  describe(`the local index and manifest cache (${store.name})`, () => {
    it('a warm cache saves one request per pack and per manifest; changes by another writer, damaged cache files and the size bound are handled', async () => {
      const { proxy, backend, cacheDir } = await behindProxy(store, server, 'cairn-objcache-')

      const img = mixedImage(4 * MiB)
      const writer = await Vault.create(backend(), { packSize: MiB / 2, workers: 1 })
      const rp1 = await writer.backup({ item, sources: [bufferSource('os', img)] })
      scatterWrites(img, 16)
      const rp2 = await writer.backup({
        item,
        sources: [bufferSource('os', img)],
        base: rp1.id,
      })
      const packs = (await writer.backend.list('packs/')).length
      assert.ok(packs >= 3, `${packs} packs`)

      /** Opens the vault (with or without the cache), lists its points and restores the newest. */
      const session = async (cache: boolean, opts: { cacheBytes?: number } = {}) => {
        const from = proxy.log.length
        const v = await Vault.open(backend(), undefined, {
          workers: 1,
          ...(cache ? { cacheDir, ...opts } : {}),
        })
        try {
          const points = await v.listRecoveryPoints()
          const newest = points.at(-1)!
          const sink = bufferSink(img.length)
          await v.restore(newest.id, 'os', sink)
          return {
            ids: points.map((p) => p.id),
            data: sink.data,
            stats: { ...(v.cache?.stats ?? {}) },
            bytes: await v.cache?.bytes(),
            ...counts(proxy, from),
          }
        } finally {
          await v.close()
        }
      }

      const plain = await session(false)
      assert.deepEqual(plain.ids, [rp1.id, rp2.id])
      assert.ok(plain.data.equals(img))
      const cold = await session(true)
      const warm = await session(true)
      assert.ok(cold.data.equals(img) && warm.data.equals(img))
      assert.equal(cold.total, plain.total, 'a cold cache costs no extra request')
      assert.deepEqual([cold.stats.misses, cold.stats.hits], [packs + 2, 0])
      assert.deepEqual([warm.stats.hits, warm.stats.misses, warm.stats.corrupt], [packs + 2, 0, 0])
      // Each pack's index is one request when not cached; each listed manifest one more.
      assert.equal(cold.packGets - warm.packGets, packs, 'the warm cache read no pack index')
      assert.deepEqual([cold.manifestGets, warm.manifestGets], [3, 1], 'listing read no manifest')
      assert.equal(plain.total - warm.total, packs + 2)

      // Another writer (no cache of its own) backs up again, deletes the first point and collects
      // its packs: the cached vault sees exactly the store's state and fetches only what is new.
      const changed = Buffer.from(img)
      scatterWrites(changed, 32, 11)
      img.set(changed)
      const rp3 = await writer.backup({
        item,
        sources: [bufferSource('os', img)],
        base: rp2.id,
      })
      await writer.updateSettings({ softDelete: { state: 'Disabled' } })
      await writer.deleteRecoveryPoint(rp1.id)
      const gc = await writer.gc()
      assert.ok(gc.packsDeleted + gc.packsRepacked > 0, JSON.stringify(gc))
      const nowPacks = new Set((await writer.backend.list('packs/')).map((o) => o.name))
      const cachedBefore = new Set(
        (await readdir(join(cacheDir, writer.id, 'packs'))).map(decodeURIComponent),
      )
      const fresh = [...nowPacks].filter((n) => !cachedBefore.has(n)).length
      const after1 = await session(true)
      assert.deepEqual(after1.ids, [rp2.id, rp3.id], 'the deleted point is not listed from the cache')
      assert.ok(after1.data.equals(img), 'the new point restores from a cache that predates it')
      assert.equal(after1.stats.misses, fresh + 1, 'only the new packs and the new manifest were fetched')
      const cachedAfter = (await readdir(join(cacheDir, writer.id, 'packs'))).map(decodeURIComponent)
      assert.deepEqual(cachedAfter.sort(), [...nowPacks].sort(), 'entries of collected packs are gone')

      // A manifest replaced in the store (here damaged by hand) is read again, not served from the cache.
      const raw = backend()
      const name = `rp/${rp2.id}`
      const good = await raw.get(name)
      const bad = Buffer.from(good)
      bad[bad.length - 40] = (bad[bad.length - 40] ?? 0) ^ 0xff
      await raw.put(name, bad)
      const replaced = await session(true)
      assert.deepEqual(replaced.ids, [rp3.id], 'the damaged manifest is skipped as without a cache')
      assert.equal(replaced.stats.stale, 1)
      await raw.put(name, good)
      await raw.close?.()

      // Damaged cache files (a pack index and a manifest) are detected, deleted and fetched again.
      const warmAgain = await session(true)
      assert.equal(warmAgain.stats.misses, 1, 'the restored manifest is fetched once more')
      const packFiles = await readdir(join(cacheDir, writer.id, 'packs'))
      const manifestFiles = await readdir(join(cacheDir, writer.id, 'manifests'))
      for (const f of [
        join(cacheDir, writer.id, 'packs', packFiles[0]!),
        join(cacheDir, writer.id, 'manifests', manifestFiles[0]!),
      ]) {
        const data = await readFile(f)
        data[data.length - 50] = (data[data.length - 50] ?? 0) ^ 0x01
        await writeFile(f, data)
      }
      const repaired = await session(true)
      assert.deepEqual(repaired.ids, [rp2.id, rp3.id])
      assert.ok(repaired.data.equals(img))
      assert.deepEqual([repaired.stats.corrupt, repaired.stats.misses], [2, 2])
      const rewritten = await session(true)
      assert.deepEqual(
        [rewritten.stats.corrupt, rewritten.stats.misses],
        [0, 0],
        'the entries were written again',
      )
      assert.equal(repaired.total - rewritten.total, 2, 'one request more for each damaged entry')

      // A bound smaller than the entries: the cache stays within it and the answers stay right.
      const bound = Math.floor((rewritten.bytes ?? 0) / 2)
      const small = await session(true, { cacheBytes: bound })
      assert.ok(small.data.equals(img))
      assert.ok((small.bytes ?? 0) <= bound, `${small.bytes} bytes kept for a bound of ${bound}`)
      assert.ok((small.stats.evicted ?? 0) > 0)
      await writer.close()
    })
  })
