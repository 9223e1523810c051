import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { describe, it } from 'node:test'
import { EXIT } from '../src/util/index.js'
import { backupGeo, diskHash, GEO_DISKS, MiB, pointIds, restart, twoSites, until, writeOs } from './_geo.js'
import { api, ended, type Json, randomDisk } from './_jobs.js'
import { cairnAt, type RunningService } from './_service.js'

// A GRS vault between two real `cairn serve` processes on loopback, separate data folders: the
// replica follows the primary, catches up after an outage of the secondary, refuses client writes,
// ignores replayed or stale replication messages, and restores a VM's disk when the primary's data
// folder is gone; then failover promotes it.

const SIZE = 8 * MiB
const _disks = GEO_DISKS

describe('a GRS vault between two sites', () => {
  it('replicates, catches up after an outage, stays read-only, restores with the primary gone, and fails over', async () => {
    let { east, west } = await twoSites()
    const sites: RunningService[] = [east, west]
    try {
      // GRS from the CLI; the paired site holds the replica at once.
      const made = await cairnAt(east.url, [
        'vault',
        'create',
        'geo',
        '--redundancy',
        'GRS',
        '--pair',
        'west',
      ])
      assert.equal(made.code, 0, made.stderr)
      const replica = await api(west.url, 'GET', '/api/v1/vaults/geo')
      assert.equal(replica.status, 200, JSON.stringify(replica.body))
      assert.equal(replica.body.replication.role, 'Secondary')
      const lrs = await cairnAt(east.url, ['vault', 'create', 'local'])
      assert.equal(lrs.code, 0, lrs.stderr)
      assert.equal(JSON.parse(lrs.stdout).replication.redundancy, 'LRS')

      await randomDisk(east.url, 'os', SIZE / MiB)
      const p1 = await backupGeo(east.url)
      // Like Azure: the redundancy is fixed once a point exists.
      const locked = await cairnAt(east.url, ['vault', 'redundancy', 'geo', 'LRS'])
      assert.equal(locked.code, EXIT.conflict, locked.stderr)
      assert.match(locked.stderr, /RedundancyLocked/)

      await until('the replica holds the first point', async () =>
        (await pointIds(west.url, 'geo')).includes(p1),
      )
      await until('the primary reports the sync', async () => {
        const r = (await api(east.url, 'GET', '/api/v1/vaults/geo')).body.replication
        return r.lastSyncAt !== undefined && r.pointsBehind === 0 && r.secondaryHealth === 'Healthy'
      })
      const shown = await cairnAt(east.url, ['vault', 'show', 'geo'], { json: false })
      assert.match(shown.stdout, /replication role: +Primary/)
      assert.match(shown.stdout, /replication lastSyncAt/)

      // The replica refuses client writes: backups into it, deleting its points, copies into it.
      const refusedBackup = await api(west.url, 'POST', '/api/v1/vaults/geo/backups', {
        path: '/etc/hostname',
      })
      assert.equal(refusedBackup.body.error?.code, 'VaultIsReplica', JSON.stringify(refusedBackup.body))
      const refusedDelete = await api(west.url, 'DELETE', `/api/v1/vaults/geo/recoveryPoints/${p1}`)
      assert.equal(refusedDelete.body.error?.code, 'VaultIsReplica', JSON.stringify(refusedDelete.body))

      // Replayed or stale replication messages change nothing: the replica request again, a demotion
      // with an epoch that is not newer, objects outside the vault's names.
      const replay = await api(west.url, 'POST', '/api/v1/replication/vaults/geo/replica', {
        vaultId: 'other',
        primarySite: 'nobody',
        epoch: 1,
      })
      assert.equal(replay.body.error?.code, 'ReplicationRefused', JSON.stringify(replay.body))
      const stale = await api(east.url, 'POST', '/api/v1/replication/vaults/geo/demote', {
        epoch: 1,
        primarySite: replica.body.replication.pair ?? 'x',
      })
      assert.equal(stale.body.error?.code, 'ReplicationRefused', JSON.stringify(stale.body))
      for (const name of ['../catalog.db', 'rp/../../x', 'packs'])
        assert.equal(
          (
            await api(
              east.url,
              'GET',
              `/api/v1/replication/vaults/geo/object?name=${encodeURIComponent(name)}`,
            )
          ).status,
          400,
          name,
        )
      const fromReplica = await api(west.url, 'GET', '/api/v1/replication/vaults/geo/objects?prefix=rp/')
      assert.equal(fromReplica.body.error?.code, 'ReplicationRefused', 'a replica serves nothing onwards')

      // Outage of the secondary: the primary goes on backing up, the secondary catches up after.
      await west.stop()
      await writeOs(east.url, 2 * MiB, MiB)
      const p2 = await backupGeo(east.url)
      await writeOs(east.url, 5 * MiB, 512 * 1024)
      const p3 = await backupGeo(east.url)
      const during = (await api(east.url, 'GET', '/api/v1/vaults/geo')).body.replication
      assert.ok(during.pointsSinceSync >= 2, JSON.stringify(during))
      west = await restart(west)
      sites[1] = west
      await until('the replica caught up', async () => {
        const ids = await pointIds(west.url, 'geo')
        return [p1, p2, p3].every((p) => ids.includes(p))
      })
      // The round records its wire bytes after its last manifest: the points may be listed first.
      await until(
        'the catch-up round recorded its wire bytes',
        async () => (await api(west.url, 'GET', '/api/v1/vaults/geo')).body.replication.lastSyncWireBytes > 0,
      )
      const wire = (await api(west.url, 'GET', '/api/v1/vaults/geo')).body.replication
      assert.ok(wire.lastSyncWireBytes > 0, JSON.stringify(wire))
      // Only the changed chunks travelled for p2 and p3 (1.5 MiB of new data, far less than the disk).
      assert.ok(wire.lastSyncWireBytes < 4 * MiB, JSON.stringify(wire))

      // The primary's site is lost: process killed, data folder deleted.
      const want = await diskHash(east.url, 'os', SIZE)
      await east.stop('SIGKILL')
      rmSync(east.data, { recursive: true, force: true })
      const verify = await api(west.url, 'POST', '/api/v1/vaults/geo/verify', { readData: true })
      const verified = await ended(west.url, verify.body.id)
      assert.deepEqual(verified.result.problems, [], JSON.stringify(verified.result))
      const restore = await api(west.url, 'POST', `/api/v1/vaults/geo/recoveryPoints/${p3}/restore`, {
        target: { account: 'devstoreaccount1', container: 'disks', disk: 'os' },
      })
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      assert.equal((await ended(west.url, restore.body.id)).state, 'Completed')
      assert.equal(await diskHash(west.url, 'os', SIZE), want, 'the cross-region restore is byte-exact')

      // Failover: the replica becomes the primary and accepts backups.
      const fo = await cairnAt(west.url, ['vault', 'failover', 'geo'])
      assert.equal(fo.code, 0, fo.stderr)
      const after = JSON.parse(fo.stdout) as Json
      assert.equal(after.role, 'Primary')
      assert.equal(after.oldPrimaryNotified, false)
      const p4 = await backupGeo(west.url)
      assert.ok((await pointIds(west.url, 'geo')).includes(p4))
    } finally {
      await Promise.all(sites.map((s) => s.dispose()))
      await Promise.all([east.dispose(), west.dispose()])
    }
  })
})
