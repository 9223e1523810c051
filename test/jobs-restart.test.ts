import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { api, D, ended, type Json, randomDisk, waitJob } from './_jobs.js'
import { type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024

describe('jobs of a service killed with -9', () => {
  it('a vault backup resumes and completes; a restore into a disk or a file and a verify show Interrupted; nothing half made or duplicated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-jobs-restart-'))
    const data = join(dir, 'data')
    const out = join(dir, 'out')
    mkdirSync(out)
    const serve = () => startService(['--export-root', out], { data })
    let service: RunningService = await serve()
    try {
      await randomDisk(service.url, 'big', 128)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      const backup = (body: Json) => api(service.url, 'POST', '/api/v1/vaults/v1/backups', body)
      const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'big' }]
      const first = await backup({ disks, item: 'big' })
      assert.equal(first.status, 202, JSON.stringify(first.body))
      const firstDone = await ended(service.url, first.body.id)
      assert.equal(firstDone.state, 'Completed', JSON.stringify(firstDone))
      const p1 = firstDone.result.id as string

      // 1. A backup of new content, killed half-way through: it resumes and completes, one new point.
      await randomDisk(service.url, 'big', 128)
      const second = await backup({ disks, item: 'big' })
      const mid = await waitJob(
        service.url,
        second.body.id,
        (j) => j.progress.bytesDone >= 64 * MiB,
        'half of its bytes',
      )
      assert.equal(mid.state, 'Running')
      await service.stop('SIGKILL')
      service = await serve()
      const resumed = await ended(service.url, second.body.id)
      assert.equal(resumed.state, 'Completed', JSON.stringify(resumed))
      assert.equal(resumed.details.resumed.length, 1)
      const p2 = resumed.result.id as string
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items
      assert.deepEqual(
        points.map((p: Json) => p.id),
        [p1, p2],
        'one point for the resumed backup, none half made',
      )
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

      // 3. A restore into a file, killed while it writes: neither the file nor its temporary is left.
      const toFile = await api(service.url, 'POST', `/api/v1/vaults/v1/recoveryPoints/${p1}/restore`, {
        path: join(out, 'big.img'),
      })
      assert.equal(toFile.status, 202, JSON.stringify(toFile.body))
      await waitJob(service.url, toFile.body.id, (j) => j.progress.bytesDone > 0, 'its first bytes')
      assert.equal(readdirSync(out).length, 1, 'the restore writes a temporary file')
      await service.stop('SIGKILL')
      service = await serve()
      const cutFile = (await api(service.url, 'GET', `/api/v1/jobs/${toFile.body.id}`)).body
      assert.equal(cutFile.state, 'Interrupted', JSON.stringify(cutFile))
      assert.deepEqual(readdirSync(out), [], 'no file and no temporary file is left')

      // 4. A verify, killed while it reads.
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
      assert.equal(state(second.body.id), 'Completed')
      assert.equal(state(restore.body.id), 'Interrupted')
      assert.equal(state(toFile.body.id), 'Interrupted')
      assert.equal(state(verify.body.id), 'Interrupted')
      assert.deepEqual((await api(service.url, 'GET', '/api/v1/jobs?state=Running,Queued')).body.items, [])
      assert.deepEqual(
        (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.map((p: Json) => p.id),
        [p1, p2],
      )
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
