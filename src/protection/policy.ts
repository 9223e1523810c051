import { CairnError } from '../util/index.js'
import { isTimeZone, parseClock } from './_zoned-time.js'

/** Days of the week, by the reference's names. */
export const WEEKDAYS = [
  'Sunday',
  'Monday',
  'Tuesday',
  'Wednesday',
  'Thursday',
  'Friday',
  'Saturday',
] as const
export type Weekday = (typeof WEEKDAYS)[number]

export const MONTHS = [
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
] as const
export type Month = (typeof MONTHS)[number]

export const WEEKS_OF_MONTH = ['First', 'Second', 'Third', 'Fourth', 'Last'] as const
export type WeekOfMonth = (typeof WEEKS_OF_MONTH)[number]

/** Hourly intervals an enhanced policy may use. */
export const HOURLY_INTERVALS = [4, 6, 8, 12, 24] as const
export type HourlyInterval = (typeof HOURLY_INTERVALS)[number]

/** The reference's bounds for policies. */
export const POLICY_BOUNDS = {
  instantRpDays: { Standard: { min: 1, max: 5, default: 2 }, Enhanced: { min: 1, max: 30, default: 7 } },
  dailyDays: { min: 7, max: 9999 },
  weeklyWeeks: { min: 1, max: 5163 },
  monthlyMonths: { min: 1, max: 1188 },
  yearlyYears: { min: 1, max: 99 },
  /** Default expiry of an on-demand backup. */
  onDemandDefaultDays: 30,
  /** On-demand backups a VM may have in one day (the policy's time zone), besides scheduled ones. */
  onDemandPerDay: 3,
} as const

/** When backups run. Times are `HH:MM` in the policy's time zone. */
export type BackupSchedule =
  | { frequency: 'Daily'; time: string }
  | { frequency: 'Weekly'; days: Weekday[]; time: string }
  | { frequency: 'Hourly'; intervalHours: HourlyInterval; windowStart: string; windowDurationHours: number }

/** Which day of a month a monthly or yearly point is: days of the month (1–28 or Last), or weekdays of weeks. */
export type MonthDaySelector =
  | { format: 'Daily'; days: (number | 'Last')[] }
  | { format: 'Weekly'; weeks: WeekOfMonth[]; weekdays: Weekday[] }

/** How long recovery points are kept, by the reference's ranges. */
export interface RetentionRules {
  daily?: { days: number }
  weekly?: { weeks: number; daysOfWeek: Weekday[] }
  monthly?: { months: number; on: MonthDaySelector }
  yearly?: { years: number; monthsOfYear: Month[]; on: MonthDaySelector }
}

/**
 * "Copy every point to vault X": after each backup that reaches the policy's vault, a copy job brings
 * the VM's new points into `vault`. Only the points `retention` (default: the policy's own ranges)
 * keeps are copied, and the copies expire by it on the target (applied there daily and after each copy).
 */
export interface PolicyCopy {
  vault: string
  retention?: RetentionRules
}

/** A backup policy: Standard (daily or weekly) or Enhanced (adds hourly), a time zone and retention. */
export interface BackupPolicy {
  name: string
  policyType: 'Standard' | 'Enhanced'
  /** IANA time zone of the schedule's times and of the retention's days. */
  timeZone: string
  schedule: BackupSchedule
  /** How long snapshots stay in the snapshot tier for instant restore. */
  instantRpRetentionRangeInDays: number
  retention: RetentionRules
  /** Copies of every point in another vault (docs/protection.md, "Copies in another vault"). */
  copy?: PolicyCopy
}

/**
 * Checks a policy against the reference's bounds and fills defaults (time zone UTC, instant-restore
 * retention 2 or 7 days); throws PolicyInvalid listing every problem.
 */
