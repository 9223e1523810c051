import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { api, D, ended, type Json, randomDisk, waitJob } from './_jobs.js'
import { type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024

describe('jobs of a service killed with -9', () => {
  it('a vault backup, a restore and a verify show Interrupted after the restart, nothing half made or duplicated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-jobs-restart-'))
    const data = join(dir, 'data')
    // --gc-grace 0: the GC planned after a restart runs at once (the dead backup's lock is stale).
    const serve = () => startService(['--gc-grace', '0'], { data })
    let service: RunningService = await serve()
    try {
      await randomDisk(service.url, 'big', 256)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      const backup = (body: Json) => api(service.url, 'POST', '/api/v1/vaults/v1/backups', body)
      const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'big' }]
      const first = await backup({ disks, item: 'big' })
      assert.equal(first.status, 202, JSON.stringify(first.body))
      const firstDone = await ended(service.url, first.body.id)
      assert.equal(firstDone.state, 'Completed', JSON.stringify(firstDone))
      const p1 = firstDone.result.id as string

      // 1. A backup of new content, killed half-way through.
      await randomDisk(service.url, 'big', 256)
      const second = await backup({ disks, item: 'big' })
      const mid = await waitJob(
        service.url,
        second.body.id,
        (j) => j.progress.bytesDone >= 128 * MiB,
        'half of its bytes',
      )
      assert.equal(mid.state, 'Running')
      await service.stop('SIGKILL')
      service = await serve()
      const cut = (await api(service.url, 'GET', `/api/v1/jobs/${second.body.id}`)).body
      assert.equal(cut.state, 'Interrupted', JSON.stringify(cut))
      assert.equal(cut.error.code, 'JobInterrupted')
      assert.ok(cut.endedAt)
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items
      assert.deepEqual(
        points.map((p: Json) => p.id),
        [p1],
        'no half point is listed',
      )
      // The GC planned at the restart reclaims the packs the dead backup wrote.
      const gcs = async () =>
        (await api(service.url, 'GET', '/api/v1/jobs?kind=gc&vault=v1')).body.items.filter(
          (j: Json) => j.startedBy === 'recovery',
        )
      for (let i = 0; i < 400 && (await gcs()).length === 0; i++) await new Promise((r) => setTimeout(r, 25))
      const [gc] = await gcs()
      assert.ok(gc, 'a GC job follows the restart')
      const gcDone = await ended(service.url, gc.id)
      assert.equal(gcDone.state, 'Completed', JSON.stringify(gcDone))
      assert.ok(gcDone.result.bytesReclaimed > 0, JSON.stringify(gcDone.result))
      const verified = await api(service.url, 'POST', '/api/v1/vaults/v1/verify', {})
      assert.equal((await ended(service.url, verified.body.id)).state, 'Completed')

      // 2. A restore into a new disk, killed half-way through: the half disk is removed.
      const restore = await api(service.url, 'POST', `/api/v1/vaults/v1/recoveryPoints/${p1}/restore`, {
        target: { account: 'devstoreaccount1', container: 'disks', disk: 'copy' },
      })
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      await waitJob(service.url, restore.body.id, (j) => j.progress.bytesDone > 0, 'its first bytes')
      assert.equal((await api(service.url, 'GET', `${D}/copy`)).status, 200, 'the restore made its disk')
      await service.stop('SIGKILL')
      service = await serve()
      const cutRestore = (await api(service.url, 'GET', `/api/v1/jobs/${restore.body.id}`)).body
      assert.equal(cutRestore.state, 'Interrupted', JSON.stringify(cutRestore))
      const copy = await api(service.url, 'GET', `${D}/copy`)
      assert.equal(copy.status, 404, 'no half-restored disk is left')

      // 3. A verify, killed while it reads.
      const verify = await api(service.url, 'POST', '/api/v1/vaults/v1/verify', {})
      await waitJob(service.url, verify.body.id, (j) => j.progress.bytesDone > 0, 'its first bytes')
      await service.stop('SIGKILL')
      service = await serve()
      const cutVerify = (await api(service.url, 'GET', `/api/v1/jobs/${verify.body.id}`)).body
      assert.equal(cutVerify.state, 'Interrupted', JSON.stringify(cutVerify))

      // Every job once, in its final state; nothing runs any more.
      const all = (await api(service.url, 'GET', '/api/v1/jobs?limit=1000')).body.items as Json[]
      const ids = all.map((j) => j.id)
      assert.equal(new Set(ids).size, ids.length, 'no job is listed twice')
      const state = (id: string) => all.find((j) => j.id === id)?.state
      assert.equal(state(first.body.id), 'Completed')
      assert.equal(state(second.body.id), 'Interrupted')
      assert.equal(state(restore.body.id), 'Interrupted')
      assert.equal(state(verify.body.id), 'Interrupted')
      assert.deepEqual((await api(service.url, 'GET', '/api/v1/jobs?state=Running,Queued')).body.items, [])
      assert.deepEqual(
        (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.map((p: Json) => p.id),
        [p1],
      )
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
