import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { BLOB_HEADER } from './_chunk-codec.js'
import { readPackIndex } from './_chunk-index.js'
import { bufferSink, bufferSource, scatterWrites } from './_testing.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { Vault } from './vault.js'

const MiB = 1024 * 1024
const item = { kind: 'disks', name: 'd1' }
const mem = () => new MemoryVaultBackend(`copy-${randomBytes(6).toString('hex')}`)
const pass = (p: string) => ({ encryption: { passphrase: p }, scryptN: 1024 })

async function restored(v: Vault, id: string, size: number): Promise<Buffer> {
  const sink = bufferSink(size)
  await v.restore(id, 'os', sink)
  return sink.data
}

/** A replica of `v` on a new backend: its records copied, opened with its key (as a paired site does). */
async function replicaOf(v: Vault): Promise<Vault> {
  const backend = mem()
  for (const name of ['settings', 'keys', 'config'])
    if ((await v.backend.list(name)).some((o) => o.name === name))
      await backend.put(name, await v.backend.get(name))
  return Vault.openAlike(backend, v)
}

const packNames = async (v: Vault) => new Set((await v.backend.list('packs/')).map((o) => o.name))

/** Every (nonce → blob payload) of a vault's encrypted chunks. */
async function nonces(v: Vault): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const o of await v.backend.list('packs/')) {
    const data = await v.backend.get(o.name)
    for (const e of await readPackIndex(v.backend, o.name, o.size)) {
      const blob = data.subarray(e.offset, e.offset + e.length)
      out.set(blob.subarray(BLOB_HEADER, BLOB_HEADER + 12).toString('hex'), e.id.toString('hex'))
    }
  }
  return out
}

