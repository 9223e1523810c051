import { join } from 'node:path'
import { openSqliteCatalog } from '../../src/catalog/index.js'
import {
  ManualClock,
  ProtectionStore,
  Scheduler,
  validatePolicy,
  validateVm,
} from '../../src/protection/index.js'
import { peakRssMiB, timeMs } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const DAY = 86_400_000

/**
 * 200 VMs with 2 disks each under one daily policy: time to register and protect them, time to plan a
 * day of runs, and time to dispatch a simulated day through the scheduler (backups themselves are
 * no-ops here; the on-demand backup half of the benchmark needs the disk store and the vault).
 */
export const protectionPlan: BenchScenario = {
  name: 'protection-plan',
  description: '200 VMs x 2 disks under one policy: protect, plan a day, dispatch a simulated day',
  async run(ctx) {
    const vms = ctx.quick ? 50 : 200
    const catalog = await openSqliteCatalog(join(ctx.dir, 'catalog.db'))
    try {
      const start = Date.UTC(2026, 0, 1)
      const store = new ProtectionStore(catalog, { now: () => start - 1 })
      await store.createPolicy(
        'vault1',
        validatePolicy({
          name: 'daily',
          schedule: { frequency: 'Daily', time: '22:00' },
          retention: { daily: { days: 30 }, weekly: { weeks: 12, daysOfWeek: ['Sunday'] } },
        }),
      )
      const setupMs = await timeMs(async () => {
        for (let i = 0; i < vms; i++) {
          const d = (n: string) => ({ account: 'bench', container: 'vms', disk: `vm-${i}-${n}` })
          await store.createVm(
            validateVm({
              name: `vm-${i}`,
              osDisk: d('os'),
              dataDisks: [{ lun: 0, disk: d('data0') }],
              configuration: { cpus: 2 },
            }),
          )
          await store.protect(`vm-${i}`, { vault: 'vault1', policy: 'daily' })
        }
      })
      const clock = new ManualClock(start)
      let runs = 0
      const scheduler = new Scheduler({
        clock,
        store,
        maxConcurrent: 8,
        runBackup: async () => {
          runs++
        },
      })
      await scheduler.refresh()
      let planned = 0
      const planMs = await timeMs(() => {
        planned = scheduler.plan(start, start + DAY).length
      })
      await scheduler.start()
      const dayMs = await timeMs(() => clock.advance(DAY))
      await scheduler.stop()
      ctx.log(`${vms} VMs: planned ${planned} runs, dispatched ${runs}`)
      const results: BenchResult[] = [
        {
          scenario: 'protection-plan',
          subject: 'cairn',
          metric: `register + protect ${vms} VMs`,
          value: Math.round(setupMs),
          unit: 'ms',
        },
        {
          scenario: 'protection-plan',
          subject: 'cairn',
          metric: `plan a day of ${vms} VMs`,
          value: Math.round(planMs * 10) / 10,
          unit: 'ms',
          target: '< 1000 ms',
          pass: planMs < 1000 && planned === vms,
        },
        {
          scenario: 'protection-plan',
          subject: 'cairn',
          metric: `dispatch a simulated day (${runs} runs)`,
          value: Math.round(dayMs),
          unit: 'ms',
          pass: runs === vms,
        },
        {
          scenario: 'protection-plan',
          subject: 'cairn',
          metric: 'peak RSS',
          value: Math.round(peakRssMiB()),
          unit: 'MiB',
        },
      ]
      return results
    } finally {
      await catalog.close()
    }
  },
}
