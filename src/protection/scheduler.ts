import { type Logger, silentLogger } from '../util/index.js'
import { type Clock, systemClock } from './clock.js'
import type { BackupPolicy } from './policy.js'
import { type DueRun, dueRun, nextRun, type PlannedRun, plannedRuns, scheduledTimes } from './schedule.js'

/** A protected item as the scheduler sees it. */
export interface SchedulableItem {
  id: string
  policy: BackupPolicy
  /** When protection began: the first slot after it is the first run. */
  protectedSince: number
  /** The slot of the last finished (or failed) scheduled run, persisted. */
  lastSlot?: number
}

/** Where the scheduler reads items and records finished runs, so it survives restarts. */
export interface SchedulerStore {
  /** Items under active protection (stopped ones left out). */
  listSchedulable(): Promise<SchedulableItem[]>
  /** Records that the run of `slot` finished (successfully or not). */
  recordRun(itemId: string, slot: number): Promise<void>
  /**
   * Marks `slot` of the item as fired before its run starts; false when it (or a later one) already was,
   * by this or another scheduler instance: the run is then skipped. Absent: every due run fires.
   */
  claimSlot?(itemId: string, slot: number): Promise<boolean>
  /** The last time retention maintenance ran, if ever. */
  lastMaintenance(): Promise<number | undefined>
  recordMaintenance(at: number): Promise<void>
}

/** One scheduled backup handed to runBackup. */
export interface ScheduledRun extends DueRun {
  itemId: string
}

/** Options of a Scheduler. */
export interface SchedulerOptions {
  store: SchedulerStore
  /** Takes the backup; a rejection is logged and the slot still counts as run. */
  runBackup(run: ScheduledRun, signal: AbortSignal): Promise<void>
  /** Prunes expired recovery points and schedules vault GC, once a day. */
  runMaintenance?(now: number, signal: AbortSignal): Promise<void>
  /** When maintenance runs, `HH:MM` UTC (default 01:00). */
  maintenanceTime?: string
  clock?: Clock
  /** Backups running at once (default 4). */
  maxConcurrent?: number
  /** Widest spread of a standard policy's starts after its slot (default 2 h). */
  spreadMs?: number
  logger?: Logger
  /**
   * With several scheduler instances on one catalog: takes or renews this instance's leader lease and
   * answers whether it leads. Only the leader queues runs and maintenance; the others check again every
   * `leaderCheckMs`. Absent: this instance always leads.
   */
  leadership?: () => Promise<boolean>
  /** How often leadership is taken or renewed (default 5 s; keep it well under the lease). */
  leaderCheckMs?: number
}

/** What the scheduler is doing. */
export interface SchedulerStatus {
  running: ScheduledRun[]
  queued: ScheduledRun[]
  /** The next planned start of each idle item. */
  next: { itemId: string; at: number; slot: number }[]
}

/**
 * Starts scheduled backups: computes each item's next run (jittered inside its window), queues due
 * runs, runs at most N at a time, and records finished slots so that after a restart a missed run is
 * caught up once. Runs retention maintenance daily.
 */
export class Scheduler {
  readonly #o: SchedulerOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #max: number
  #items: SchedulableItem[] = []
  /** Each idle item's next planned run, recomputed only when its last slot changes. */
  #nextRuns = new Map<string, PlannedRun>()
  #queue: ScheduledRun[] = []
  #running = new Map<string, ScheduledRun>()
  #maintaining = false
  #timer: unknown
  #abort = new AbortController()
  #started = false
  #ticking: Promise<void> | undefined
  #again = false
  #idle = new Set<() => void>()
  #leads = false
  /** When the items were last read (the leader re-reads them every leaderCheckMs). */
  #read = 0

  constructor(options: SchedulerOptions) {
    this.#o = options
    this.#clock = options.clock ?? systemClock
    this.#log = options.logger ?? silentLogger
    this.#max = Math.max(1, options.maxConcurrent ?? 4)
  }

  /** Loads items and starts the timer; runs missed slots (once each) at once. */
  async start(): Promise<void> {
    this.#started = true
    this.#abort = new AbortController()
    await this.refresh()
  }

