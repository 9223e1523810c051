import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { bufferSink, bufferSource, scatterWrites } from './_testing.js'
import { fileSink } from './file-sink.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import type { RecoveryPoint } from './types.js'
import { Vault } from './vault.js'

const MiB = 1024 * 1024
const item = { kind: 'vm', name: 'vm1' }

/** A vault whose points each need many more packs than `openPacks` (2), and each point's image. */
async function manyPacks(dir: string, points: number) {
  const v = await Vault.create(new FsVaultBackend(join(dir, 'vault')), {
    packSize: 256 * 1024,
    workers: 2,
    openPacks: 2,
  })
  const img = randomBytes(8 * MiB)
  const images = new Map<string, Buffer>()
  let rp: RecoveryPoint = await v.backup({ item, sources: [bufferSource('os', img)] })
  images.set(rp.id, Buffer.from(img))
  for (let i = 1; i < points; i++) {
    const changed = scatterWrites(img, 40, i)
    rp = await v.backup({
      item,
      base: rp.id,
      sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
    })
    images.set(rp.id, Buffer.from(img))
  }
  return { v, images }
}

async function restoreToFile(v: Vault, dir: string, rp: string, size: number): Promise<Buffer> {
  const path = join(dir, `${rp}.raw`)
  const sink = await fileSink(path, { size })
  try {
    await v.restore(rp, 'os', sink)
  } finally {
    await sink.close?.()
  }
  const data = await readFile(path)
  await unlink(path)
  return data
}

describe('restores with a pack cache smaller than the packs a point needs', () => {
  it('restore into a file, verify --read-data, prune and gc of one vault at once: every kept point restores exactly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-packs-'))
    const { v, images } = await manyPacks(dir, 12)
    try {
      const ids = [...images.keys()]
      const packs = (await v.backend.list('packs/')).length
      assert.ok(packs > 10, `only ${packs} packs: the test needs many more than the cache holds`)
      const last = ids.at(-1)!
      const latest = await v.getRecoveryPoint(last)
      assert.ok(latest.packs.length < packs, 'the latest point reuses packs of earlier points')

      // Each point alone, into a file (the workers' path that failed with "fd … Received -1").
      for (const id of ids) {
        const data = await restoreToFile(v, dir, id, 8 * MiB)
        assert.ok(data.equals(images.get(id)!), `point ${id} restored wrong data`)
      }
      // All at once: restores of the points prune keeps, verify reading every chunk, prune and gc.
      const kept = ids.slice(-4)
      const [restored, report] = await Promise.all([
        Promise.all(kept.map((id) => restoreToFile(v, dir, id, 8 * MiB))),
        v.verify({ readData: true, openPacks: 2 }),
        (async () => {
          await v.prune({ policy: { keepLast: 4 } })
          await v.gc({ repackBelow: 1 })
        })(),
      ])
      for (const [i, id] of kept.entries()) {
        assert.ok(restored[i]!.equals(images.get(id)!), `point ${id} differs`)
      }
      assert.deepEqual(report.unrestorable, [])
      assert.deepEqual(report.problems, [])
      // After the dust settles: verify through the restore code agrees, every kept point restores.
      const after = await v.verify({ readData: true, openPacks: 2 })
      assert.deepEqual(after.problems, [])
      assert.equal(after.recoveryPoints, 4)
      assert.ok(after.bytesRestored >= 8 * MiB, `read ${after.bytesRestored} bytes through restores`)
      for (const id of kept) {
        const sink = bufferSink(8 * MiB)
        await v.restore(id, 'os', sink)
        assert.ok(sink.data.equals(images.get(id)!))
        assert.ok((await restoreToFile(v, dir, id, 8 * MiB)).equals(images.get(id)!))
      }
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('verify --read-data names a point whose own pack is gone and passes the points that do not need it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-packs-'))
    const { v, images } = await manyPacks(dir, 3)
    try {
      const ids = [...images.keys()]
      assert.deepEqual((await v.verify({ readData: true })).problems, [])
      // The last incremental's own pack holds only its changed pages: deleting it breaks that point only.
      const last = await v.getRecoveryPoint(ids[2]!)
      for (const p of last.packs) await v.backend.delete(p)
      const report = await v.verify({ readData: true })
      assert.ok(report.unrestorable.includes(ids[2]!), JSON.stringify(report))
      assert.ok(!report.unrestorable.includes(ids[0]!), JSON.stringify(report.unrestorable))
      assert.ok(
        report.problems.some((p) => p.object === `rp/${ids[2]}` && p.message.includes(ids[2]!)),
        JSON.stringify(report.problems),
      )
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
