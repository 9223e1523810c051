import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { api, type Json } from './_jobs.js'
import { startService } from './_service.js'

describe('a service killed in the middle of a backup', () => {
  it('marks the job Interrupted on restart, removes its snapshots, lists no point, and the next backup completes', async () => {
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
      for (let i = 0; i < 2000 && phase !== 'TransferToVault'; i++) {
        const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)
        phase = job.body.progress.phase
        assert.ok(job.body.state === 'Running', `the job ended before the kill: ${JSON.stringify(job.body)}`)
        if (phase !== 'TransferToVault') await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(phase, 'TransferToVault')
      await service.stop('SIGKILL')

      service = await startService([], { data })
      const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)
      assert.equal(job.body.state, 'Interrupted')
      assert.equal(job.body.error.code, 'JobInterrupted')
      assert.match(job.body.error.message, /cut short/)
      // A point is written only when its backup completes: none is listed, and the snapshots the
      // backup took are gone.
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.items
      assert.equal(points.length, 0)
      for (const disk of ['big-os', 'big-data']) {
        const snaps = await api(service.url, 'GET', `${D}/${disk}/snapshots`)
        assert.equal(snaps.status, 200, JSON.stringify(snaps.body))
        assert.deepEqual(snaps.body.items, [], `snapshots of ${disk}`)
      }
      const vaultPoints = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items
      assert.equal(vaultPoints.length, 0, 'the vault commits a point only with its manifest')

      const again = await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      let done: Json
      for (;;) {
        done = (await api(service.url, 'GET', `/api/v1/jobs/${again.body.id}`)).body
        if (done.endedAt) break
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.equal(done.state, 'Completed', JSON.stringify(done))
      const after = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.items
      assert.equal(after.length, 1)
      assert.equal(after[0].tier, 'SnapshotAndVault')
      assert.equal((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.length, 1)
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