  /** Stops starting runs and aborts the running ones; resolves when they have settled. */
  async stop(): Promise<void> {
    this.#started = false
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer)
    this.#timer = undefined
    this.#queue = []
    this.#abort.abort()
    await this.idle()
  }

  /** Re-reads the items (after a protection change) and acts on what is due. */
  async refresh(): Promise<void> {
    this.#items = await this.#o.store.listSchedulable()
    this.#nextRuns.clear()
    this.#read = this.#clock.now()
    await this.tick()
  }

  /** Re-reads the items, keeping the planned next run of each one whose policy and last slot are unchanged. */
  async #reread(): Promise<void> {
    const before = new Map(this.#items.map((i) => [i.id, i]))
    const items = await this.#o.store.listSchedulable()
    this.#read = this.#clock.now()
    for (const item of items) {
      const old = before.get(item.id)
      const same =
        old !== undefined &&
        old.lastSlot === item.lastSlot &&
        old.protectedSince === item.protectedSince &&
        JSON.stringify(old.policy) === JSON.stringify(item.policy)
      if (!same) this.#nextRuns.delete(item.id)
    }
    // A running item keeps its own record: the run's end writes its last slot.
    this.#items = items.map((i) => (this.#running.has(i.id) ? (before.get(i.id) ?? i) : i))
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (this.#running.size === 0 && this.#queue.length === 0 && !this.#maintaining) return Promise.resolve()
    return new Promise((resolve) => this.#idle.add(resolve))
  }

  status(): SchedulerStatus {
    const busy = new Set([...this.#running.keys(), ...this.#queue.map((q) => q.itemId)])
    return {
      running: [...this.#running.values()],
      queued: [...this.#queue],
      next: this.#items
        .filter((i) => !busy.has(i.id))
        .map((i) => ({ itemId: i.id, ...this.#next(i) }))
        .sort((a, b) => a.at - b.at),
    }
  }

  /** Every planned run of every item with a slot in `[from, to)`, by start time. */
  plan(from: number, to: number): (PlannedRun & { itemId: string })[] {
    const spread = this.#spread()
    return this.#items
      .flatMap((i) => plannedRuns(i.id, i.policy, from, to, spread).map((r) => ({ itemId: i.id, ...r })))
      .sort((a, b) => a.at - b.at)
  }

  /** Queues what is due, starts what may start and re-arms the timer. */
  tick(): Promise<void> {
    if (this.#ticking) {
      this.#again = true
      return this.#ticking
    }
    this.#ticking = (async () => {
      try {
        do {
          this.#again = false
          await this.#tick()
        } while (this.#again)
      } finally {
        this.#ticking = undefined
      }
    })()
    return this.#ticking
  }

  async #tick(): Promise<void> {
    if (!this.#started) return
    if (this.#o.leadership) {
      const leads = await this.#o.leadership().catch((err) => {
        this.#log.warn('cannot take or renew the scheduler lease', { error: (err as Error).message })
        return false
      })
      if (leads && !this.#leads) {
        // Another instance led until now: its runs moved the items' last slots on.
        this.#items = await this.#o.store.listSchedulable()
        this.#nextRuns.clear()
        this.#read = this.#clock.now()
        this.#log.info('this scheduler leads now')
      } else if (leads && this.#clock.now() - this.#read >= (this.#o.leaderCheckMs ?? 5000)) {
        // Other processes protect, change policies and stop protection on the shared catalog: the
        // leader re-reads the items every check (their next runs are recomputed only where they changed).
        await this.#reread()
      }
      this.#leads = leads
      if (!leads) {
        this.#arm(this.#clock.now())
        return
      }
    }
    const now = this.#clock.now()
    const busy = new Set([...this.#running.keys(), ...this.#queue.map((q) => q.itemId)])
    for (const item of this.#items) {
      if (busy.has(item.id) || this.#next(item).at > now) continue
      const due = dueRun(item.id, item.policy, item.lastSlot ?? item.protectedSince, now, this.#spread())
      if (due) this.#queue.push({ itemId: item.id, ...due })
    }
    this.#queue.sort((a, b) => a.at - b.at)
    while (this.#running.size < this.#max && this.#queue.length > 0) this.#launch(this.#queue.shift()!)
    await this.#maybeMaintain(now)
    this.#arm(now)
  }

  #launch(run: ScheduledRun): void {
    this.#running.set(run.itemId, run)
    if (run.skipped > 0) {
      this.#log.warn('catching up a missed backup once', { itemId: run.itemId, skipped: run.skipped })
    }
    void (async () => {
      try {
        const claim = this.#o.store.claimSlot
        if (claim && !(await claim.call(this.#o.store, run.itemId, run.slot))) {
          this.#log.info('a scheduled run was already fired elsewhere', {
            itemId: run.itemId,
            slot: run.slot,
          })
        } else {
          await this.#o.runBackup(run, this.#abort.signal)
        }
      } catch (err) {
        this.#log.warn('scheduled backup failed', { itemId: run.itemId, error: (err as Error).message })
      }
      try {
        if (!this.#abort.signal.aborted) {
          await this.#o.store.recordRun(run.itemId, run.slot)
          const item = this.#items.find((i) => i.id === run.itemId)
          if (item) item.lastSlot = run.slot
          this.#nextRuns.delete(run.itemId)
        }
      } catch (err) {
        this.#log.error('cannot record a finished run', { itemId: run.itemId, error: (err as Error).message })
      }
      this.#running.delete(run.itemId)
      this.#settle()
      void this.tick()
    })()
  }

  async #maybeMaintain(now: number): Promise<void> {
    const run = this.#o.runMaintenance
    if (!run || this.#maintaining) return
    const last = (await this.#o.store.lastMaintenance()) ?? Number.NEGATIVE_INFINITY
    const slot = this.#maintenanceSlots(Math.max(last + 1, now - 2 * 86_400_000), now + 1).at(-1)
    if (slot === undefined) return
    this.#maintaining = true
    void (async () => {
      try {
        await run(now, this.#abort.signal)
        await this.#o.store.recordMaintenance(slot)
      } catch (err) {
        this.#log.warn('retention maintenance failed', { error: (err as Error).message })
      } finally {
        this.#maintaining = false
        this.#settle()
      }
    })()
  }

  /** Arms the timer for the next due run (called only by #tick, inside tick()'s loop). */
  #arm(now: number): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer)
    this.#timer = undefined
    if (!this.#started) return
    const check = this.#o.leadership ? (this.#o.leaderCheckMs ?? 5000) : Number.POSITIVE_INFINITY
    if (this.#o.leadership && !this.#leads) {
      this.#timer = this.#clock.setTimer(() => void this.tick(), check)
      return
    }
    const busy = new Set([...this.#running.keys(), ...this.#queue.map((q) => q.itemId)])
    let next = Number.POSITIVE_INFINITY
    for (const item of this.#items) {
      if (!busy.has(item.id)) next = Math.min(next, this.#next(item).at)
    }
    if (this.#o.runMaintenance) {
      const m = this.#maintenanceSlots(now + 1, now + 2 * 86_400_000)[0]
      if (m !== undefined) next = Math.min(next, m)
    }
    // A leader comes back before its lease runs out, to renew it.
    next = Math.min(next, now + check)
    if (next === Number.POSITIVE_INFINITY) return
    // This tick read the store after fixing `now`: time went on meanwhile (a stalled process, or a test
    // clock moved on). What came due since is acted on at once, by ticking again, and the timer counts
    // from the clock as it is: a delay counted from `now` would land that much past the next run.
    const current = this.#clock.now()
    if (next > now && next <= current) {
      this.#again = true
      return
    }
    this.#timer = this.#clock.setTimer(() => void this.tick(), Math.max(0, next - current))
  }

  #next(item: SchedulableItem): PlannedRun {
    let next = this.#nextRuns.get(item.id)
    if (!next) {
      next = nextRun(item.id, item.policy, item.lastSlot ?? item.protectedSince, this.#spread())
      this.#nextRuns.set(item.id, next)
    }
    return next
  }

  #maintenanceSlots(from: number, to: number): number[] {
    return scheduledTimes(
      {
        name: 'maintenance',
        policyType: 'Standard',
        timeZone: 'UTC',
        schedule: { frequency: 'Daily', time: this.#o.maintenanceTime ?? '01:00' },
        instantRpRetentionRangeInDays: 1,
        retention: {},
      },
      from,
      to,
    )
  }

  #spread(): { spreadMs?: number } {
    return this.#o.spreadMs === undefined ? {} : { spreadMs: this.#o.spreadMs }
  }

  #settle(): void {
    if (this.#running.size > 0 || this.#queue.length > 0 || this.#maintaining) return
    for (const resolve of this.#idle) resolve()
    this.#idle.clear()
  }
}
