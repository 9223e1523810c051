// The retention of a policy's copies in another vault: which points its copy rules keep and until
// when, and the removal of the copies that expired (on the target's own clock, the newest kept).
import { CairnError } from '../util/index.js'
import type { RecoveryPoint, Vault } from '../vault/index.js'
import { planRetention } from './plan-retention.js'
import type { BackupPolicy, RetentionRules } from './policy.js'

/**
 * When a policy's copy rules let a copied point expire: as a backup's retention does, the point taken
 * as its day's point, with no instant-restore tier on the copy; an on-demand point keeps its own expiry.
 */
export function policyExpiry(
  rp: RecoveryPoint,
  rules: { timeZone: string; retention: RetentionRules },
): number {
  const time = Date.parse(pointTime(rp))
  const onDemand = rp.source.config?.pointKind === 'OnDemand'
  // A scheduled point counts for its slot's day (weekly, monthly and yearly rules look at that day).
  const slot = rp.source.config?.slot
  const policy: BackupPolicy = {
    name: 'copy',
    policyType: 'Standard',
    timeZone: rules.timeZone,
    schedule: { frequency: 'Daily', time: '00:00' },
    instantRpRetentionRangeInDays: 0,
    retention: rules.retention,
  }
  const point = {
    id: rp.id,
    time,
    kind: onDemand ? ('OnDemand' as const) : ('Scheduled' as const),
    ...(!onDemand && typeof slot === 'string' ? { slot: Date.parse(slot) } : {}),
    ...(onDemand && rp.expiresAt ? { expiresAt: Date.parse(rp.expiresAt) } : {}),
  }
  const [verdict] = planRetention([point], policy, time).keep
  return verdict?.expiresAt ?? time
}

/**
 * Deletes the copies of a VM in a vault whose expiry has passed by the vault's clock (the newest copy
 * always kept); one an immutable vault still retains stays. Answers the ids removed.
 */
export async function removeExpiredCopies(vault: Vault, vm: string): Promise<string[]> {
  const points = (await vault.listRecoveryPoints({ item: vm })).filter((p) => p.source.kind === 'vm')
  points.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
  const now = vault.now()
  const removed: string[] = []
  for (const p of points.slice(0, -1)) {
    if (p.expiresAt === null || Date.parse(p.expiresAt) > now) continue
    try {
      await vault.deleteRecoveryPoint(p.id)
      removed.push(p.id)
    } catch (err) {
      if (!(err instanceof CairnError) || err.code !== 'RetentionLocked') throw err
    }
  }
  return removed
}

/** A point's time: a VM point's id carries its snapshot's instant (`20261204T195200123Z-7b55`). */
export function pointTime(p: Pick<RecoveryPoint, 'id' | 'createdAt'>): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(p.id)
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : p.createdAt
}
