// A policy's next runs and what its retention keeps, for the policy editor's preview and the VM list's
// "next backup". The service's scheduler (src/protection/schedule.ts) is the authority; these are
// the nominal times (the scheduler spreads starts up to two hours after them).
import type { BackupPolicy } from '../../src/api/api-types.js'
import type { HOURLY_INTERVALS, MONTHS, POLICY_BOUNDS, WEEKDAYS } from '../../src/protection/policy.js'

// Copies of the service's constants, typed by them: a bound changed on the service fails to compile here.
export const BOUNDS: typeof POLICY_BOUNDS = {
  instantRpDays: { Standard: { min: 1, max: 5, default: 2 }, Enhanced: { min: 1, max: 30, default: 7 } },
  dailyDays: { min: 7, max: 9999 },
  weeklyWeeks: { min: 1, max: 5163 },
  monthlyMonths: { min: 1, max: 1188 },
  yearlyYears: { min: 1, max: 99 },
  onDemandDefaultDays: 30,
  onDemandPerDay: 3,
}
export const DAYS: typeof WEEKDAYS = [
  'Sunday',
  'Monday',
  'Tuesday',
  'Wednesday',
  'Thursday',
  'Friday',
  'Saturday',
]
export const INTERVALS: typeof HOURLY_INTERVALS = [4, 6, 8, 12, 24]
export const MONTH_NAMES: typeof MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
]

/** The wall clock of instant `ms` in time zone `tz`, as if it were UTC (ms). */
function wallAsUtc(ms: number, tz: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(ms)
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0)
  return Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'))
}

/** The instant at which the wall clock of `tz` shows `wall` (a UTC-coded wall time). */
function fromWall(wall: number, tz: string): number {
  let t = wall - (wallAsUtc(wall, tz) - wall)
  t = wall - (wallAsUtc(t, tz) - t)
  return t
}

function clock(text: string): number {
  const [h, m] = text.split(':').map(Number)
  return ((h ?? 0) * 60 + (m ?? 0)) * 60_000
}

/** The policy's next `count` nominal run times after `from` (ms), ascending. */
export function nextRuns(policy: BackupPolicy, from: number, count: number): number[] {
  const tz = policy.timeZone || 'UTC'
  const s = policy.schedule
  const out: number[] = []
  const today = Math.floor(wallAsUtc(from, tz) / 86_400_000) * 86_400_000
  for (let day = 0; day < 400 && out.length < count; day++) {
    const midnight = today + day * 86_400_000
    const weekday = DAYS[new Date(midnight).getUTCDay()]!
    let slots: number[] = []
    if (s.frequency === 'Daily') slots = [clock(s.time)]
    else if (s.frequency === 'Weekly') slots = s.days.includes(weekday) ? [clock(s.time)] : []
    else
      for (let t = 0; t < s.windowDurationHours * 3_600_000; t += s.intervalHours * 3_600_000)
        slots.push(clock(s.windowStart) + t)
    for (const slot of slots) {
      const at = fromWall(midnight + slot, tz)
      if (at > from && out.length < count) out.push(at)
    }
  }
  return out
}

/** What the retention keeps, in words, one line per rule. */
export function retentionSummary(policy: BackupPolicy): string[] {
  const r = policy.retention
  const lines = [`Instant restore: snapshots kept ${policy.instantRpRetentionRangeInDays} days`]
  if (r.daily) lines.push(`Daily: the last ${r.daily.days} daily points`)
  if (r.weekly)
    lines.push(`Weekly: ${r.weekly.weeks} weeks of points taken on ${r.weekly.daysOfWeek.join(', ')}`)
  if (r.monthly) lines.push(`Monthly: ${r.monthly.months} months (${monthDay(r.monthly.on)})`)
  if (r.yearly)
    lines.push(
      `Yearly: ${r.yearly.years} years, in ${r.yearly.monthsOfYear.join(', ')} (${monthDay(r.yearly.on)})`,
    )
  return lines
}

function monthDay(on: NonNullable<BackupPolicy['retention']['monthly']>['on']): string {
  return on.format === 'Daily'
    ? `day ${on.days.join(', ')}`
    : `${on.weeks.join(', ')} ${on.weekdays.join(', ')}`
}

/** How many points the retention keeps at most once it is full (the longest rule decides the oldest). */
export function retentionReach(policy: BackupPolicy): { points: number; oldestDays: number } {
  const r = policy.retention
  const perWeek = policy.schedule.frequency === 'Weekly' ? policy.schedule.days.length : 7
  const points =
    (r.daily ? Math.ceil((r.daily.days * perWeek) / 7) : 0) +
    (r.weekly ? r.weekly.weeks * r.weekly.daysOfWeek.length : 0) +
    (r.monthly ? r.monthly.months : 0) +
    (r.yearly ? r.yearly.years * r.yearly.monthsOfYear.length : 0)
  const oldestDays = Math.max(
    r.daily?.days ?? 0,
    (r.weekly?.weeks ?? 0) * 7,
    Math.round((r.monthly?.months ?? 0) * 30.44),
    Math.round((r.yearly?.years ?? 0) * 365.25),
  )
  return { points, oldestDays }
}
