// A backup policy's retention (durations per rule, in the policy's time zone, after the reference).
// The vault's own count rules for `vault prune --keep-*` are src/vault/retention.ts: a different rule
// set, kept apart on purpose.

import { addMonths, daysInMonth, toWall, type WallTime } from './_zoned-time.js'
import {
  type BackupPolicy,
  MONTHS,
  type MonthDaySelector,
  POLICY_BOUNDS,
  WEEKDAYS,
  WEEKS_OF_MONTH,
} from './policy.js'

const DAY = 86_400_000

/** Most recovery points one item keeps, after the reference. */
export const MAX_POINTS_PER_ITEM = 9999

/** A recovery point as retention sees it. */
export interface RetentionPoint {
  id: string
  /** When its snapshot was taken (epoch ms). */
  time: number
  kind: 'Scheduled' | 'OnDemand'
  /**
   * A scheduled point: the slot it was taken for (epoch ms). Its day (and weekday, month …) is the
   * slot's, not the capture's: a run that started late still holds its own day.
   */
  slot?: number
  /** On-demand points: their own expiry (default 30 days after the backup). */
  expiresAt?: number
}

/** Why a point is kept: the rules that still hold it. */
export type RetentionReason =
  | 'Daily'
  | 'Weekly'
  | 'Monthly'
  | 'Yearly'
  | 'InstantOnly'
  | 'OnDemand'
  | 'Latest'

/** Retention's verdict on one point. */
export interface RetentionVerdict {
  id: string
  time: number
  /** When the point expires; the latest point is kept past it. */
  expiresAt: number
  reasons: RetentionReason[]
  expired: boolean
}

/** Points to keep and points to prune, each with its expiry and the rules that keep it. */
export interface RetentionPlan {
  keep: RetentionVerdict[]
  expire: RetentionVerdict[]
}

/** The default expiry of an on-demand backup taken at `time`. */
export function onDemandExpiry(time: number): number {
  return time + POLICY_BOUNDS.onDemandDefaultDays * DAY
}

/**
 * Applies a policy's retention at `now`. A scheduled point is the day's point when it is the last
 * scheduled point of its calendar day (in the policy's zone; only that one goes to the vault under an
 * hourly schedule) — the day of its slot when it records one, so that a run captured after midnight
 * (late in the queue, or a test clock that moved on) does not take the next day's place and leave its
 * own day without a point; the day's point is kept by the daily rule and, on matching days, by the weekly,
 * monthly and yearly rules — the longest wins. Other points live only as long as the instant-restore
 * retention. On-demand points keep their own expiry. The latest point is always kept.
 */
export function planRetention(points: RetentionPoint[], policy: BackupPolicy, now: number): RetentionPlan {
  const tz = policy.timeZone
  const dayKey = (w: WallTime) => w.year * 10_000 + w.month * 100 + w.day
  const dayOrder = (p: RetentionPoint) => p.slot ?? p.time
  const lastOfDay = new Map<number, RetentionPoint>()
  const walls = new Map<string, WallTime>()
  for (const p of points) {
    if (p.kind !== 'Scheduled') continue
    const w = toWall(p.slot ?? p.time, tz)
    walls.set(p.id, w)
    const k = dayKey(w)
    const cur = lastOfDay.get(k)
    if (!cur || dayOrder(p) > dayOrder(cur) || (dayOrder(p) === dayOrder(cur) && p.time > cur.time))
      lastOfDay.set(k, p)
  }
  let latest: RetentionPoint | undefined
  for (const p of points) if (!latest || p.time > latest.time) latest = p

  const keep: RetentionVerdict[] = []
  const expire: RetentionVerdict[] = []
  const r = policy.retention
  for (const p of points) {
    const reasons: RetentionReason[] = []
    let expiresAt: number
    if (p.kind === 'OnDemand') {
      expiresAt = p.expiresAt ?? onDemandExpiry(p.time)
      reasons.push('OnDemand')
    } else {
      const w = walls.get(p.id)!
      expiresAt = p.time + policy.instantRpRetentionRangeInDays * DAY
      // A rule is a reason only while it still holds the point.
      const consider = (reason: RetentionReason, until: number) => {
        if (until > expiresAt) expiresAt = until
        if (until > now) reasons.push(reason)
      }
      if (lastOfDay.get(dayKey(w)) === p) {
        if (r.daily) consider('Daily', p.time + r.daily.days * DAY)
        if (r.weekly?.daysOfWeek.includes(WEEKDAYS[w.weekday]!))
          consider('Weekly', p.time + r.weekly.weeks * 7 * DAY)
        if (r.monthly && onSelectedDay(w, r.monthly.on))
          consider('Monthly', addMonths(p.time, r.monthly.months))
        if (r.yearly?.monthsOfYear.includes(MONTHS[w.month - 1]!) && onSelectedDay(w, r.yearly.on)) {
          consider('Yearly', addMonths(p.time, 12 * r.yearly.years))
        }
      }
      if (reasons.length === 0 && expiresAt > now) reasons.push('InstantOnly')
    }
    const isLatest = p === latest
    if (isLatest) reasons.push('Latest')
    const expired = expiresAt <= now
    const verdict: RetentionVerdict = { id: p.id, time: p.time, expiresAt, reasons, expired }
    if (expired && !isLatest) expire.push(verdict)
    else keep.push(verdict)
  }
  // The reference keeps at most 9999 recovery points per item: beyond that the oldest go first.
  if (keep.length > MAX_POINTS_PER_ITEM) {
    keep.sort((a, b) => a.time - b.time)
    const over = keep.splice(0, keep.length - MAX_POINTS_PER_ITEM)
    for (const v of over) expire.push({ ...v, expired: true, reasons: [] })
  }
  return { keep, expire }
}

/** Snapshots (instant-restore tier) older than the policy allows, except the latest, which is always kept. */
export function expiredSnapshots<T extends { time: number }>(
  snapshots: T[],
  policy: BackupPolicy,
  now: number,
): T[] {
  let latest: T | undefined
  for (const s of snapshots) if (!latest || s.time > latest.time) latest = s
  const limit = policy.instantRpRetentionRangeInDays * DAY
  return snapshots.filter((s) => s !== latest && s.time + limit <= now)
}

function onSelectedDay(w: WallTime, on: MonthDaySelector): boolean {
  const dim = daysInMonth(w.year, w.month)
  if (on.format === 'Daily') return on.days.some((d) => (d === 'Last' ? w.day === dim : w.day === d))
  if (!on.weekdays.includes(WEEKDAYS[w.weekday]!)) return false
  return on.weeks.some((week) =>
    week === 'Last' ? w.day > dim - 7 : Math.ceil(w.day / 7) === WEEKS_OF_MONTH.indexOf(week) + 1,
  )
}