export function validatePolicy(input: unknown): BackupPolicy {
  const problems: string[] = []
  const o = (isObject(input) ? input : {}) as Record<string, unknown>
  const name = typeof o.name === 'string' ? o.name : ''
  if (!isObject(input)) problems.push('it is not an object')
  // A misspelt field would otherwise be dropped without a word ("vault" comes back from listings).
  unknownKeys(o, POLICY_KEYS, '', problems)
  if (isObject(o.schedule))
    unknownKeys(o.schedule as Record<string, unknown>, SCHEDULE_KEYS, 'schedule.', problems)
  if (isObject(o.retention)) {
    const r = o.retention as Record<string, unknown>
    unknownKeys(r, ['daily', 'weekly', 'monthly', 'yearly'], 'retention.', problems)
    const parts: [string, string[]][] = [
      ['daily', ['days']],
      ['weekly', ['weeks', 'daysOfWeek']],
      ['monthly', ['months', 'on']],
      ['yearly', ['years', 'monthsOfYear', 'on']],
    ]
    for (const [k, keys] of parts)
      if (isObject(r[k])) unknownKeys(r[k] as Record<string, unknown>, keys, `retention.${k}.`, problems)
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    problems.push('"name" must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit')
  }
  const policyType = o.policyType ?? 'Standard'
  if (policyType !== 'Standard' && policyType !== 'Enhanced') {
    problems.push(`"policyType" must be Standard or Enhanced, not ${JSON.stringify(policyType)}`)
  }
  const type = policyType === 'Enhanced' ? 'Enhanced' : 'Standard'
  const timeZone = o.timeZone ?? 'UTC'
  if (typeof timeZone !== 'string' || !isTimeZone(timeZone)) {
    problems.push(
      `"timeZone" ${JSON.stringify(timeZone)} is not a time zone (use an IANA name such as Europe/Berlin)`,
    )
  }

  const schedule = checkSchedule(o.schedule, type, problems)
  const ir = POLICY_BOUNDS.instantRpDays[type]
  const instant = o.instantRpRetentionRangeInDays ?? ir.default
  if (!isIntIn(instant, ir.min, ir.max)) {
    problems.push(
      `"instantRpRetentionRangeInDays" must be ${ir.min}–${ir.max} days for a ${type} policy, not ${JSON.stringify(instant)}`,
    )
  }
  const retention = checkRetention(o.retention, schedule, problems)
  const copy = o.copy === undefined ? undefined : checkCopy(o.copy, problems)
  if (problems.length > 0) {
    throw new CairnError(
      'PolicyInvalid',
      `Cannot accept backup policy "${name || '?'}": ${problems.join('; ')}`,
      { details: { problems } },
    )
  }
  return {
    name,
    policyType: type,
    timeZone: timeZone as string,
    schedule: schedule!,
    instantRpRetentionRangeInDays: instant as number,
    retention,
    ...(copy ? { copy } : {}),
  }
}

const VAULT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

/** Checks a policy's `copy`: a vault name and, optionally, retention rules of their own (any one rule). */
function checkCopy(raw: unknown, problems: string[]): PolicyCopy | undefined {
  if (!isObject(raw)) {
    problems.push(`"copy" must be an object { vault, retention? }, not ${JSON.stringify(raw)}`)
    return undefined
  }
  const c = raw as Record<string, unknown>
  unknownKeys(c, ['vault', 'retention'], 'copy.', problems)
  if (typeof c.vault !== 'string' || !VAULT_NAME.test(c.vault))
    problems.push(`"copy.vault" must name a vault, not ${JSON.stringify(c.vault)}`)
  if (c.retention === undefined) return { vault: String(c.vault) }
  // The copies' rules are checked as a policy's, without a schedule to agree with.
  const own: string[] = []
  if (isObject(c.retention)) {
    const r = c.retention as Record<string, unknown>
    unknownKeys(r, ['daily', 'weekly', 'monthly', 'yearly'], 'copy.retention.', own)
  }
  const retention = checkRetention(c.retention, undefined, own)
  if (own.length === 0 && Object.keys(retention).length === 0)
    own.push('"copy.retention" must have at least one rule (daily, weekly, monthly or yearly)')
  problems.push(...own.map((m) => m.replaceAll('"retention', '"copy.retention')))
  return { vault: String(c.vault), retention }
}

