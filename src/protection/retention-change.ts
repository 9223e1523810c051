// Which policy changes shorten a retention that already applies: refused while the policy's vault is
// immutable (docs/security.md), and critical operations under multi-user authorization. The vault
// itself also refuses to remove a point before the retention recorded at its backup (retainUntil).

import { CairnError } from '../util/index.js'
import { immutable, type VaultSettings } from '../vault/index.js'
import type { BackupPolicy } from './policy.js'

/**
 * What going from policy `from` to `to` shortens, one phrase each: a rule removed, fewer days, weeks,
 * months or years, fewer days of the week or months of the year, another day of the month.
 */
export function retentionShortened(from: BackupPolicy, to: BackupPolicy): string[] {
  const a = from.retention
  const b = to.retention
  const out: string[] = []
  if (a.daily && (!b.daily || b.daily.days < a.daily.days))
    out.push(`daily retention ${a.daily.days} → ${b.daily ? b.daily.days : 'none'} days`)
  if (a.weekly) {
    if (!b.weekly || b.weekly.weeks < a.weekly.weeks)
      out.push(`weekly retention ${a.weekly.weeks} → ${b.weekly ? b.weekly.weeks : 'none'} weeks`)
    else if (a.weekly.daysOfWeek.some((d) => !b.weekly!.daysOfWeek.includes(d)))
      out.push('weekly retention keeps fewer days of the week')
  }
  if (a.monthly) {
    if (!b.monthly || b.monthly.months < a.monthly.months)
      out.push(`monthly retention ${a.monthly.months} → ${b.monthly ? b.monthly.months : 'none'} months`)
    else if (JSON.stringify(a.monthly.on) !== JSON.stringify(b.monthly.on))
      out.push('monthly retention keeps other days')
  }
  if (a.yearly) {
    if (!b.yearly || b.yearly.years < a.yearly.years)
      out.push(`yearly retention ${a.yearly.years} → ${b.yearly ? b.yearly.years : 'none'} years`)
    else if (
      a.yearly.monthsOfYear.some((m) => !b.yearly!.monthsOfYear.includes(m)) ||
      JSON.stringify(a.yearly.on) !== JSON.stringify(b.yearly.on)
    )
      out.push('yearly retention keeps other days')
  }
  if (to.instantRpRetentionRangeInDays < from.instantRpRetentionRangeInDays)
    out.push(
      `instant-restore retention ${from.instantRpRetentionRangeInDays} → ${to.instantRpRetentionRangeInDays} days`,
    )
  return out
}

/** Refuses (`RetentionLocked`) a policy change that shortens retention while the vault is immutable. */
export function checkRetentionChange(
  settings: VaultSettings | undefined,
  vault: string,
  from: BackupPolicy,
  to: BackupPolicy,
  what: string,
): void {
  if (!settings || !immutable(settings)) return
  const shorter = retentionShortened(from, to)
  if (shorter.length === 0) return
  throw new CairnError(
    'RetentionLocked',
    `${what}: vault "${vault}" is immutable (${settings.immutability.state}) and the change shortens a retention that applies (${shorter.join('; ')})`,
  )
}
