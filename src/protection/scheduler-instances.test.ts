import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import {
  CATALOG_DIALECTS,
  type Catalog,
  type CatalogDialect,
  LeaderLease,
  openCatalog,
} from '../catalog/index.js'
import { ManualClock } from './clock.js'
import { validatePolicy } from './policy.js'
import { ProtectionStore } from './protection-store.js'
import { scheduledTimes } from './schedule.js'
import { Scheduler } from './scheduler.js'
import { validateVm } from './vm.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const START = Date.UTC(2026, 0, 1)
const END = START + 2 * 24 * HOUR

const policies = [
  validatePolicy({
    name: 'daily',
    schedule: { frequency: 'Daily', time: '22:00' },
    retention: { daily: { days: 7 } },
  }),
  validatePolicy({
    name: 'four-hourly',
    policyType: 'Enhanced',
    schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '00:00', windowDurationHours: 24 },
    retention: { daily: { days: 7 } },
  }),
]

interface Fired {
  by: string
  itemId: string
  slot: number
}

/**
 * Three schedulers on one catalog, as three `cairn serve --role scheduler` processes: each its own
 * connection, store and Scheduler; they tick on one manual clock for two days, in ten-minute steps.
 * `kill` (a step → which instance) stops an instance without giving its lease up, as kill -9 would.
 */
async function simulate(
  dialect: CatalogDialect,
  options: { leader: boolean; killLeaderAt?: number },
): Promise<{ fired: Fired[]; items: { id: string; policy: (typeof policies)[number] }[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-schedulers-'))
  const clock = new ManualClock(START)
  const catalogs: Catalog[] = []
  try {
    const url = dialect.url(dir)
    const setupCatalog = await openCatalog(url)
    catalogs.push(setupCatalog)
    const setup = new ProtectionStore(setupCatalog, { now: () => clock.now() })
    const items: { id: string; policy: (typeof policies)[number] }[] = []
    for (const p of policies) await setup.createPolicy('v1', p)
    for (let i = 0; i < 6; i++) {
      const name = `vm-${i}`
      await setup.createVm(validateVm({ name, vmSize: 'S', osType: 'Linux', osDisk: `a/c/${name}-os` }))
      const policy = policies[i % 2]!
      const item = await setup.protect(name, { vault: 'v1', policy: policy.name })
      items.push({ id: item.id, policy })
    }
    const fired: Fired[] = []
    const instances = await Promise.all(
      ['s1', 's2', 's3'].map(async (name) => {
        const catalog = await openCatalog(url)
        catalogs.push(catalog)
        const lease = new LeaderLease(catalog, 'scheduler', { now: () => clock.now() })
        const scheduler = new Scheduler({
          store: new ProtectionStore(catalog, { now: () => clock.now() }),
          clock,
          maxConcurrent: 8,
          runBackup: async (run) => {
            fired.push({ by: name, itemId: run.itemId, slot: run.slot })
          },
          ...(options.leader
            ? {
                leadership: async () => (await lease.acquire(name, 30 * MINUTE)).leader,
                leaderCheckMs: 10 * MINUTE,
              }
            : {}),
        })
        return { name, scheduler, lease }
      }),
    )
    await Promise.all(instances.map((i) => i.scheduler.start()))
    let live = instances
    for (let step = 1; clock.now() < END; step++) {
      await clock.advance(10 * MINUTE)
      await Promise.all(live.map((i) => i.scheduler.tick()))
      await Promise.all(live.map((i) => i.scheduler.idle()))
      if (step === options.killLeaderAt) {
        const row = await catalogs[0]!.db.selectFrom('leases').selectAll().executeTakeFirstOrThrow()
        const leader = live.find((i) => i.name === row.owner)!
        await leader.scheduler.stop()
        live = live.filter((i) => i !== leader)
      }
    }
    await Promise.all(live.map((i) => i.scheduler.stop()))
    return { fired, items }
  } finally {
    for (const c of catalogs) await c.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Every slot of every item fired exactly once; a slot that ended less than three hours before END may
 * still be pending, and a slot at END itself fires there when its item's jitter is 0.
 */
function assertEachSlotOnce(result: Awaited<ReturnType<typeof simulate>>): void {
  const seen = new Map<string, string>()
  for (const f of result.fired) {
    const key = `${f.itemId}@${new Date(f.slot).toISOString()}`
    assert.ok(!seen.has(key), `${key} fired twice: by ${seen.get(key)} and by ${f.by}`)
    seen.set(key, f.by)
  }
  for (const { id, policy } of result.items) {
    const slots = result.fired.filter((f) => f.itemId === id).map((f) => f.slot)
    const due = scheduledTimes(policy, START + 1, END - 3 * HOUR)
    for (const s of due)
      assert.ok(slots.includes(s), `${id} (${policy.name}) missed ${new Date(s).toISOString()}`)
    for (const s of slots)
      assert.ok(scheduledTimes(policy, START, END + 1).includes(s), `${id} fired an unplanned slot`)
  }
}

for (const dialect of CATALOG_DIALECTS)
  describe(`three scheduler instances on one catalog (${dialect.name})`, () => {
    it('fire each policy slot exactly once with a leader lease, and another takes over when the leader dies', async () => {
      const result = await simulate(dialect, { leader: true, killLeaderAt: 6 * 24 })
      assertEachSlotOnce(result)
      const by = new Set(result.fired.map((f) => f.by))
      assert.ok(by.size >= 2, `a second instance took over after the leader died (fired by ${[...by]})`)
    })

    it('fire each slot once even with no leader at all: the slot claim lets exactly one instance win', async () => {
      const result = await simulate(dialect, { leader: false })
      assertEachSlotOnce(result)
    })
  })
