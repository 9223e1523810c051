// Wall-clock arithmetic in an IANA time zone with Intl only: instants are epoch milliseconds.

/** A wall-clock moment in some time zone; month 1–12, weekday 0 = Sunday. */
export interface WallTime {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  weekday: number
}

const MINUTE = 60_000
const DAY = 86_400_000
const formats = new Map<string, Intl.DateTimeFormat>()
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 }

function format(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    })
    formats.set(tz, f)
  }
  return f
}

/** True when Intl knows the time zone. */
export function isTimeZone(tz: string): boolean {
  try {
    format(tz)
    return true
  } catch {
    return false
  }
}

/** The wall time of an instant in a zone. */
export function toWall(ms: number, tz: string): WallTime {
  if (tz === 'UTC') {
    const d = new Date(ms)
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      weekday: d.getUTCDay(),
    }
  }
  const w: WallTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, weekday: 0 }
  for (const p of format(tz).formatToParts(ms)) {
    if (p.type === 'year') w.year = Number(p.value)
    else if (p.type === 'month') w.month = Number(p.value)
    else if (p.type === 'day') w.day = Number(p.value)
    else if (p.type === 'hour') w.hour = Number(p.value)
    else if (p.type === 'minute') w.minute = Number(p.value)
    else if (p.type === 'weekday') w.weekday = WEEKDAYS[p.value] ?? 0
  }
  return w
}

/** Offset of the zone from UTC at an instant, in ms (wall minus UTC), to the minute. */
function offset(ms: number, tz: string): number {
  const w = toWall(ms, tz)
  const floored = Math.floor(ms / MINUTE) * MINUTE
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute) - floored
}

/**
 * The instant a wall time names in a zone. Fields may overflow (minute 1500 is the next day). A time
 * skipped by a daylight-saving jump moves forward past the gap; a repeated one takes its first instant.
 */
export function fromWall(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  tz: string,
): number {
  const local = Date.UTC(year, month - 1, day, hour, minute)
  if (tz === 'UTC') return local
  // Offsets a day either side cover any single daylight-saving change.
  const candidates = [local - offset(local - DAY, tz), local - offset(local + DAY, tz)]
  const exact = candidates.filter((t) => t + offset(t, tz) === local)
  return exact.length > 0 ? Math.min(...exact) : Math.max(...candidates)
}

/** Days in a month (month 1–12). */
export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

/** The calendar date `days` after the given one (days may be negative). */
export function addDays(
  year: number,
  month: number,
  day: number,
  days: number,
): { year: number; month: number; day: number } {
  const d = new Date(Date.UTC(year, month - 1, day + days))
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() }
}

/** An instant plus whole calendar months (in UTC), clamping the day to the target month's last. */
export function addMonths(ms: number, months: number): number {
  const d = new Date(ms)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth() + months
  const ty = y + Math.floor(m / 12)
  const tm = ((m % 12) + 12) % 12
  const day = Math.min(d.getUTCDate(), daysInMonth(ty, tm + 1))
  return Date.UTC(ty, tm, day, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds())
}

/** Parses `HH:MM` into minutes after midnight, or undefined. */
export function parseClock(text: string): number | undefined {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text)
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined
}