function checkSchedule(
  raw: unknown,
  type: 'Standard' | 'Enhanced',
  problems: string[],
): BackupSchedule | undefined {
  if (!isObject(raw)) {
    problems.push('"schedule" is missing')
    return undefined
  }
  const s = raw as Record<string, unknown>
  const clock = (key: string): string => {
    const v = s[key]
    if (typeof v !== 'string' || parseClock(v) === undefined) {
      problems.push(`"schedule.${key}" must be a time HH:MM, not ${JSON.stringify(v)}`)
      return '00:00'
    }
    return v
  }
  switch (s.frequency) {
    case 'Daily':
      return { frequency: 'Daily', time: clock('time') }
    case 'Weekly': {
      const days = weekdays(s.days, 'schedule.days', problems)
      return { frequency: 'Weekly', days, time: clock('time') }
    }
    case 'Hourly': {
      if (type !== 'Enhanced') problems.push('an hourly schedule needs an Enhanced policy')
      const interval = s.intervalHours
      if (!HOURLY_INTERVALS.includes(interval as HourlyInterval)) {
        problems.push(
          `"schedule.intervalHours" must be one of 4, 6, 8, 12, 24, not ${JSON.stringify(interval)}`,
        )
      }
      const hours = (HOURLY_INTERVALS.includes(interval as HourlyInterval) ? interval : 4) as HourlyInterval
      const duration = s.windowDurationHours ?? 24
      if (!isIntIn(duration, hours, 24)) {
        problems.push(
          `"schedule.windowDurationHours" must be whole hours from the interval (${hours}) to 24, not ${JSON.stringify(duration)}`,
        )
      }
      return {
        frequency: 'Hourly',
        intervalHours: hours,
        windowStart: clock('windowStart'),
        windowDurationHours: duration as number,
      }
    }
    default:
      problems.push(
        `"schedule.frequency" must be Daily, Weekly or Hourly, not ${JSON.stringify(s.frequency)}`,
      )
      return undefined
  }
}

function checkRetention(
  raw: unknown,
  schedule: BackupSchedule | undefined,
  problems: string[],
): RetentionRules {
  const out: RetentionRules = {}
  if (!isObject(raw)) {
    problems.push('"retention" is missing')
    return out
  }
  const r = raw as Record<string, unknown>
  const range = (
    key: string,
    field: string,
    b: { min: number; max: number },
    unit: string,
  ): number | undefined => {
    const part = r[key]
    if (part === undefined || part === null) return undefined
    const v = isObject(part) ? (part as Record<string, unknown>)[field] : undefined
    if (!isIntIn(v, b.min, b.max)) {
      problems.push(`"retention.${key}.${field}" must be ${b.min}–${b.max} ${unit}, not ${JSON.stringify(v)}`)
      return b.min
    }
    return v as number
  }
  const weekly = schedule?.frequency === 'Weekly'
  const days = range('daily', 'days', POLICY_BOUNDS.dailyDays, 'days')
  if (days !== undefined) {
    if (weekly)
      problems.push(
        'a weekly schedule backs up on its days only, so it keeps weekly points: give "retention.weekly" (--keep-weeks), not "retention.daily" (--keep-days)',
      )
    out.daily = { days }
  } else if (schedule && !weekly) {
    problems.push(`a ${schedule.frequency.toLowerCase()} schedule needs "retention.daily"`)
  }
  const weeks = range('weekly', 'weeks', POLICY_BOUNDS.weeklyWeeks, 'weeks')
  if (weeks !== undefined) {
    const wd = (r.weekly as Record<string, unknown>).daysOfWeek
    const list =
      wd === undefined && schedule?.frequency === 'Weekly'
        ? schedule.days
        : weekdays(wd, 'retention.weekly.daysOfWeek', problems)
    if (schedule?.frequency === 'Weekly')
      mustBeScheduled(list, schedule.days, 'retention.weekly.daysOfWeek', problems)
    out.weekly = { weeks, daysOfWeek: list }
  } else if (weekly) {
    problems.push('a weekly schedule needs "retention.weekly"')
  }
  const months = range('monthly', 'months', POLICY_BOUNDS.monthlyMonths, 'months')
  if (months !== undefined) {
    const on = selector((r.monthly as Record<string, unknown>).on, 'retention.monthly.on', schedule, problems)
    out.monthly = { months, on }
  }
  const years = range('yearly', 'years', POLICY_BOUNDS.yearlyYears, 'years')
  if (years !== undefined) {
    const y = r.yearly as Record<string, unknown>
    const monthsOfYear = y.monthsOfYear
    let list: Month[] = []
    if (
      !Array.isArray(monthsOfYear) ||
      monthsOfYear.length === 0 ||
      monthsOfYear.some((m) => !MONTHS.includes(m))
    ) {
      problems.push(
        `"retention.yearly.monthsOfYear" must list months (January…December), not ${JSON.stringify(monthsOfYear)}`,
      )
    } else {
      list = [...new Set(monthsOfYear as Month[])]
    }
    out.yearly = { years, monthsOfYear: list, on: selector(y.on, 'retention.yearly.on', schedule, problems) }
  }
  return out
}

