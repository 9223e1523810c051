// How an object-store backup cuts its packs, seen at the store (a proxy in front of s3rver logs each
// upload and its length): a pack is uploaded only once it is closed, so the first packs are small (a
// quarter of the vault's pack size: the uploads start early in the backup), they grow to the pack size
// (32 MiB; 16 MiB here, to keep the image small), and near the end they shrink again (the last upload,
// which follows the last read, is short). Each pack is one PUT, with no HEAD before it (its name is
// random). The backup restores byte-exact and every pack it names is in the store.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { startFaultProxy } from './_fault-proxy.js'
import { sharedS3rver } from './_test-object-stores.js'
import { bufferSink, bufferSource } from './_testing.js'
import { openVaultBackend } from './open-vault-backend.js'
import { Vault } from './vault.js'
import { S3_BACKEND } from './vault-backend.contract.js'

const MiB = 1024 * 1024
const item = { kind: 'disk', name: 'vm1' }
const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups) await c()
})

// One store: how packs are cut is the backup's, the same for every object store (Azure's uploads go
// through the same writer; the object-store suites cover its backend).
for (const [store, server] of [[S3_BACKEND, sharedS3rver]] as const)
  describe(`packs of a backup to an object store (${store.name})`, () => {
    it('uploads a small first pack early, grows its packs to the vault size and ends with small ones, one PUT each; the point restores byte-exact', async () => {
      const { endpoint } = await server()
      const place = await store.place()
      const proxy = await startFaultProxy(new URL(endpoint).origin)
      cleanups.push(async () => {
        await proxy.close()
        await place.cleanup()
      })
      const url = place.url.replace(
        encodeURIComponent(new URL(endpoint).origin),
        encodeURIComponent(proxy.endpoint),
      )
      // Random (incompressible) data: 32 MiB stored, in packs of 4 and 8 MiB (the ramp), then about
      // what is still to come each, at least 4 MiB, and the rest.
      const img = randomBytes(32 * MiB)
      const vault = await Vault.create(openVaultBackend(url, place.options), {
        workers: 1,
        packSize: 16 * MiB,
      })
      try {
        const rp = await vault.backup({ item, sources: [bufferSource('os', img)] })
        const puts = proxy.log.filter((r) => r.method === 'PUT' && r.url.includes('/packs/'))
        // In the order the packs were cut (the point's), not the order their requests reached the
        // proxy: packs whose names were listed together start together, and may arrive in any order.
        const uploads = rp.packs.map((name) => puts.find((r) => r.url.includes(name))?.length ?? 0)
        const mib = uploads.map((n) => (n / MiB).toFixed(1)).join(', ')
        assert.equal(puts.length, rp.packs.length, `one upload per pack: ${mib}`)
        assert.ok(
          uploads.every((n) => n > 0),
          `every pack of the point was uploaded: ${mib}`,
        )
        // A pack's name is drawn at random: its conditional write goes without a HEAD before it.
        assert.deepEqual(
          proxy.log.filter((r) => r.method === 'HEAD' && r.url.includes('/packs/')).map((r) => r.url),
          [],
        )
        // A pack closes at the first chunk that reaches its size: up to one 1 MiB chunk (and its index) over.
        const within = (n: number, size: number) => n >= size && n < size + 1.1 * MiB
        assert.ok(within(uploads[0]!, 4 * MiB), `the first pack is 4 MiB: ${mib}`)
        assert.ok(within(uploads[1]!, 8 * MiB), `the second is 8 MiB: ${mib}`)
        assert.ok(
          uploads.every((n) => n < 16 * MiB + 1.1 * MiB),
          `no pack over the vault's size: ${mib}`,
        )
        const data = uploads.filter((n) => n > MiB)
        assert.ok(
          data.slice(2).every((n, i) => n <= data[i + 1]! + 1.1 * MiB),
          `after the ramp the packs only shrink: ${mib}`,
        )
        // The tree pages follow the data in a pack of their own (under 1 MiB).
        assert.ok(data.at(-1)! < 4 * MiB + 1.1 * MiB, `the last data pack is at most 4 MiB: ${mib}`)
        assert.ok(data.length <= 7, `a few packs more than 32 MiB / 16 MiB: ${mib}`)
        const names = new Set((await vault.backend.list('packs/')).map((o) => o.name))
        for (const p of rp.packs) assert.ok(names.has(p), `${p} is in the store`)
        const sink = bufferSink(img.length)
        await vault.restore(rp.id, 'os', sink)
        assert.ok(sink.data.equals(img), 'the restore is byte-exact')
      } finally {
        await vault.close()
      }
    })
  })
