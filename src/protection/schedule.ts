import { CairnError } from '../util/index.js'
import { addDays, fromWall, parseClock, toWall } from './_zoned-time.js'
import { type BackupPolicy, WEEKDAYS } from './policy.js'

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

/** Default spread of a standard (daily or weekly) policy's start times after the scheduled time. */
export const DEFAULT_SPREAD_MS = 2 * HOUR

/** How far back a catch-up looks for missed runs (only the latest is run). */
const CATCH_UP_HORIZON_MS = 35 * DAY

/** One run of a protected item: the policy's slot and the jittered moment it starts. */
export interface PlannedRun {
  /** The policy's nominal time (identifies the run; persisted as the last slot). */
  slot: number
  /** slot + this item's jitter. */
  at: number
}

/** Options shared by the planning functions. */
export interface SpreadOptions {
  /** Widest spread of start times after a slot (default 2 h, narrowed to fit an hourly window). */
  spreadMs?: number
}

/** The policy's nominal run times in `[from, to)`, ascending. */
export function scheduledTimes(policy: BackupPolicy, from: number, to: number): number[] {
  const out: number[] = []
  if (to <= from) return out
  const tz = policy.timeZone
  const s = policy.schedule
  // Walk the zone's calendar days, one day early so windows crossing midnight are seen.
  const first = toWall(from - DAY, tz)
  const last = toWall(to, tz)
  const lastKey = Date.UTC(last.year, last.month - 1, last.day)
  for (let i = 0; ; i++) {
    const d = addDays(first.year, first.month, first.day, i)
    if (Date.UTC(d.year, d.month - 1, d.day) > lastKey) break
    const minutesOfDay: number[] = []
    if (s.frequency === 'Daily') minutesOfDay.push(parseClock(s.time)!)
    else if (s.frequency === 'Weekly') {
      const weekday = new Date(Date.UTC(d.year, d.month - 1, d.day)).getUTCDay()
      if (s.days.includes(WEEKDAYS[weekday]!)) minutesOfDay.push(parseClock(s.time)!)
    } else {
      const start = parseClock(s.windowStart)!
      for (let h = 0; h < s.windowDurationHours; h += s.intervalHours) minutesOfDay.push(start + h * 60)
    }
    for (const m of minutesOfDay) {
      const t = fromWall(d.year, d.month, d.day, 0, m, tz)
      if (t >= from && t < to && out.at(-1) !== t) out.push(t)
    }
  }
  return out.sort((a, b) => a - b)
}

/**
 * How far this policy's starts may spread after a slot: the default (2 h), but never so far that an
 * hourly run leaves its window or passes the next slot.
 */
export function spreadFor(policy: BackupPolicy, options: SpreadOptions = {}): number {
  const wanted = options.spreadMs ?? DEFAULT_SPREAD_MS
  const s = policy.schedule
  if (s.frequency !== 'Hourly') return wanted
  const lastOffset = Math.floor((s.windowDurationHours - 1) / s.intervalHours) * s.intervalHours
  const tail = s.windowDurationHours - lastOffset
  return Math.min(wanted, (s.intervalHours * HOUR) / 2, tail * HOUR)
}

/** A deterministic offset in `[0, spread)` for an item: the same every day, different between items. */
export function jitterFor(itemId: string, policy: BackupPolicy, options: SpreadOptions = {}): number {
  const spread = spreadFor(policy, options)
  // FNV-1a over the id: stable across restarts and machines, evenly spread.
  let h = 0x811c9dc5
  for (let i = 0; i < itemId.length; i++) {
    h ^= itemId.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  // Murmur3's finaliser mixes the bits so that ids differing in one character land far apart.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return Math.floor(((h >>> 0) / 0x1_0000_0000) * (spread / MINUTE)) * MINUTE
}

/** An item's planned runs whose slots fall in `[from, to)`. */
export function plannedRuns(
  itemId: string,
  policy: BackupPolicy,
  from: number,
  to: number,
  options: SpreadOptions = {},
): PlannedRun[] {
  const j = jitterFor(itemId, policy, options)
  return scheduledTimes(policy, from, to).map((slot) => ({ slot, at: slot + j }))
}

/** The item's first planned run with a slot after `after` (it may already be due). */
export function nextRun(
  itemId: string,
  policy: BackupPolicy,
  after: number,
  options: SpreadOptions = {},
): PlannedRun {
  // Weekly schedules have gaps of up to 7 days.
  const runs = plannedRuns(itemId, policy, after + 1, after + 1 + 8 * DAY, options)
  if (!runs[0]) throw new CairnError('PolicyInvalid', `Cannot plan policy "${policy.name}": it never runs`)
  return runs[0]
}

/** A run that is due now: the latest missed slot, and how many earlier ones are skipped. */
export interface DueRun extends PlannedRun {
  /** Slots since the last run that are not caught up (only the latest is run). */
  skipped: number
}

/**
 * The run due at `now` for an item whose last slot (or protection start) is `after`: the latest slot
 * whose jittered start has passed. After downtime that spans several slots it is run once, not N times.
 */
export function dueRun(
  itemId: string,
  policy: BackupPolicy,
  after: number,
  now: number,
  options: SpreadOptions = {},
): DueRun | undefined {
  const from = Math.max(after + 1, now - CATCH_UP_HORIZON_MS)
  const due = plannedRuns(itemId, policy, from, now + 1, options).filter((r) => r.at <= now)
  const last = due.at(-1)
  if (!last) return undefined
  return { ...last, skipped: due.length - 1 }
}