function selector(
  raw: unknown,
  where: string,
  schedule: BackupSchedule | undefined,
  problems: string[],
): MonthDaySelector {
  const s = (isObject(raw) ? raw : {}) as Record<string, unknown>
  if (s.format === 'Weekly' || (s.format === undefined && s.weeks !== undefined)) {
    const weeks = s.weeks
    let list: WeekOfMonth[] = []
    if (!Array.isArray(weeks) || weeks.length === 0 || weeks.some((w) => !WEEKS_OF_MONTH.includes(w))) {
      problems.push(
        `"${where}.weeks" must list First, Second, Third, Fourth or Last, not ${JSON.stringify(weeks)}`,
      )
    } else {
      list = [...new Set(weeks as WeekOfMonth[])]
    }
    const wd = weekdays(s.weekdays, `${where}.weekdays`, problems)
    if (schedule?.frequency === 'Weekly') mustBeScheduled(wd, schedule.days, `${where}.weekdays`, problems)
    return { format: 'Weekly', weeks: list, weekdays: wd }
  }
  if (schedule?.frequency === 'Weekly') {
    problems.push(`"${where}" must name weekdays of weeks (format Weekly) for a weekly schedule`)
  }
  const days = s.days ?? [1]
  if (!Array.isArray(days) || days.length === 0 || days.some((d) => d !== 'Last' && !isIntIn(d, 1, 28))) {
    problems.push(`"${where}.days" must list days 1–28 or "Last", not ${JSON.stringify(days)}`)
    return { format: 'Daily', days: [1] }
  }
  return { format: 'Daily', days: [...new Set(days as (number | 'Last')[])] }
}

function weekdays(raw: unknown, where: string, problems: string[]): Weekday[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.some((d) => !WEEKDAYS.includes(d))) {
    problems.push(`"${where}" must list weekdays (Sunday…Saturday), not ${JSON.stringify(raw)}`)
    return []
  }
  return [...new Set(raw as Weekday[])]
}

function mustBeScheduled(days: Weekday[], scheduled: Weekday[], where: string, problems: string[]): void {
  const missing = days.filter((d) => !scheduled.includes(d))
  if (missing.length > 0)
    problems.push(`"${where}" names ${missing.join(', ')}, on which the schedule takes no backup`)
}

const POLICY_KEYS = [
  'name',
  'vault',
  'policyType',
  'timeZone',
  'schedule',
  'instantRpRetentionRangeInDays',
  'retention',
  'copy',
]
const SCHEDULE_KEYS = ['frequency', 'time', 'days', 'intervalHours', 'windowStart', 'windowDurationHours']

function unknownKeys(o: Record<string, unknown>, known: string[], where: string, problems: string[]): void {
  for (const k of Object.keys(o))
    if (!known.includes(k)) problems.push(`"${where}${k}" is not a policy field (known: ${known.join(', ')})`)
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isIntIn(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}
