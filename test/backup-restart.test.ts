import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { api, type Json } from './_jobs.js'
import { apiFetch, startService } from './_service.js'

describe('a service killed in the middle of a VM backup', () => {
  it('resumes the vault transfer on restart from the snapshots it took and completes: one point in both tiers, its disk restored byte for byte, the next backup completes, and one stopped gracefully in its transfer resumes at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-restart-'))
    const data = join(dir, 'data')
    let service = await startService(['--import-root', dir], { data })
    try {
      // A 192 MiB data disk of random bytes, so the vault transfer takes a moment.
      const image = join(dir, 'data.img')
      execFileSync('sh', ['-c', `head -c ${192 * 1024 * 1024} /dev/urandom > ${image}`])
      const D = '/api/v1/accounts/devstoreaccount1/containers/disks/disks'
      assert.equal((await api(service.url, 'POST', `${D}/big-data/import`, { path: image })).status, 201)
      assert.equal((await api(service.url, 'PUT', `${D}/big-os`, { size: '1MiB' })).status, 201)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      await api(service.url, 'POST', '/api/v1/vms', {
        name: 'big',
        osDisk: 'devstoreaccount1/disks/big-os',
        dataDisks: [{ lun: 0, disk: 'devstoreaccount1/disks/big-data' }],
      })
      await api(service.url, 'POST', '/api/v1/vaults/v1/backupPolicies', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      assert.equal(
        (await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems', { vm: 'big', policy: 'daily' }))
          .status,
        201,
      )

      const started = await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      assert.equal(started.status, 202, JSON.stringify(started.body))
      const jobId = started.body.id as string
      let phase = ''
      let bytesAtKill = 0
      for (let i = 0; i < 4000 && (phase !== 'TransferToVault' || bytesAtKill === 0); i++) {
        const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)
        phase = job.body.progress.phase
        const committed = Object.values(job.body.details.checkpoint?.disks ?? {}) as Json[][]
        const kept = committed.flat().reduce((n, sub) => n + sub[3], 0)
        // What the last checkpoint kept (the job's progress is saved less often than its checkpoints).
        bytesAtKill = phase === 'TransferToVault' ? kept : 0
        assert.ok(job.body.state === 'Running', `the job ended before the kill: ${JSON.stringify(job.body)}`)
        if (bytesAtKill === 0) await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(phase, 'TransferToVault')
      assert.ok(bytesAtKill > 0, 'killed after a checkpoint of the transfer')
      await service.stop('SIGKILL')

      service = await startService([], { data })
      let job: Json
      for (;;) {
        job = (await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)).body
        if (job.endedAt) break
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.equal(job.state, 'Completed', JSON.stringify(job))
      assert.equal(job.details.resumed.length, 1, JSON.stringify(job.details))
      const at = job.details.resumed[0].bytesDone as number
      assert.ok(
        at >= bytesAtKill && at < 192 * 1024 * 1024,
        `resumed at ${at}, committed ${bytesAtKill} at the kill`,
      )
      // Exactly one point, in both tiers, under the id the first run gave it; the vault holds it once.
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.items
      assert.equal(points.length, 1, JSON.stringify(points))
      assert.equal(points[0].tier, 'SnapshotAndVault')
      assert.equal(points[0].id, job.result.recoveryPoint)
      const vaultPoints = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items
      assert.deepEqual(
        vaultPoints.map((p: Json) => p.id),
        [points[0].id],
      )
      // The snapshots the first run took are the point's: one per disk, no other.
      for (const disk of ['big-os', 'big-data']) {
        const snaps = await api(service.url, 'GET', `${D}/${disk}/snapshots`)
        assert.equal(snaps.body.items.length, 1, `snapshots of ${disk}: ${JSON.stringify(snaps.body)}`)
      }
      // The vault's copy of the data disk is the image, byte for byte.
      const restore = await api(
        service.url,
        'POST',
        `/api/v1/vaults/v1/recoveryPoints/${points[0].id}/restore`,
        {
          disk: 'lun0',
          target: { account: 'devstoreaccount1', container: 'disks', disk: 'copy' },
        },
      )
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      for (;;) {
        const r = (await api(service.url, 'GET', `/api/v1/jobs/${restore.body.id}`)).body
        if (r.endedAt) {
          assert.equal(r.state, 'Completed', JSON.stringify(r))
          break
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      const copy = createHash('sha256')
      for (let o = 0; o < 192 * 1024 * 1024; o += 4 * 1024 * 1024) {
        const res = await apiFetch(`${service.url}${D}/copy/pages?offset=${o}&length=${4 * 1024 * 1024}`)
        copy.update(Buffer.from(await res.arrayBuffer()))
      }
      assert.equal(copy.digest('hex'), createHash('sha256').update(readFileSync(image)).digest('hex'))

      const again = await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      let done: Json
      for (;;) {
        done = (await api(service.url, 'GET', `/api/v1/jobs/${again.body.id}`)).body
        if (done.endedAt) break
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.equal(done.state, 'Completed', JSON.stringify(done))
      assert.equal(done.details.incremental, true, 'the next backup builds on the resumed one')
      const after = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.items
      assert.equal(after.length, 2)
      assert.deepEqual(
        after.map((p: Json) => p.tier),
        ['SnapshotAndVault', 'SnapshotAndVault'],
      )
      assert.equal((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.length, 2)

      // A graceful stop during the transfer of new data (all of the disk, so that the transfer takes a
      // while) suspends the backup; the next start completes it.
      for (let o = 0; o < 192 * 1024 * 1024; o += 4 * 1024 * 1024) {
        const res = await apiFetch(`${service.url}${D}/big-data/pages?offset=${o}`, {
          method: 'PUT',
          body: randomBytes(4 * 1024 * 1024),
          headers: { 'content-type': 'application/octet-stream' },
        })
        assert.equal(res.status, 200, await res.text())
      }
      const third = await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      assert.equal(third.status, 202, JSON.stringify(third.body))
      for (let i = 0; ; i++) {
        const j = (await api(service.url, 'GET', `/api/v1/jobs/${third.body.id}`)).body
        assert.ok(j.state === 'Running' && i < 4000, `the job ended before the stop: ${JSON.stringify(j)}`)
        const subtrees = Object.values(j.details.checkpoint?.disks ?? {}) as Json[][]
        if (j.progress.phase === 'TransferToVault' && subtrees.flat().some((sub) => sub[3] > 0)) break
        await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(await service.stop(), 0)
      service = await startService([], { data })
      let resumedJob: Json
      for (;;) {
        resumedJob = (await api(service.url, 'GET', `/api/v1/jobs/${third.body.id}`)).body
        if (resumedJob.endedAt) break
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.equal(resumedJob.state, 'Completed', JSON.stringify(resumedJob))
      assert.equal(resumedJob.details.resumed.length, 1)
      assert.ok(resumedJob.details.resumed[0].bytesDone > 0, JSON.stringify(resumedJob.details.resumed))
      const three = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.items as Json[]
      assert.equal(three.length, 3)
      assert.equal(three[2].id, resumedJob.result.recoveryPoint)
      assert.equal((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.length, 3)
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
