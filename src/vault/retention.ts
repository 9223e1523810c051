// Count rules for pruning a vault (`vault prune --keep-*`, like restic and Proxmox). A backup policy's
// retention (durations, time zones) is src/protection/plan-retention.ts.

/** How many recovery points of each period to keep; applied in this order, like Proxmox and restic. */
export interface RetentionPolicy {
  keepLast?: number
  keepHourly?: number
  keepDaily?: number
  keepWeekly?: number
  keepMonthly?: number
  keepYearly?: number
}

const pad = (n: number) => String(n).padStart(2, '0')

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const day = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - day)
  const year = t.getUTCFullYear()
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7)
  return `${year}-W${pad(week)}`
}

const BUCKETS: [keyof RetentionPolicy, (d: Date) => string][] = [
  ['keepLast', (d) => d.toISOString()],
  ['keepHourly', (d) => d.toISOString().slice(0, 13)],
  ['keepDaily', (d) => d.toISOString().slice(0, 10)],
  ['keepWeekly', isoWeek],
  ['keepMonthly', (d) => d.toISOString().slice(0, 7)],
  ['keepYearly', (d) => d.toISOString().slice(0, 4)],
]

/** True when the policy has at least one rule. */
export function hasRetentionRules(policy: RetentionPolicy): boolean {
  return BUCKETS.some(([k]) => (policy[k] ?? 0) > 0)
}

/**
 * The ids a policy keeps among `points` (UTC periods): for each rule, the newest point of each of the
 * last N periods that have points. A point kept by an earlier rule still uses up its period.
 */
export function selectRetained(points: { id: string; time: Date }[], policy: RetentionPolicy): Set<string> {
  const newest = [...points].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1))
  const keep = new Set<string>()
  for (const [rule, bucket] of BUCKETS) {
    let left = policy[rule] ?? 0
    let last: string | undefined
    for (const p of newest) {
      if (left <= 0) break
      const b = rule === 'keepLast' ? p.id : bucket(p.time)
      if (b === last) continue
      last = b
      keep.add(p.id)
      left--
    }
  }
  return keep
}

const SPAN_DAYS: [keyof RetentionPolicy, number][] = [
  ['keepHourly', 1 / 24],
  ['keepDaily', 1],
  ['keepWeekly', 7],
  ['keepMonthly', 31],
  ['keepYearly', 366],
]

/**
 * How long count rules can keep a point at most (ms): the longest rule's periods, e.g. keepMonthly 12
 * → 372 days; null when only keepLast (or nothing) applies. A copy made under these rules is retained
 * that long on an immutable vault.
 */
export function retentionSpan(policy: RetentionPolicy): number | null {
  let days = 0
  for (const [rule, d] of SPAN_DAYS) days = Math.max(days, (policy[rule] ?? 0) * d)
  return days > 0 ? Math.ceil(days * 86_400_000) : null
}
