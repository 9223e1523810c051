import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { JobStore, openSqliteCatalog } from '../catalog/index.js'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import { VaultRegistry } from '../vault/index.js'
import { AgentClient } from './agent-client.js'
import { ManualClock } from './clock.js'
import { JobService } from './job-service.js'
import { ProtectionService, type ProtectionServiceOptions } from './protection-service.js'
import { ProtectionStore } from './protection-store.js'
import { RegistryVaultTransfer } from './registry-vault-transfer.js'
import { Scheduler } from './scheduler.js'

// The ProtectionService's use cases without HTTP: a real SQLite catalog and a real disk store in a
// temporary folder, no vault (points stay in the snapshot tier). The routes only call these methods.

const MiB = 1024 * 1024
const START = Date.UTC(2026, 0, 5, 8, 0)
const ref = (disk: string): DiskRef => ({ account: 'acct', container: 'vms', disk })
const code = (c: string) => (e: unknown) => isCairnError(e) && e.code === c
const daily = {
  name: 'daily',
  schedule: { frequency: 'Daily', time: '22:00' },
  retention: { daily: { days: 7 } },
}
const vmSpec = (name: string, agent?: { url: string; token: string }) => ({
  name,
  vmSize: 'Standard_D2s_v5',
  osType: 'Linux',
  configuration: {},
  osDisk: ref(`${name}-os`),
  dataDisks: [{ lun: 0, disk: ref(`${name}-data`) }],
  ...(agent ? { agent } : {}),
})

interface World {
  service: ProtectionService
  store: ProtectionStore
  disks: LogDiskStore
  jobs: JobService
  clock: ManualClock
}

