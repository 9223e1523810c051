import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import type { BackupCheckpoint } from './_backup-checkpoint.js'
import { bufferSink, bufferSource } from './_testing.js'
import { openVaultBackend } from './open-vault-backend.js'
import type { BackupSource } from './types.js'
import { Vault } from './vault.js'
import { FS_BACKEND } from './vault-backend.contract.js'

const MiB = 1024 * 1024
const SIZE = 64 * MiB
const item = { kind: 'disk', name: 'd1' }

/**
 * A backup of `data` whose reads stop at `stopAt` (they never answer, as in a process that hangs
 * there) after checkpoints were taken; it is then stopped the way the service suspends a job for a
 * later resume (aborted, its lock kept), once every pack it had cut is in the vault; answers the last
 * checkpoint. The first vault is closed and left as a killed service leaves it: lock and packs in
 * place, no manifest.
 */
async function cutShort(url: string, data: Buffer, stopAt: number): Promise<BackupCheckpoint> {
  const v = await Vault.open(openVaultBackend(url), undefined, { workers: 2 })
  let last: BackupCheckpoint | undefined
  let stopped = false
  const kill = new AbortController()
  const inner = bufferSource('os', data)
  const source: BackupSource = {
    ...inner,
    read: (offset, length) => {
      if (offset + length > stopAt) {
        stopped = true
        return new Promise<Buffer>((_, reject) =>
          kill.signal.addEventListener('abort', () => reject(kill.signal.reason)),
        )
      }
      return inner.read(offset, length)
    },
  }
  const run = v.backup({
    item,
    sources: [source],
    signal: kill.signal,
    keepLockOnAbort: () => true,
    onCheckpoint: (c) => (last = c),
  })
  for (let i = 0; i < 2000 && !(stopped && last && Object.values(last.disks).flat().length > 0); i++)
    await new Promise((r) => setTimeout(r, 10))
  assert.ok(stopped && last, 'the backup reached the stop after a checkpoint')
  // The backup returns only once no pack write runs: the packs already cut are in the vault, as they
  // would be before a kill (a wait of fixed length let a late pack land after the resume had started).
  kill.abort()
  await assert.rejects(run, { code: 'Cancelled' })
  await v.close()
  return structuredClone(last)
}

async function packBytes(v: Vault): Promise<number> {
  return (await v.backend.list('packs/')).reduce((n, o) => n + o.size, 0)
}

describe('a vault backup resumed from its checkpoint', () => {
  it('reads only what its committed subtrees do not cover, writes no chunk twice, and commits one point that restores the source', async () => {
    const place = await FS_BACKEND.place()
    const data = randomBytes(SIZE)
    const created = await Vault.create(openVaultBackend(place.url), {
      packSize: 2 * MiB,
      compressionLevel: 0,
    })
    await created.close()
    const v = await Vault.open(openVaultBackend(place.url), undefined, { workers: 2 })
    try {
      const checkpoint = await cutShort(place.url, data, 40 * MiB)
      const committed = Object.values(checkpoint.disks).flat()
      // Leaves 0 and 1 (32 MiB) are done before the reads stop at 40 MiB.
      assert.ok(committed.reduce((n, s) => n + s[3], 0) >= 16 * MiB, JSON.stringify(checkpoint))
      assert.equal((await v.backend.list('locks/')).length, 1, 'the cut backup left its lock')
      const before = await packBytes(v)

      const source = bufferSource('os', data)
      let resumedAt = -1
      const rp = await v.backup({
        item,
        sources: [source],
        resume: checkpoint,
        onResume: (n) => (resumedAt = n),
      })
      assert.equal(rp.id, checkpoint.point, 'the resumed backup commits the point it started')
      assert.ok(resumedAt >= 16 * MiB, `resumed at ${resumedAt}`)
      assert.equal(source.bytesRead, SIZE - resumedAt, 'only what the checkpoint does not cover is read')
      assert.ok(source.bytesRead < SIZE)
      // Every chunk is in the vault once: the packs hold the disk's bytes and a little index.
      const stored = await packBytes(v)
      assert.ok(stored > before, 'the resumed run wrote the rest')
      assert.ok(stored < SIZE + MiB, `packs hold ${stored} bytes for a ${SIZE}-byte disk`)
      assert.equal(rp.bytesAdded, stored, 'the point counts the packs of both runs')
      assert.equal(rp.disks[0]!.bytesScanned, SIZE, 'the point counts the reads of both runs')
      assert.deepEqual(
        (await v.listRecoveryPoints()).map((p) => p.id),
        [rp.id],
      )
      assert.deepEqual(await v.backend.list('locks/'), [], 'the lock goes with the commit')
      const sink = bufferSink(SIZE)
      await v.restore(rp.id, 'os', sink)
      assert.ok(sink.data.equals(data), 'the restore is byte-identical')
      const report = await v.verify({ readData: true })
      assert.deepEqual(report.problems, [])
    } finally {
      await v.close()
      await place.cleanup()
    }
  })

  it('starts over under the same id when its lock is gone, and still commits one whole point', async () => {
    const place = await FS_BACKEND.place()
    const data = randomBytes(SIZE / 2)
    const created = await Vault.create(openVaultBackend(place.url), {
      packSize: 2 * MiB,
      compressionLevel: 0,
    })
    await created.close()
    const v = await Vault.open(openVaultBackend(place.url), undefined, { workers: 2 })
    try {
      const checkpoint = await cutShort(place.url, data, 24 * MiB)
      await v.backend.delete(`locks/${checkpoint.point}`)
      const source = bufferSource('os', data)
      let resumedAt = -1
      const rp = await v.backup({
        item,
        sources: [source],
        resume: checkpoint,
        onResume: (n) => (resumedAt = n),
      })
      assert.equal(resumedAt, 0, 'without its lock the checkpoint is not trusted')
      assert.equal(source.bytesRead, data.length)
      assert.equal(rp.id, checkpoint.point)
      const sink = bufferSink(data.length)
      await v.restore(rp.id, 'os', sink)
      assert.ok(sink.data.equals(data))
    } finally {
      await v.close()
      await place.cleanup()
    }
  })

  it('answers the committed point when the manifest was written before the cut', async () => {
    const place = await FS_BACKEND.place()
    const data = randomBytes(4 * MiB)
    const v = await Vault.create(openVaultBackend(place.url), { packSize: 2 * MiB })
    try {
      let last: BackupCheckpoint | undefined
      const rp = await v.backup({
        item,
        sources: [bufferSource('os', data)],
        onCheckpoint: (c) => (last = c),
      })
      assert.ok(last)
      const source = bufferSource('os', data)
      const again = await v.backup({ item, sources: [source], resume: last })
      assert.equal(again.id, rp.id)
      assert.equal(source.bytesRead, 0)
      assert.equal((await v.listRecoveryPoints()).length, 1)
    } finally {
      await v.close()
      await place.cleanup()
    }
  })
})
