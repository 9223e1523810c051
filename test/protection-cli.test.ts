import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { apiFetch, cairnAt, startService } from './_service.js'

const cairn = (url: string, ...args: string[]) => cairnAt(url, args, { json: false })

describe('cairn CLI for VMs, policies, protection and jobs (against a real cairn serve)', () => {
  it('creates a VM and a policy, protects the VM, lists items, recovery points and jobs, and explains bad input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-cli-'))
    const service = await startService()
    try {
      const url = service.url
      for (const d of ['web-1-os', 'web-1-data0', 'web-1-data1']) {
        const res = await apiFetch(`${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/${d}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ size: '1MiB' }),
        })
        assert.equal(res.status, 201, await res.text())
      }
      const config = join(dir, 'web-1.json')
      writeFileSync(config, JSON.stringify({ cpus: 2, memoryGiB: 4 }))

      const vm = await cairn(
        url,
        'vm',
        'create',
        'web-1',
        '--os-disk',
        'devstoreaccount1/disks/web-1-os',
        '--data-disk',
        '0=devstoreaccount1/disks/web-1-data0',
        '--data-disk',
        '1=devstoreaccount1/disks/web-1-data1',
        '--config',
        config,
        '--agent',
        'http://127.0.0.1:7071',
        '--agent-token',
        'cli-agent-token',
      )
      assert.equal(vm.code, 0, vm.stderr)
      assert.match(vm.stdout, /VM web-1 registered with 3 disk/)
      const show = await cairn(url, 'vm', 'show', 'web-1')
      assert.match(show.stdout, /lun1:\s+devstoreaccount1\/disks\/web-1-data1/)

      const orphan = await cairn(url, 'policy', 'create', 'daily-30', '--vault', 'v1', '--keep-days', '30')
      assert.equal(orphan.code, 3, 'a policy needs its vault')
      assert.match(orphan.stderr, /VaultNotFound/)
      assert.equal((await cairn(url, 'vault', 'create', 'v1')).code, 0)
      const policy = await cairn(
        url,
        'policy',
        'create',
        'daily-30',
        '--vault',
        'v1',
        '--time',
        '22:30',
        '--time-zone',
        'Europe/Berlin',
        '--keep-days',
        '30',
        '--keep-weeks',
        '12',
      )
      assert.equal(policy.code, 0, policy.stderr)
      const bad = await cairn(url, 'policy', 'create', 'tiny', '--vault', 'v1', '--keep-days', '3')
      assert.equal(bad.code, 2, 'a policy outside the bounds is a usage error')
      assert.match(bad.stderr, /PolicyInvalid|7–9999 days/)
      const list = await cairn(url, 'policy', 'list', '--vault', 'v1')
      assert.match(list.stdout, /daily-30\s+Standard\s+daily 22:30\s+Europe\/Berlin\s+2\s+30d 12w/)

      const noVault = await cairn(url, 'protect', 'web-1', '--vault', 'v2', '--policy', 'daily-30')
      assert.equal(noVault.code, 3, 'the vault must exist')
      assert.match(noVault.stderr, /VaultNotFound/)
      const protect = await cairn(
        url,
        'protect',
        'web-1',
        '--vault',
        'v1',
        '--policy',
        'daily-30',
        '--luns',
        '1',
      )
      assert.equal(protect.code, 0, protect.stderr)
      const again = await cairn(url, 'protect', 'web-1', '--vault', 'v1', '--policy', 'daily-30')
      assert.equal(again.code, 0, 'protecting again in the same vault applies the policy (idempotent)')
      const back = await cairn(
        url,
        'protect',
        'web-1',
        '--vault',
        'v1',
        '--policy',
        'daily-30',
        '--luns',
        'lun1',
      )
      assert.equal(back.code, 0, back.stderr)
      const items = await cairn(url, 'protection', 'list', '--vault', 'v1')
      assert.match(items.stdout, /web-1\s+Protected\s+daily-30\s+os,lun1/)
      const unknown = await cairn(url, 'rp', 'list', 'ghost')
      assert.equal(unknown.code, 3)
      assert.match(unknown.stderr, /ghost/)
      const rps = await cairn(url, 'rp', 'list', 'web-1', '--json')
      assert.deepEqual(JSON.parse(rps.stdout), [])
      // Nothing answers at the VM's agent address: the backup goes on crash-consistent and says so.
      const backup = await cairn(url, 'backup', 'now', 'web-1', '--wait')
      assert.equal(backup.code, 0, backup.stderr)
      assert.match(backup.stdout, /state:\s+Completed/)
      assert.match(backup.stdout, /warnings:\s+Cannot reach the agent/)
      const points = JSON.parse((await cairn(url, 'rp', 'list', 'web-1', '--json')).stdout)
      assert.equal(points.length, 1)
      assert.equal(points[0].consistency, 'CrashConsistent')
      assert.equal(points[0].tier, 'SnapshotAndVault')
      assert.deepEqual(
        points[0].disks.map((d: { name: string }) => d.name),
        ['os', 'lun1'],
      )
      const restored = await cairn(url, 'restore', 'vm', 'web-1', '--as', 'web-1-copy', '--wait')
      assert.equal(restored.code, 0, restored.stderr)
      assert.match(
        (await cairn(url, 'vm', 'show', 'web-1-copy')).stdout,
        /lun1:\s+devstoreaccount1\/disks\/web-1-copy-lun1/,
      )
      const disksOnly = await cairn(
        url,
        'restore',
        'disks',
        'web-1',
        '--luns',
        'os',
        '--prefix',
        'spare',
        '--wait',
      )
      assert.equal(disksOnly.code, 0, disksOnly.stderr)
      const stop = await cairn(url, 'protection', 'stop', 'web-1')
      assert.match(stop.stdout, /ProtectionStopped/)
      const refused = await cairn(url, 'backup', 'now', 'web-1')
      assert.equal(refused.code, 4)
      assert.match(refused.stderr, /stopped/)
      const jobs = await cairn(url, 'job', 'list', '--json')
      assert.equal(jobs.code, 0, jobs.stderr)
      assert.deepEqual(
        JSON.parse(jobs.stdout).items.map((j: { kind: string; state: string }) => `${j.kind} ${j.state}`),
        ['restore Completed', 'restore Completed', 'backup Completed'],
      )
      const noJob = await cairn(url, 'job', 'show', 'nope')
      assert.equal(noJob.code, 3)
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