describe('copies between vaults (engine)', () => {
  it('copies a full then an incremental point, sending only the new chunks, and the copies restore byte-exact', async () => {
    const a = await Vault.create(mem(), { packSize: 2 * MiB, compressionLevel: 0 })
    const b = await Vault.create(mem(), { packSize: 2 * MiB, compressionLevel: 0 })
    try {
      const img = randomBytes(24 * MiB)
      const p1 = await a.backup({ item, sources: [bufferSource('os', img)] })
      const first = await b.copyTo(b).catch((e) => e)
      assert.equal(first.code, 'InvalidRequest')
      const r1 = await a.copyTo(b)
      assert.equal(r1.mode, 'ciphertext')
      assert.deepEqual(
        r1.points.map((p) => [p.id, p.state]),
        [[p1.id, 'Copied']],
      )
      const changed = scatterWrites(img, 64)
      const p2 = await a.backup({
        item,
        base: p1.id,
        sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
      })
      const r2 = await a.copyTo(b)
      assert.deepEqual(
        r2.points.map((p) => [p.id, p.state]),
        [
          [p1.id, 'AlreadyPresent'],
          [p2.id, 'Copied'],
        ],
      )
      const newBytes = p2.disks[0]!.bytesNew
      assert.ok(r2.bytesWritten <= 1.1 * newBytes, `${r2.bytesWritten} bytes sent for ${newBytes} new`)
      const c2 = await b.getRecoveryPoint(p2.id)
      assert.equal(c2.consistency, p2.consistency)
      assert.equal(c2.createdAt, p2.createdAt)
      assert.deepEqual(c2.source, p2.source)
      assert.deepEqual(await restored(b, p2.id, img.length), img)
      assert.equal((await b.verify({ sample: 1 })).problems.length, 0)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('re-encrypts between vaults with different keys, and a vault made with the same key receives ciphertext with the nonces it was sealed with', async () => {
    const a = await Vault.create(mem(), { ...pass('a'), packSize: 2 * MiB })
    const b = await Vault.create(mem(), { ...pass('b'), packSize: 2 * MiB })
    const c = await Vault.create(mem(), { ...pass('c'), sameKeyAs: a, packSize: 2 * MiB })
    try {
      const img = randomBytes(20 * MiB)
      const p1 = await a.backup({ item, sources: [bufferSource('os', img)] })
      const changed = scatterWrites(img, 32)
      const p2 = await a.backup({
        item,
        base: p1.id,
        sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
      })
      const rb = await a.copyTo(b, { points: [p1.id] })
      assert.equal(rb.mode, 'reencrypt')
      const rb2 = await a.copyTo(b)
      assert.deepEqual(
        rb2.points.map((p) => p.state),
        ['AlreadyPresent', 'Copied'],
      )
      assert.ok(rb2.bytesWritten < 2 * MiB, `${rb2.bytesWritten} bytes sent re-encrypting an incremental`)
      assert.deepEqual(await restored(b, p2.id, img.length), img)
      const rc = await a.copyTo(c)
      assert.equal(rc.mode, 'ciphertext')
      assert.deepEqual(await restored(c, p2.id, img.length), img)
      // Same key: each nonce in c carries the same chunk (same id, so same plaintext) as in a.
      const [na, nb, nc] = [await nonces(a), await nonces(b), await nonces(c)]
      for (const [n, id] of nc) assert.equal(na.get(n), id, 'a nonce of c seals the same chunk in a')
      // Different keys: b sealed everything itself, no nonce of a was reused.
      for (const n of nb.keys()) assert.ok(!na.has(n), 'b reuses no nonce of a')
    } finally {
      await a.close()
      await b.close()
      await c.close()
    }
  })

  it('a replica takes the packs of the points it lacks whole, under their names, and the points restore byte-exact', async () => {
    const a = await Vault.create(mem(), { ...pass('a'), packSize: 2 * MiB })
    const r = await replicaOf(a)
    try {
      const img = randomBytes(12 * MiB)
      const p1 = await a.backup({ item, sources: [bufferSource('os', img)] })
      const changed = scatterWrites(img, 16)
      const p2 = await a.backup({
        item,
        base: p1.id,
        sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
      })
      const report = await a.copyTo(r, { replica: true })
      assert.deepEqual(
        report.points.map((p) => p.state),
        ['Copied', 'Copied'],
      )
      // Every pack of the two backups arrived as it is: the same names, the same bytes.
      const [pa, pr] = [await packNames(a), await packNames(r)]
      assert.deepEqual([...pr].sort(), [...pa].sort())
      for (const name of pa) assert.ok((await a.backend.get(name)).equals(await r.backend.get(name)), name)
      const packBytes = (await a.backend.list('packs/')).reduce((n, o) => n + o.size, 0)
      assert.ok(report.bytesWritten >= packBytes, `${report.bytesWritten} bytes written for ${packBytes}`)
      assert.ok(
        report.bytesRead <= 1.01 * packBytes,
        `${report.bytesRead} bytes read for ${packBytes} of packs`,
      )
      assert.deepEqual(
        (await r.getRecoveryPoint(p2.id)).packs.slice().sort(),
        (await a.getRecoveryPoint(p2.id)).packs.slice().sort(),
      )
      assert.deepEqual(await restored(r, p1.id, img.length), await restored(a, p1.id, img.length))
      assert.deepEqual(await restored(r, p2.id, img.length), img)
      assert.equal((await r.verify({ sample: 1 })).problems.length, 0)
    } finally {
      await a.close()
      await r.close()
    }
  })

  it('a replica whose point names a pack the source repacked brings its chunks one by one, and a damaged pack fails the copy with VaultCorrupt before the point commits', async () => {
    const a = await Vault.create(mem(), { packSize: 2 * MiB, compressionLevel: 0 })
    const r = await replicaOf(a)
    try {
      const img = randomBytes(8 * MiB)
      const p1 = await a.backup({ item, sources: [bufferSource('os', img)] })
      // The source moves one of the point's packs to another name (as GC repacks): the manifest still
      // names the old one, which is gone.
      const moved = (await a.getRecoveryPoint(p1.id)).packs[0]!
      const data = await a.backend.get(moved)
      await a.backend.create(`packs/ff/${'f'.repeat(32)}`, data)
      await a.backend.delete(moved)
      const report = await a.copyTo(r, { replica: true })
      assert.deepEqual(
        report.points.map((p) => p.state),
        ['Copied'],
      )
      const pr = await packNames(r)
      assert.ok(!pr.has(moved) && !pr.has(`packs/ff/${'f'.repeat(32)}`), 'the moved pack was not taken whole')
      assert.deepEqual(await restored(r, p1.id, img.length), img)

      // A new point whose pack has one byte flipped inside a blob: nothing of it commits.
      const changed = scatterWrites(img, 8)
      const p2 = await a.backup({
        item,
        base: p1.id,
        sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
      })
      const bad = (await a.getRecoveryPoint(p2.id)).packs[0]!
      const bytes = Buffer.from(await a.backend.get(bad))
      bytes[16 + BLOB_HEADER + 100]! ^= 0xff
      await a.backend.delete(bad)
      await a.backend.create(bad, bytes)
      const failed = await a.copyTo(r, { replica: true }).catch((e) => e)
      assert.equal(failed.code, 'VaultCorrupt', String(failed))
      assert.match(failed.message, /damaged/)
      assert.ok(
        !(await r.listRecoveryPoints()).some((p) => p.id === p2.id),
        'the damaged point is not on the replica',
      )
      assert.ok(!(await packNames(r)).has(bad), 'the damaged pack was not written')
    } finally {
      await a.close()
      await r.close()
    }
  })
})
