import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { bufferSource, scatterWrites } from './_testing.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { Vault } from './vault.js'

const MiB = 1024 * 1024
const item = { kind: 'vm', name: 'vm1' }

describe('VaultDiskReader', () => {
  it('reads any range of an incremental point byte for byte, holes as zeros, and ranges() leaves the holes out', async () => {
    const v = await Vault.create(new MemoryVaultBackend('memory:reader'), { workers: 1 })
    try {
      // 40 MiB with data in [1 MiB, 9 MiB) and [20 MiB, 21 MiB) only: three leaves, holes between.
      const img = Buffer.alloc(40 * MiB)
      randomBytes(8 * MiB).copy(img, 1 * MiB)
      randomBytes(MiB).copy(img, 20 * MiB)
      const ranges = [
        { start: 1 * MiB, end: 9 * MiB },
        { start: 20 * MiB, end: 21 * MiB },
      ]
      const base = await v.backup({ item, sources: [bufferSource('os', img, { ranges })] })
      const scratch = Buffer.from(img)
      const changed = scatterWrites(scratch, 30, 3).filter((r) => r.start >= MiB && r.end <= 9 * MiB)
      for (const r of changed) scratch.copy(img, r.start, r.start, r.end)
      const rp = await v.backup({
        item,
        base: base.id,
        sources: [bufferSource('os', img, { ranges, changes: { changed, cleared: [] } })],
      })
      const reader = await v.openDiskReader(rp.id, 'os', { cacheBytes: 4 * MiB })
      assert.equal(reader.size, img.length)
      for (const [o, n] of [
        [0, 4096],
        [MiB - 100, 300],
        [1234567, 3 * MiB + 17],
        [9 * MiB - 5, 11 * MiB + 10],
        [40 * MiB - 1, 1],
      ] as const) {
        assert.ok((await reader.read(o, n)).equals(img.subarray(o, o + n)), `bytes ${o}+${n}`)
      }
      // Sequential reads through a cache far smaller than the disk.
      for (let o = 0; o < img.length; o += 3 * MiB) {
        const n = Math.min(3 * MiB, img.length - o)
        assert.ok((await reader.read(o, n)).equals(img.subarray(o, o + n)), `sequential at ${o}`)
      }
      assert.deepEqual(await reader.ranges(0, img.length), ranges)
      assert.deepEqual(await reader.ranges(8 * MiB, 13 * MiB), [
        { start: 8 * MiB, end: 9 * MiB },
        { start: 20 * MiB, end: 21 * MiB },
      ])
      await assert.rejects(reader.read(40 * MiB - 1, 2), /outside the disk/)
      await assert.rejects(v.openDiskReader(rp.id, 'lun9'), /holds "os"/)
      await reader.close()
    } finally {
      await v.close()
    }
  })
})
