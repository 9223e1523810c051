import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { JobStore, MIGRATIONS, openSqliteCatalog, SqliteCatalog } from '../catalog/index.js'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { isCairnError, parseDiskLabel } from '../util/index.js'
import { VaultRegistry } from '../vault/index.js'
import { JobService } from './job-service.js'
import { validatePolicy } from './policy.js'
import { ProtectionService } from './protection-service.js'
import { ProtectionStore } from './protection-store.js'
import { RegistryVaultTransfer } from './registry-vault-transfer.js'
import { validateVm } from './vm.js'

const MiB = 1024 * 1024
const ref = (disk: string): DiskRef => ({ account: 'acct', container: 'vms', disk })

/** A service over a real disk store, catalog and vault registry, with VM "app" protected in vault v1. */
async function withService(
  fn: (s: {
    service: ProtectionService
    store: ProtectionStore
    disks: LogDiskStore
    vaults: VaultRegistry
  }) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-safety-'))
  const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
  const disks = await LogDiskStore.open(join(dir, 'disks'))
  const vaults = new VaultRegistry(catalog, { dataDir: dir })
  try {
    await vaults.create('v1')
    await disks.createAccount('acct')
    await disks.createContainer('acct', 'vms')
    for (const d of ['app-os', 'app-data']) {
      await disks.createDisk(ref(d), { size: MiB })
      await disks.writePages(ref(d), 0, Buffer.alloc(4096, d.length))
    }
    const store = new ProtectionStore(catalog)
    const service = new ProtectionService({
      store,
      disks,
      vault: new RegistryVaultTransfer(vaults, disks),
      jobs: new JobService({ store: new JobStore(catalog) }),
      onDemandPerDay: 20,
    })
    await service.registerVm({
      name: 'app',
      osDisk: ref('app-os'),
      dataDisks: [{ lun: 0, disk: ref('app-data') }],
      configuration: {},
    })
    await service.createPolicy('v1', {
      name: 'daily',
      schedule: { frequency: 'Daily', time: '22:00' },
      retention: { daily: { days: 7 } },
    })
    await service.protect('app', { vault: 'v1', policy: 'daily' })
    await fn({ service, store, disks, vaults })
  } finally {
    await vaults.close()
    await disks.close()
    await catalog.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const code = (c: string) => (e: unknown) => isCairnError(e) && e.code === c

describe('ProtectionService safety (real disk store, catalog and vault; no HTTP)', () => {
  it('reconcile() moves a point to the tier that still exists and removes a point with no copy left', async () => {
    await withService(async ({ service, store, disks, vaults }) => {
      const a = await service.backup('app')
      const b = await service.backup('app')
      assert.equal(a.state, 'Completed', JSON.stringify(a.error))
      assert.equal(b.state, 'Completed')
      const [p1, p2] = await store.listRecoveryPoints('app')
      // p1: its vault copy goes; p2: its data disk's snapshot goes.
      await (await vaults.open('v1')).deleteRecoveryPoint(p1!.id)
      const snap = p2!.disks.find((d) => d.name === 'lun0')!.snapshot!
      await disks.deleteSnapshot(ref('app-data'), snap)
      const report = await service.reconcile('app', { vault: true })
      assert.deepEqual(report.changed, [
        { id: p1!.id, from: 'SnapshotAndVault', to: 'Snapshot' },
        { id: p2!.id, from: 'SnapshotAndVault', to: 'Vault' },
      ])
      // p1 now loses its snapshots too: nothing restores it any more.
      for (const d of (await store.getRecoveryPoint(p1!.id)).disks)
        await disks.deleteSnapshot(d.source, d.snapshot!)
      assert.deepEqual((await service.reconcile('app')).removed, [p1!.id])
      assert.deepEqual(
        (await service.listRecoveryPoints('app')).map((p) => p.id),
        [p2!.id],
      )
    })
  })

  it('the disk guard names what depends on a disk or snapshot and lets a forced delete through', async () => {
    await withService(async ({ service, store, disks }) => {
      await service.backup('app')
      const [p] = await store.listRecoveryPoints('app')
      const snap = p!.disks.find((d) => d.name === 'os')!.snapshot!
      await assert.rejects(service.guard.deleteSnapshot(ref('app-os'), snap), (e: unknown) => {
        assert.ok(isCairnError(e) && e.code === 'SnapshotInUse')
        const deps = (e.details as { dependents: { point?: string }[] }).dependents
        assert.deepEqual(
          deps.map((d) => d.point),
          [p!.id],
        )
        return true
      })
      await assert.rejects(
        service.guard.deleteDisk(ref('app-data'), { snapshots: 'include' }),
        code('DiskInUse'),
      )
      await assert.rejects(service.guard.deleteContainer('acct', 'vms'), code('DiskInUse'))
      // The store the blob API gets refuses alike, and cannot force.
      await assert.rejects(
        service.guard.guardedStore().deleteSnapshot(ref('app-os'), snap),
        code('SnapshotInUse'),
      )
      assert.ok(disks.getDisk(ref('app-os'), snap), 'nothing was deleted')
      await service.guard.deleteSnapshot(ref('app-os'), snap, { force: true })
      assert.equal((await store.getRecoveryPoint(p!.id)).tier, 'Vault')
    })
  })

  it('stopProtection with deleteData completes when the vault is gone, and again when nothing is left', async () => {
    await withService(async ({ service, store, disks, vaults }) => {
      await service.backup('app')
      await service.backup('app')
      await vaults.remove('v1')
      const r = await service.stopProtection('app', { deleteData: true })
      assert.equal(r.state, 'NotProtected')
      assert.equal(r.deletedPoints.length, 2)
      assert.equal(disks.listSnapshots(ref('app-os')).length, 0, 'the snapshots went with the points')
      assert.equal(await store.findItem('app'), undefined)
      assert.deepEqual(await service.stopProtection('app', { deleteData: true }), {
        vmName: 'app',
        state: 'NotProtected',
        deletedPoints: [],
      })
      await service.deleteVm('app')
      await assert.rejects(store.getVm('app'), code('VmNotFound'))
    })
  })

  it('protect() is idempotent in its vault, moves a stranded item, and refuses a move away from a live vault', async () => {
    await withService(async ({ service, vaults }) => {
      const again = await service.protect('app', { vault: 'v1', policy: 'daily' })
      assert.equal(again.created, false)
      assert.equal(again.item.state, 'Protected')
      await vaults.create('v2')
      await service.createPolicy('v2', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      await assert.rejects(
        service.protect('app', { vault: 'v2', policy: 'daily' }),
        code('VmAlreadyProtected'),
      )
      await vaults.remove('v1')
      const moved = await service.protect('app', { vault: 'v2', policy: 'daily' })
      assert.equal(moved.item.vault, 'v2')
      await assert.rejects(service.createPolicy('v1', {}), code('VaultNotFound'))
    })
  })

  it('catalog migration 12 renames UUID point ids to the vault form, keeping the UUID readable and disks labelled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-rp-ids-'))
    const file = join(dir, 'catalog.db')
    try {
      const old = new SqliteCatalog(
        file,
        MIGRATIONS.filter((m) => m.version <= 10),
      )
      await old.migrate()
      const oldStore = new ProtectionStore(old)
      await oldStore.createVm(validateVm({ name: 'app', osDisk: ref('app-os'), configuration: {} }))
      await oldStore.createPolicy(
        'v1',
        validatePolicy({
          name: 'daily',
          schedule: { frequency: 'Daily', time: '22:00' },
          retention: { daily: { days: 7 } },
        }),
      )
      const item = await oldStore.protect('app', { vault: 'v1', policy: 'daily' })
      const row = (id: string, time: number, disks: unknown[]) => ({
        id,
        item_id: item.id,
        time,
        kind: 'Scheduled',
        consistency: 'CrashConsistent',
        tier: 'SnapshotAndVault',
        expires_at: null,
        disks_json: JSON.stringify(disks),
        vm_json: '{}',
        created_at: '2026-01-01T00:00:00.000Z',
      })
      const uuidA = '3f2a9c1e-0000-4000-8000-000000000001'
      const uuidB = '7b55aa00-0000-4000-8000-000000000002'
      const db = old.db as unknown as {
        insertInto(t: string): { values(v: unknown): { execute(): Promise<unknown> } }
      }
      await db
        .insertInto('recovery_points')
        .values(
          row(uuidA, Date.UTC(2026, 0, 1, 22), [
            { lun: 'os', source: ref('app-os'), size: MiB, vaultBackup: '20260101T220000500Z-aaaa/os' },
          ]),
        )
        .execute()
      await db
        .insertInto('recovery_points')
        .values(
          row(uuidB, Date.UTC(2026, 0, 2, 22), [
            { lun: 0, source: ref('app-data'), size: MiB, snapshot: 's' },
          ]),
        )
        .execute()
      await old.close()
      const catalog = await openSqliteCatalog(file)
      try {
        const store = new ProtectionStore(catalog)
        const ids = (await store.listRecoveryPoints('app')).map((p) => p.id)
        assert.deepEqual(ids, ['20260101T220000500Z-aaaa', '20260102T220000000Z-7b55'])
        assert.equal(
          (await store.getRecoveryPoint(uuidB)).id,
          '20260102T220000000Z-7b55',
          'the UUID still finds it',
        )
        assert.deepEqual(
          (await store.getRecoveryPoint(uuidB)).disks.map((d) => [d.name, d.lun]),
          [['lun0', 0]],
        )
      } finally {
        await catalog.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('parseDiskLabel() reads os, lunN and the older bare N, and nothing else', () => {
    assert.equal(parseDiskLabel('os'), 'os')
    assert.equal(parseDiskLabel('lun12'), 12)
    assert.equal(parseDiskLabel('3'), 3)
    assert.equal(parseDiskLabel(0), 0)
    for (const bad of ['lun64', 'disk0', '', -1, 'lun', 1.5])
      assert.throws(() => parseDiskLabel(bad), code('InvalidRequest'), String(bad))
  })
})
