import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { JobStore, openSqliteCatalog } from '../../src/catalog/index.js'
import { type DiskRef, LogDiskStore } from '../../src/diskstore/index.js'
import {
  JobService,
  ProtectionService,
  ProtectionStore,
  RegistryVaultTransfer,
} from '../../src/protection/index.js'
import { VaultRegistry } from '../../src/vault/index.js'
import { peakRssMiB, timeMs } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024

/** Runs tasks with at most `n` at once. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!)
    }),
  )
}

/**
 * 200 VMs with 2 disks each (4 MiB written on each) under one policy: a first backup of all, then 1%
 * churn (scattered 4 KiB writes) and on-demand backups of all of them — snapshot, vault transfer of the
 * diff, snapshot retention — 8 at a time. Reports time and the process's peak memory.
 */
export const protectionBackup: BenchScenario = {
  name: 'protection-backup',
  description: '200 VMs x 2 disks: on-demand backups of all after 1% churn (snapshot + vault diff)',
  async run(ctx) {
    const vms = ctx.quick ? 20 : 200
    const written = 4 * MiB
    const catalog = await openSqliteCatalog(join(ctx.dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(ctx.dir, 'disks'))
    const vaults = new VaultRegistry(catalog, { dataDir: ctx.dir })
    try {
      await vaults.create('v1')
      await disks.createAccount('bench')
      await disks.createContainer('bench', 'vms')
      const store = new ProtectionStore(catalog)
      const jobs = new JobService({ store: new JobStore(catalog) })
      const service = new ProtectionService({
        store,
        disks,
        jobs,
        vault: new RegistryVaultTransfer(vaults, disks),
      })
      await service.createPolicy('v1', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 30 } },
      })
      const ref = (vm: number, d: string): DiskRef => ({
        account: 'bench',
        container: 'vms',
        disk: `vm-${vm}-${d}`,
      })
      for (let i = 0; i < vms; i++) {
        for (const d of ['os', 'data']) {
          await disks.createDisk(ref(i, d), { size: 16 * MiB })
          await disks.writePages(ref(i, d), 0, randomBytes(written), { durable: false })
        }
        await service.registerVm({
          name: `vm-${i}`,
          osDisk: ref(i, 'os'),
          dataDisks: [{ lun: 0, disk: ref(i, 'data') }],
          configuration: {},
        })
        await service.protect(`vm-${i}`, { vault: 'v1', policy: 'daily' })
      }
      await disks.flush()
      const names = Array.from({ length: vms }, (_, i) => `vm-${i}`)
      const firstMs = await timeMs(() => pool(names, 8, (n) => service.backup(n)))
      ctx.log(`first backups of ${vms} VMs: ${Math.round(firstMs)} ms`)
      // 1% churn: 40 KiB per disk in 10 scattered 4 KiB writes.
      for (let i = 0; i < vms; i++) {
        for (const d of ['os', 'data']) {
          for (let k = 0; k < 10; k++) {
            await disks.writePages(ref(i, d), k * 400 * 1024, randomBytes(4096), { durable: false })
          }
        }
      }
      await disks.flush()
      let failed = 0
      let added = 0
      const ms = await timeMs(() =>
        pool(names, 8, async (n) => {
          const job = await service.backup(n)
          if (job.state !== 'Completed') failed++
          added += Number(job.details.bytesAdded ?? 0)
        }),
      )
      const results: BenchResult[] = [
        {
          scenario: 'protection-backup',
          subject: 'cairn',
          metric: `first backups of ${vms} VMs x 2 disks (${(vms * 2 * written) / MiB} MiB)`,
          value: Math.round(firstMs),
          unit: 'ms',
        },
        {
          scenario: 'protection-backup',
          subject: 'cairn',
          metric: `on-demand backups of ${vms} VMs after 1% churn`,
          value: Math.round(ms),
          unit: 'ms',
          pass: failed === 0,
        },
        {
          scenario: 'protection-backup',
          subject: 'cairn',
          metric: 'vault bytes added by the churn backups',
          value: Math.round(added / 1024),
          unit: 'KiB',
        },
        {
          scenario: 'protection-backup',
          subject: 'cairn',
          metric: 'peak RSS',
          value: Math.round(peakRssMiB()),
          unit: 'MiB',
        },
      ]
      return results
    } finally {
      await vaults.close()
      await disks.close()
      await catalog.close()
    }
  },
}