/** A service over a real catalog and disk store; VM "app" registered, policy "daily" in vault v1. */
async function withService(
  fn: (w: World) => Promise<void>,
  options: Partial<ProtectionServiceOptions> = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-service-'))
  const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
  const disks = await LogDiskStore.open(join(dir, 'disks'))
  const clock = new ManualClock(START)
  const now = () => clock.now()
  try {
    await disks.createAccount('acct')
    await disks.createContainer('acct', 'vms')
    for (const d of ['app-os', 'app-data', 'web-os', 'web-data']) {
      await disks.createDisk(ref(d), { size: MiB })
      await disks.writePages(ref(d), 0, Buffer.alloc(4096, d.length))
    }
    const store = new ProtectionStore(catalog, { now })
    const jobs = new JobService({ store: new JobStore(catalog) })
    const service = new ProtectionService({ store, disks, jobs, now, onDemandPerDay: 20, ...options })
    await service.registerVm(vmSpec('app'))
    await service.createPolicy('v1', daily)
    await fn({ service, store, disks, jobs, clock })
    await service.close()
  } finally {
    await disks.close()
    await catalog.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('ProtectionService (real catalog and disk store; no HTTP)', () => {
  it('registerVm() refuses a VM naming a disk the disk store lacks, and records nothing', async () => {
    await withService(async ({ service, disks }) => {
      await disks.deleteDisk(ref('web-data'))
      await assert.rejects(service.registerVm(vmSpec('web')), (e: unknown) => {
        assert.ok(isCairnError(e) && e.code === 'DiskNotFound', String(e))
        assert.match(e.message, /web-data/)
        return true
      })
      assert.deepEqual(
        (await service.listVms()).map((v) => v.name),
        ['app'],
      )
      await assert.rejects(service.registerVm({ name: 'bad' }), code('VmInvalid'))
    })
  })

  it('registerVm() checks the description before the disks: more than 32 data disks, a LUN twice, a disk attached twice, a bad agent', async () => {
    await withService(async ({ service }) => {
      const invalid = async (change: Record<string, unknown>, text: RegExp) =>
        assert.rejects(service.registerVm({ ...vmSpec('web'), ...change }), (e: unknown) => {
          assert.ok(isCairnError(e) && e.code === 'VmInvalid', String(e))
          assert.match(e.message, text)
          return true
        })
      const many = Array.from({ length: 33 }, (_, i) => ({ lun: i, disk: ref(`d${i}`) }))
      await invalid({ dataDisks: many }, /at most 32 data disks/)
      await invalid(
        {
          dataDisks: [
            { lun: 3, disk: ref('web-data') },
            { lun: 3, disk: ref('web-os') },
          ],
        },
        /LUN 3 is used twice/,
      )
      await invalid({ tempDisk: ref('web-os') }, /attached twice/)
      await invalid({ agent: { url: 'ftp://x', token: 'short' } }, /agent/)
      await service.registerVm(vmSpec('web'))
      await assert.rejects(service.registerVm(vmSpec('web')), code('VmAlreadyExists'))
    })
  })

  it('policies: an invalid one is refused, an Enhanced policy cannot become Standard, one in use cannot be deleted', async () => {
    await withService(async ({ service }) => {
      await assert.rejects(
        service.createPolicy('v1', { ...daily, name: 'bad', retention: { daily: { days: 3 } } }),
        code('PolicyInvalid'),
      )
      const enhanced = {
        ...daily,
        name: 'hourly',
        policyType: 'Enhanced',
        schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '08:00', windowDurationHours: 12 },
      }
      await service.createPolicy('v1', enhanced)
      await assert.rejects(service.updatePolicy('v1', 'hourly', daily), (e: unknown) => {
        assert.ok(isCairnError(e) && e.code === 'PolicyInvalid')
        assert.match(e.message, /cannot become Standard/)
        return true
      })
      assert.equal((await service.getPolicy('v1', 'hourly')).policyType, 'Enhanced', 'nothing changed')
      await assert.rejects(service.updatePolicy('v1', 'missing', daily), code('PolicyNotFound'))
      const updated = await service.updatePolicy('v1', 'daily', {
        ...daily,
        retention: { daily: { days: 60 } },
      })
      assert.equal(updated.retention.daily?.days, 60)
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      await assert.rejects(service.deletePolicy('v1', 'daily'), code('PolicyInUse'))
      await service.deletePolicy('v1', 'hourly')
      assert.deepEqual(
        (await service.listPolicies('v1')).map((p) => p.name),
        ['daily'],
      )
    })
  })

  it('protect() refuses a LUN the VM lacks; deleteVm() refuses a protected VM and forgets it once its data is deleted', async () => {
    await withService(async ({ service, disks }) => {
      await assert.rejects(
        service.protect('app', { vault: 'v1', policy: 'daily', includedLuns: [7] }),
        (e: unknown) => isCairnError(e) && e.code === 'VmInvalid' && /LUN 7/.test(e.message),
      )
      await assert.rejects(service.getItem('app'), code('ProtectedItemNotFound'), 'nothing was protected')
      await service.protect('app', { vault: 'v1', policy: 'daily', includedLuns: [0] })
      await service.backup('app')
      await assert.rejects(service.deleteVm('app'), code('VmIsProtected'))
      await service.stopProtection('app', { deleteData: false })
      await assert.rejects(service.deleteVm('app'), (e: unknown) => {
        assert.ok(isCairnError(e) && e.code === 'VmIsProtected')
        assert.match(e.message, /1 recovery point/)
        return true
      })
      await service.stopProtection('app', { deleteData: true })
      await service.deleteVm('app')
      await assert.rejects(service.getVm('app'), code('VmNotFound'))
      assert.ok(disks.getDisk(ref('app-os')), 'its disks stay')
    })
  })

  it('tells its listeners of protect, a policy change, a policy switch, stop and resume, and not of reads or refusals', async () => {
    await withService(async ({ service }) => {
      let heard = 0
      const unsubscribe = service.onChange(() => heard++)
      await service.createPolicy('v1', { ...daily, name: 'other' })
      await service.getVm('app')
      assert.equal(heard, 0, 'creating a policy no item uses changes no schedule')
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      assert.equal(heard, 1)
      await service.updatePolicy('v1', 'daily', { ...daily, schedule: { frequency: 'Daily', time: '23:00' } })
      assert.equal(heard, 2)
      await service.changePolicy('app', 'other')
      assert.equal(heard, 3)
      await assert.rejects(service.changePolicy('app', 'missing'), code('PolicyNotFound'))
      assert.equal(heard, 3, 'a refused change is not a change')
      await service.stopProtection('app', { deleteData: false })
      assert.equal(heard, 4)
      await service.resume('app')
      assert.equal(heard, 5)
      await service.resume('app')
      assert.equal(heard, 5, 'resuming a protected VM changes nothing')
      await service.listItems()
      await service.getItem('app')
      unsubscribe()
      await service.stopProtection('app', { deleteData: false })
      assert.equal(heard, 5, 'an unsubscribed listener hears nothing')
    })
  })

  it('a request under another vault finds no item: reads, changes, backups and restores answer ProtectedItemNotFound', async () => {
    await withService(async ({ service }) => {
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      const done = await service.backup('app')
      assert.equal(done.state, 'Completed', JSON.stringify(done.error))
      const [point] = await service.listRecoveryPoints('app', { vault: 'v1' })
      assert.ok(point)
      const elsewhere = { vault: 'v2' }
      await assert.rejects(service.getItem('app', elsewhere), code('ProtectedItemNotFound'))
      await assert.rejects(service.changePolicy('app', 'daily', elsewhere), code('ProtectedItemNotFound'))
      await assert.rejects(service.resume('app', undefined, elsewhere), code('ProtectedItemNotFound'))
      await assert.rejects(service.listRecoveryPoints('app', elsewhere), code('ProtectedItemNotFound'))
      await assert.rejects(
        service.getRecoveryPoint('app', point.id, elsewhere),
        code('ProtectedItemNotFound'),
      )
      await assert.rejects(service.startBackup('app', elsewhere), code('ProtectedItemNotFound'))
      await assert.rejects(
        service.restore('app', point.id, { recoveryType: 'OriginalLocation', ...elsewhere }),
        code('ProtectedItemNotFound'),
      )
      await assert.rejects(
        service.stopProtection('app', { deleteData: true, ...elsewhere }),
        code('ProtectedItemNotFound'),
      )
      assert.equal((await service.getItem('app')).state, 'Protected', 'nothing changed')
      assert.equal((await service.listRecoveryPoints('app')).length, 1)
      // Once the VM is unprotected, deleting its data answers NotProtected from any vault's path.
      const r = await service.stopProtection('app', { deleteData: true, vault: 'v1' })
      assert.deepEqual(r.deletedPoints, [point.id])
      assert.deepEqual(await service.stopProtection('app', { deleteData: true, vault: 'v2' }), {
        vmName: 'app',
        state: 'NotProtected',
        deletedPoints: [],
      })
    })
  })

  it('startBackup() refuses an expiry that is not in the future, and keeps one given', async () => {
    await withService(async ({ service, clock }) => {
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      for (const expiresAt of [new Date(clock.now()), new Date(clock.now() - 1), new Date('nonsense')])
        await assert.rejects(service.startBackup('app', { expiresAt }), code('InvalidRequest'))
      const at = new Date(clock.now() + 3 * 86_400_000)
      const { job, done } = await service.startBackup('app', { expiresAt: at, vault: 'v1' })
      assert.equal(job.state === 'Queued' || job.state === 'Running', true, job.state)
      assert.equal((await done).state, 'Completed')
      const [p] = await service.listRecoveryPoints('app')
      assert.equal(p?.kind, 'OnDemand')
      assert.equal(p?.expiresAt, at.toISOString())
    })
  })

  it('a scheduled backup fires through the same startBackup path, and the scheduler follows protect and stop on its own', async () => {
    await withService(async ({ service, store, jobs, clock }) => {
      const backupsStarted: string[] = []
      const original = service.startBackup.bind(service)
      service.startBackup = (vm, o) => {
        backupsStarted.push(`${vm}:${o?.kind ?? 'OnDemand'}`)
        return original(vm, o)
      }
      const scheduler = new Scheduler({
        store,
        clock,
        spreadMs: 0,
        runBackup: async (run, signal) => {
          await service.backupScheduled(run.itemId, signal, run.slot)
        },
      })
      let refreshed: Promise<void> = Promise.resolve()
      service.onChange(() => {
        refreshed = scheduler.refresh()
      })
      await scheduler.start()
      try {
        assert.deepEqual(scheduler.status().next, [])
        const { item } = await service.protect('app', { vault: 'v1', policy: 'daily' })
        await refreshed
        const next = scheduler.status().next
        assert.deepEqual(
          next.map((n) => n.itemId),
          [item.id],
          'protect alone made the item schedulable',
        )
        assert.equal(next[0]!.at, Date.UTC(2026, 0, 5, 22, 0))
        // An on-demand backup now, then the scheduled one at 22:00: both through startBackup.
        assert.equal((await service.backup('app')).state, 'Completed')
        await clock.advanceTo(Date.UTC(2026, 0, 5, 22, 1))
        await scheduler.idle()
        assert.deepEqual(backupsStarted, ['app:OnDemand', 'app:Scheduled'])
        const points = await service.listRecoveryPoints('app')
        assert.deepEqual(
          points.map((p) => [p.kind, p.slot]),
          [
            ['OnDemand', undefined],
            ['Scheduled', '2026-01-05T22:00:00.000Z'],
          ],
          "the scheduled point records its slot (retention counts it for that slot's day)",
        )
        const { items } = await jobs.list({ kind: 'backup', vm: 'app' })
        const scheduled = items.find((j) => j.details.kind === 'Scheduled')
        assert.equal(scheduled?.details.slot, '2026-01-05T22:00:00.000Z')
        assert.equal(scheduled?.startedBy, 'scheduler')
        assert.equal(scheduled?.state, 'Completed')
        await service.stopProtection('app', { deleteData: false })
        await refreshed
        assert.deepEqual(scheduler.status().next, [], 'stop alone took the item off the schedule')
      } finally {
        await scheduler.stop()
      }
    })
  })

  it('restore() runs each recovery type, refuses a new VM without a name and a point of another VM', async () => {
    await withService(async ({ service, disks }) => {
      await service.registerVm(vmSpec('web'))
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      await service.protect('web', { vault: 'v1', policy: 'daily' })
      await service.backup('app')
      await service.backup('web')
      const [appPoint] = await service.listRecoveryPoints('app')
      const [webPoint] = await service.listRecoveryPoints('web')
      await assert.rejects(
        service.restore('app', webPoint!.id, { recoveryType: 'RestoreDisks' }),
        code('RecoveryPointNotFound'),
      )
      await assert.rejects(
        service.restore('app', 'no-such-point', { recoveryType: 'RestoreDisks' }),
        code('RecoveryPointNotFound'),
      )
      await assert.rejects(
        service.restore('app', appPoint!.id, { recoveryType: 'AlternateLocation' }),
        code('InvalidRequest'),
      )

      const asNew = await service.restore('app', appPoint!.id, {
        recoveryType: 'AlternateLocation',
        targetVmName: 'app-copy',
      })
      assert.equal((await asNew.done).state, 'Completed')
      assert.deepEqual((await service.getVm('app-copy')).dataDisks.length, 1)

      const some = await service.restore('app', appPoint!.id, {
        recoveryType: 'RestoreDisks',
        disks: [0],
      })
      assert.equal((await some.done).state, 'Completed')
      assert.ok(disks.getDisk(ref('app-restored-lun0')), 'the default prefix is <vm>-restored')
      assert.throws(() => disks.getDisk(ref('app-restored-os')), code('DiskNotFound'))

      await disks.writePages(ref('app-data'), 0, Buffer.alloc(4096, 0xee))
      const over = await service.restore('app', appPoint!.id, { recoveryType: 'OriginalLocation' })
      assert.equal((await over.done).state, 'Completed')
      const vm = await service.getVm('app')
      const data = await disks.read(vm.dataDisks[0]!.disk, 0, 4096)
      assert.equal(data[0], 'app-data'.length, 'the original disks hold the point again')
    })
  })

  it('asks the injected agentFor for a VM that has an agent; an unreachable agent means crash-consistent, said so', async () => {
    const asked: { url: string; token: string }[] = []
    await withService(
      async ({ service }) => {
        await service.registerVm(vmSpec('web', { url: 'http://127.0.0.1:9', token: 'web-token' }))
        await service.protect('app', { vault: 'v1', policy: 'daily' })
        await service.protect('web', { vault: 'v1', policy: 'daily' })
        assert.equal((await service.backup('app')).state, 'Completed')
        assert.deepEqual(asked, [], 'a VM without an agent asks for none')
        const job = await service.backup('web')
        assert.equal(job.state, 'Completed', JSON.stringify(job.error))
        assert.deepEqual(asked, [{ url: 'http://127.0.0.1:9', token: 'web-token' }])
        assert.equal(job.details.consistency, 'CrashConsistent')
        assert.match(JSON.stringify(job.result), /crash-consistent/)
      },
      {
        agentFor: (agent) => {
          asked.push(agent)
          return new AgentClient({ ...agent, timeoutMs: 5000 })
        },
      },
    )
  })

  it('an immutable vault refuses every policy change that shortens a retention: edit, switch, resume and protect again under another', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-immutable-'))
    const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    const vaults = new VaultRegistry(catalog, { dataDir: dir })
    try {
      await vaults.create('v1')
      await disks.createAccount('acct')
      await disks.createContainer('acct', 'vms')
      for (const d of ['app-os', 'app-data']) await disks.createDisk(ref(d), { size: MiB })
      const service = new ProtectionService({
        store: new ProtectionStore(catalog),
        disks,
        jobs: new JobService({ store: new JobStore(catalog) }),
        vault: new RegistryVaultTransfer(vaults, disks),
        vaultSettings: (vault) => vaults.settings(vault),
      })
      await service.registerVm(vmSpec('app'))
      await service.createPolicy('v1', { ...daily, retention: { daily: { days: 14 } } })
      await service.createPolicy('v1', { ...daily, name: 'short', retention: { daily: { days: 7 } } })
      await service.createPolicy('v1', { ...daily, name: 'long', retention: { daily: { days: 30 } } })
      await service.protect('app', { vault: 'v1', policy: 'daily' })
      // Mutable: shortening is allowed (and undone).
      await service.changePolicy('app', 'short')
      await service.changePolicy('app', 'daily')
      await vaults.updateSettings('v1', { immutability: { state: 'Enabled' } })
      const locked = code('RetentionLocked')
      await assert.rejects(
        service.updatePolicy('v1', 'daily', { ...daily, retention: { daily: { days: 3 } } }),
        code('PolicyInvalid'),
      )
      await assert.rejects(
        service.updatePolicy('v1', 'daily', { ...daily, retention: { daily: { days: 10 } } }),
        locked,
      )
      await assert.rejects(service.changePolicy('app', 'short'), locked)
      await assert.rejects(service.protect('app', { vault: 'v1', policy: 'short' }), locked)
      await service.stopProtection('app', { deleteData: false })
      await assert.rejects(service.resume('app', 'short'), locked)
      assert.equal((await service.getItem('app')).policyName, 'daily', 'nothing changed')
      assert.equal((await service.getPolicy('v1', 'daily')).retention.daily?.days, 14)
      // Longer is always allowed.
      await service.resume('app', 'long')
      await service.updatePolicy('v1', 'long', { ...daily, retention: { daily: { days: 60 } } })
      assert.equal((await service.getItem('app')).policyName, 'long')
    } finally {
      await vaults.close()
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
