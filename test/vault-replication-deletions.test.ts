import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { backupGeo, MiB, pointIds, twoSites, until, writeOs } from './_geo.js'
import { api, type Json, randomDisk } from './_jobs.js'
import type { RunningService } from './_service.js'

// Deletions follow the primary (docs/replication.md, "Deletions, prune and soft delete"): a point
// soft-deleted, undeleted, deleted or pruned on the primary is so on the replica at the next sync and
// GC there frees its chunks; the replica never removes a point the primary still lists, and keeps an
// immutable vault's retained point even when it vanishes from the primary behind its back.

const softDeleted = async (url: string): Promise<Json[]> =>
  (await api(url, 'GET', '/api/v1/vaults/geo/softDeletedRecoveryPoints')).body.items as Json[]

/** Waits for two more syncs of the replica than it had made when called (each sets lastSyncAt). */
async function twoSyncs(west: RunningService): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const before = (await api(west.url, 'GET', '/api/v1/vaults/geo')).body.replication.lastSyncAt
    await until('the replica synced', async () => {
      const r = (await api(west.url, 'GET', '/api/v1/vaults/geo')).body.replication
      return r.lastSyncAt !== undefined && r.lastSyncAt !== before
    })
  }
}

describe('deletions on the primary of a GRS vault', () => {
  it('are mirrored to the replica: soft delete, undelete, delete and prune with GC, never a live point, immutability kept', async () => {
    const { east, west } = await twoSites()
    try {
      const made = await api(east.url, 'POST', '/api/v1/vaults', {
        name: 'geo',
        redundancy: 'GRS',
        pair: 'west',
      })
      assert.equal(made.status, 201, JSON.stringify(made.body))
      await randomDisk(east.url, 'os', 4)
      const p1 = await backupGeo(east.url)
      // p2's first MiB is overwritten by p3: its chunks there are p2's alone.
      await writeOs(east.url, 0, MiB)
      const p2 = await backupGeo(east.url)
      await writeOs(east.url, 0, MiB)
      const p3 = await backupGeo(east.url)
      await writeOs(east.url, 2 * MiB, 256 * 1024)
      const p4 = await backupGeo(east.url)
      const all = [p1, p2, p3, p4].sort()
      await until('the replica holds every point', async () => (await pointIds(west.url, 'geo')).length === 4)
      assert.deepEqual(await pointIds(west.url, 'geo'), all)

      // Soft delete (on by default): the replica soft-deletes it too, with the primary's purge time.
      assert.equal((await api(east.url, 'DELETE', `/api/v1/vaults/geo/recoveryPoints/${p1}`)).status, 204)
      await until(
        'the soft delete reached the replica',
        async () => !(await pointIds(west.url, 'geo')).includes(p1),
      )
      const [theirs] = await softDeleted(east.url)
      const [ours] = await softDeleted(west.url)
      assert.equal(ours?.id, p1)
      assert.equal(ours?.purgeAt, theirs?.purgeAt)

      // Undelete on the primary: the point is live on the replica again, its record gone.
      const undo = await api(east.url, 'POST', `/api/v1/vaults/geo/softDeletedRecoveryPoints/${p1}/undelete`)
      assert.equal(undo.status, 200, JSON.stringify(undo.body))
      await until('the undelete reached the replica', async () =>
        (await pointIds(west.url, 'geo')).includes(p1),
      )
      await until('the stale record went', async () => (await softDeleted(west.url)).length === 0)

      // Settings follow; then a delete without soft delete, and a prune: gone from the replica, GC there frees p2's chunks.
      const off = await api(east.url, 'PATCH', '/api/v1/vaults/geo/settings', {
        softDelete: { state: 'Disabled' },
      })
      assert.equal(off.status, 200, JSON.stringify(off.body))
      const usage = async () => (await api(west.url, 'GET', '/api/v1/vaults/geo/usage')).body as Json
      const before = await usage()
      assert.equal((await api(east.url, 'DELETE', `/api/v1/vaults/geo/recoveryPoints/${p2}`)).status, 204)
      await until(
        'the delete reached the replica',
        async () => !(await pointIds(west.url, 'geo')).includes(p2),
      )
      await until('GC on the replica freed the chunks only p2 held', async () => {
        const now = await usage()
        return now.recoveryPoints === 3 && before.storedBytes - now.storedBytes >= MiB / 2
      })
      assert.equal(
        (await api(west.url, 'GET', '/api/v1/vaults/geo/settings')).body.softDelete.state,
        'Disabled',
      )
      const pruned = await api(east.url, 'POST', '/api/v1/vaults/geo/prune', {
        keepLast: 2,
        includePolicyPoints: true,
      })
      assert.equal(pruned.status, 200, JSON.stringify(pruned.body))
      assert.deepEqual(pruned.body.removed, [p1])
      await until(
        'the prune reached the replica',
        async () => !(await pointIds(west.url, 'geo')).includes(p1),
      )
      assert.deepEqual(await pointIds(west.url, 'geo'), [p3, p4].sort())
      assert.deepEqual(await softDeleted(west.url), [])

      // Never a point the primary lists: replayed messages change nothing, syncs keep p3 and p4.
      const replay = await api(west.url, 'POST', '/api/v1/replication/vaults/geo/replica', {
        vaultId: 'other',
        primarySite: 'nobody',
        epoch: 1,
      })
      assert.equal(replay.body.error?.code, 'ReplicationRefused', JSON.stringify(replay.body))
      await twoSyncs(west)
      assert.deepEqual(await pointIds(west.url, 'geo'), [p3, p4].sort())

      // Immutability follows too; a point that vanishes from the immutable primary behind its back
      // (its manifest removed from the vault folder) stays on the replica: its retention runs.
      const lock = await api(east.url, 'PATCH', '/api/v1/vaults/geo/settings', {
        immutability: { state: 'Enabled' },
      })
      assert.equal(lock.status, 200, JSON.stringify(lock.body))
      await until(
        'the replica is immutable',
        async () =>
          (await api(west.url, 'GET', '/api/v1/vaults/geo/settings')).body.immutability.state === 'Enabled',
      )
      const location = (await api(east.url, 'GET', '/api/v1/vaults/geo')).body.location as string
      rmSync(join(location, 'rp', p3))
      assert.deepEqual(await pointIds(east.url, 'geo'), [p4])
      await twoSyncs(west)
      assert.deepEqual(
        await pointIds(west.url, 'geo'),
        [p3, p4].sort(),
        'the replica keeps the retained point',
      )
    } finally {
      await Promise.all([east.dispose(), west.dispose()])
    }
  })
})
