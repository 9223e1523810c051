import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { startService } from './_service.js'

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes
type Json = any

async function api(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const init: RequestInit = { method }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers = { 'content-type': 'application/json' }
  }
  const res = await fetch(`${url}${path}`, init)
  return { status: res.status, body: await res.json() }
}

describe('a service killed in the middle of a backup', () => {
  it('fails the job on restart, leaves no half recovery point, and the next backup completes', async () => {
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
        const job = await api(service.url, 'GET', `/api/v1/backupJobs/${jobId}`)
        phase = job.body.phase
        assert.ok(
          job.body.status === 'InProgress',
          `the job ended before the kill: ${JSON.stringify(job.body)}`,
        )
        if (phase !== 'TransferToVault') await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(phase, 'TransferToVault')
      await service.stop('SIGKILL')

      service = await startService([], { data })
      const job = await api(service.url, 'GET', `/api/v1/backupJobs/${jobId}`)
      assert.equal(job.body.status, 'Failed')
      assert.match(job.body.error.message, /cut short/)
      // The point exists only as a whole snapshot-tier point (instant restore works); no vault point claims it.
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.value
      assert.equal(points.length, 1, JSON.stringify(points))
      assert.equal(points[0].tier, 'Snapshot')
      assert.equal(points[0].disks.length, 2)
      assert.ok(points[0].disks.every((d: Json) => d.snapshot && !d.vaultBackup))
      const vaultPoints = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items
      assert.equal(vaultPoints.length, 0, 'the vault commits a point only with its manifest')

      const again = await api(service.url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      let done: Json
      for (;;) {
        done = (await api(service.url, 'GET', `/api/v1/backupJobs/${again.body.id}`)).body
        if (done.endTime) break
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.equal(done.status, 'Completed', JSON.stringify(done))
      const after = (await api(service.url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints'))
        .body.value
      assert.deepEqual(
        after.map((p: Json) => p.tier),
        ['Snapshot', 'SnapshotAndVault'],
        'the cut-short point stays in the snapshot tier beside the new one',
      )
      assert.equal((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items.length, 1)
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
