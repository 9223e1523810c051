import { statSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { type Catalog, openCatalog, sharedScratchCluster } from '../../src/catalog/index.js'
import {
  ManualClock,
  ProtectionStore,
  Scheduler,
  validatePolicy,
  validateVm,
} from '../../src/protection/index.js'
import { claimRace } from '../../test/_claims.js'
import { resultRow, timeMs } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const PAGE = 100

/**
 * Issue 19's targets on both catalogs: 1,000 VMs x 2 disks under one daily policy in one vault — one
 * scheduler tick over all of them, listing VMs a page at a time (the API reads the list and pages it),
 * a VM's recovery points, and catalog bytes per recovery point (1,000 points of 2 disks); then the job
 * claim throughput of three worker processes on PostgreSQL (3,000 queued jobs, claimed one at a time).
 * PostgreSQL is a scratch cluster (fsync off) on this machine.
 */
export const scaleOut: BenchScenario = {
  name: 'scale-out',
  description:
    '1,000 VMs x 2 disks on SQLite and PostgreSQL: scheduler tick, paged lists, bytes per point; job claims by 3 workers',
  async run(ctx) {
    const vms = ctx.quick ? 100 : 1000
    const results: BenchResult[] = []
    const r = resultRow('scale-out', 1)
    for (const dialect of ['sqlite', 'postgres'] as const) {
      const url =
        dialect === 'sqlite'
          ? `sqlite:${join(ctx.dir, 'catalog.db')}`
          : sharedScratchCluster().url('scale_out')
      const catalog = await openCatalog(url)
      try {
        const start = Date.UTC(2026, 0, 1)
        const store = new ProtectionStore(catalog, { now: () => start - 1 })
        await store.createPolicy(
          'vault1',
          validatePolicy({
            name: 'daily',
            schedule: { frequency: 'Daily', time: '22:00' },
            retention: { daily: { days: 30 } },
          }),
        )
        const setupMs = await timeMs(async () => {
          for (let i = 0; i < vms; i++) {
            const d = (n: string) => ({ account: 'bench', container: 'vms', disk: `vm-${i}-${n}` })
            await store.createVm(
              validateVm({
                name: `vm-${String(i).padStart(4, '0')}`,
                osDisk: d('os'),
                dataDisks: [{ lun: 0, disk: d('data0') }],
              }),
            )
            await store.protect(`vm-${String(i).padStart(4, '0')}`, { vault: 'vault1', policy: 'daily' })
          }
        })
        ctx.log(`${dialect}: registered and protected ${vms} VMs in ${Math.round(setupMs)} ms`)
        const clock = new ManualClock(start + 3_600_000)
        const scheduler = new Scheduler({ clock, store, runBackup: async () => {} })
        await scheduler.start()
        const ticks: number[] = []
        for (let i = 0; i < 10; i++) ticks.push(await timeMs(() => scheduler.tick()))
        const refresh = await timeMs(() => scheduler.refresh())
        await scheduler.stop()
        const tick = median(ticks)
        results.push(
          r(`${dialect}: scheduler tick, ${vms} VMs (median of 10)`, tick, 'ms', '< 100 ms', tick < 100),
        )
        results.push(r(`${dialect}: scheduler refresh (re-read ${vms} items)`, refresh, 'ms'))
        // Each page read from the catalog after the last name of the one before (the API's cursor).
        const pages: number[] = []
        let lastName: string | undefined
        for (let p = 0; p < vms / PAGE; p++) {
          pages.push(
            await timeMs(async () => {
              const page = await store.listVmsPage({ ...(lastName ? { after: lastName } : {}), limit: PAGE })
              lastName = page.vms.at(-1)?.name
              return page
            }),
          )
        }
        const page = median(pages)
        results.push(
          r(`${dialect}: list VMs, one page of ${PAGE} (median)`, page, 'ms', '< 50 ms', page < 50),
        )
        const item = await store.getItem('vm-0000')
        const before = await catalogBytes(catalog, ctx.dir)
        const points = vms
        for (let i = 0; i < points; i++) {
          const vm = await store.getVm(`vm-${String(i).padStart(4, '0')}`)
          const t = new Date(start + i * 1000)
          await store.addRecoveryPoint({
            itemId: i === 0 ? item.id : (await store.getItem(vm.name)).id,
            time: t.toISOString(),
            kind: 'Scheduled',
            consistency: 'CrashConsistent',
            tier: 'Vault',
            disks: [
              { name: 'os', source: vm.osDisk, size: 32 << 30, vaultBackup: `${t.getTime()}/os` },
              {
                name: 'lun0',
                lun: 0,
                source: vm.dataDisks[0]!.disk,
                size: 64 << 30,
                vaultBackup: `${t.getTime()}/lun0`,
              },
            ],
            vm,
          } as Parameters<ProtectionStore['addRecoveryPoint']>[0])
        }
        const after = await catalogBytes(catalog, ctx.dir)
        results.push(
          r(`${dialect}: catalog growth per recovery point (2 disks)`, (after - before) / points, 'bytes'),
        )
        const listTimes: number[] = []
        for (let i = 0; i < 5; i++) listTimes.push(await timeMs(() => store.listRecoveryPoints('vm-0000')))
        const listPoints = median(listTimes)
        results.push(
          r(`${dialect}: list a VM's recovery points`, listPoints, 'ms', '< 50 ms', listPoints < 50),
        )
      } finally {
        await catalog.close()
      }
    }
    const jobs = ctx.quick ? 600 : 3000
    // One claim per statement, then a batch of 4 per statement (a worker with 4 free slots, the default
    // --max-backups): `FOR UPDATE SKIP LOCKED` takes the batch in the same round trip.
    const race = await claimRace(sharedScratchCluster().url('claims'), jobs, 3)
    const batched = await claimRace(sharedScratchCluster().url('claims-batch'), jobs, 3, 4)
    ctx.log(
      `claims per worker: ${race.perWorker.join(', ')}; in batches of 4: ${batched.perWorker.join(', ')}`,
    )
    results.push(
      r(
        `postgres: job claims, 3 worker processes, ${jobs} jobs, one per claim`,
        race.claimsPerSecond,
        'claims/s',
      ),
    )
    results.push(
      r(
        `postgres: job claims, 3 worker processes, ${jobs} jobs, 4 per claim`,
        batched.claimsPerSecond,
        'claims/s',
        '>= 200 claims/s',
        batched.claimsPerSecond >= 200,
      ),
    )
    results.push(
      r(
        'postgres: jobs claimed twice',
        race.doubles.length + race.missed.length + batched.doubles.length + batched.missed.length,
        'jobs',
        '0',
        [race, batched].every((x) => x.doubles.length === 0 && x.missed.length === 0),
      ),
    )
    return results
  },
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? 0
}

async function catalogBytes(catalog: Catalog, dir: string): Promise<number> {
  if (catalog.dialect === 'sqlite') {
    // The main file and its write-ahead log together (the log is checkpointed into the file).
    await sql`pragma wal_checkpoint(TRUNCATE)`.execute(catalog.db)
    return statSync(join(dir, 'catalog.db')).size
  }
  await sql`vacuum analyze recovery_points`.execute(catalog.db)
  const r = await sql<{ n: number }>`select pg_total_relation_size('recovery_points') as n`.execute(
    catalog.db,
  )
  return Number(r.rows[0]?.n ?? 0)
}
