import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { bufferSink, bufferSource, scatterWrites } from './_testing.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { Vault } from './vault.js'

const MiB = 1024 * 1024
const item = { kind: 'vm', name: 'vm1' }

async function withVault(fn: (v: Vault) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-usage-'))
  const v = await Vault.create(new FsVaultBackend(dir), { packSize: 4 * MiB, workers: 2 })
  try {
    await fn(v)
  } finally {
    await v.close()
    await rm(dir, { recursive: true, force: true })
  }
}

describe('full backups and usage', () => {
  it('a full backup of unchanged data stores about nothing new, also after incrementals', async () => {
    await withVault(async (v) => {
      const img = randomBytes(8 * MiB)
      const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
      assert.ok(rp1.bytesAdded >= 8 * MiB)
      // No base: a full backup, compared by checksum with the item's latest point.
      const rp2 = await v.backup({ item, sources: [bufferSource('os', img)] })
      assert.equal(rp2.disks[0]!.mode, 'full')
      assert.equal(rp2.parent, null)
      assert.ok(rp2.bytesAdded < 64 * 1024, `a full backup of unchanged data added ${rp2.bytesAdded}`)
      // After an incremental (its changes stored as bundles, not 1 MiB chunks), a full one still adds little.
      const changed = scatterWrites(img, 30)
      const rp3 = await v.backup({
        item,
        base: rp2.id,
        sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
      })
      const rp4 = await v.backup({ item, sources: [bufferSource('os', img)] })
      assert.ok(rp4.bytesAdded < 64 * 1024, `full after incremental added ${rp4.bytesAdded}`)
      for (const rp of [rp3, rp4]) {
        const sink = bufferSink(img.length)
        await v.restore(rp.id, 'os', sink)
        assert.ok(sink.data.equals(img))
      }
      // Without a reference, the same data is stored again, and usage shows it.
      const before = await v.usage()
      const rp5 = await v.backup({ item, reference: null, sources: [bufferSource('os', img)] })
      assert.ok(rp5.bytesAdded >= 8 * MiB)
      const after = await v.usage()
      assert.ok(after.dataBytes >= before.dataBytes + 8 * MiB, 'every stored copy counts')
      assert.ok(after.deduplicationRatio < before.deduplicationRatio)
    })
  })

  it('usage: logical bytes per point, new bytes per point, and ratios as documented', async () => {
    await withVault(async (v) => {
      const img = Buffer.alloc(16 * MiB)
      randomBytes(4 * MiB).copy(img, 0)
      const points = []
      for (let i = 0; i < 3; i++) points.push(await v.backup({ item, sources: [bufferSource('os', img)] }))
      const u = await v.usage()
      assert.equal(u.recoveryPoints, 3)
      assert.deepEqual(
        u.perRecoveryPoint.map((p) => p.logicalBytes),
        [4 * MiB, 4 * MiB, 4 * MiB],
      )
      assert.deepEqual(
        u.perRecoveryPoint.map((p) => p.bytesAdded),
        points.map((p) => p.bytesAdded),
      )
      assert.equal(u.logicalBytes, 12 * MiB)
      assert.equal(u.dataBytes, 4 * MiB, 'the data is held once')
      assert.equal(u.deduplicationRatio, u.logicalBytes / u.dataBytes)
      assert.equal(u.compressionRatio, u.dataBytes / u.dataStoredBytes)
      assert.equal(u.overallRatio, u.logicalBytes / u.storedBytes)
      assert.ok(u.deduplicationRatio > 2.9 && u.deduplicationRatio <= 3)
    })
  })
})
