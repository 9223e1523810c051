// The lease state machine of a disk, after the reference's Lease Blob operation.
import { randomUUID } from 'node:crypto'
import { CairnError } from '../util/index.js'
import type { LeaseAction, LeaseInfo } from './types.js'

/** A lease as stored: times are absolute (ms since the epoch), so replaying the log gives the same state. */
export interface LeaseState {
  state: 'available' | 'leased' | 'breaking' | 'broken'
  id?: string
  /** Seconds, or -1 for an infinite lease. */
  duration?: number
  /** When a fixed-duration lease expires. */
  expiresAt?: number
  /** When a breaking lease becomes broken. */
  breakAt?: number
}

/** The lease of a disk that never had one. */
export const NO_LEASE: LeaseState = { state: 'available' }

type Effective = 'available' | 'leased' | 'expired' | 'breaking' | 'broken'

/** The state of a lease at time `now`: fixed leases expire, breaking leases become broken. */
export function effectiveState(lease: LeaseState, now: number): Effective {
  if (lease.state === 'leased' && lease.expiresAt !== undefined && now >= lease.expiresAt) return 'expired'
  if (lease.state === 'breaking' && lease.breakAt !== undefined && now >= lease.breakAt) return 'broken'
  return lease.state
}

/** The public view of a lease at time `now`. */
export function leaseInfo(lease: LeaseState, now: number): LeaseInfo {
  const state = effectiveState(lease, now)
  const locked = state === 'leased' || state === 'breaking'
  const info: LeaseInfo = { state, status: locked ? 'locked' : 'unlocked' }
  if (locked) {
    info.duration = lease.duration === -1 ? 'infinite' : 'fixed'
    if (lease.id !== undefined) info.id = lease.id
  }
  return info
}

/** Throws unless a mutation that carries `leaseId` may change a disk with this lease. */
export function checkLease(lease: LeaseState, now: number, leaseId: string | undefined, what: string): void {
  const state = effectiveState(lease, now)
  const locked = state === 'leased' || state === 'breaking'
  if (locked && leaseId === undefined) {
    throw new CairnError(
      'LeaseIdMissing',
      `Cannot ${what}: the disk has an active lease and no lease id was given`,
    )
  }
  if (leaseId !== undefined && (!locked || leaseId !== lease.id)) {
    throw new CairnError(
      'LeaseIdMismatch',
      locked
        ? `Cannot ${what}: lease id ${leaseId} does not match the active lease`
        : `Cannot ${what}: lease id ${leaseId} was given but the disk has no active lease`,
    )
  }
}

/** Outcome of a lease action: the new stored state and the answer to the caller. */
export interface LeaseTransition {
  next: LeaseState
  id?: string
  leaseTime?: number
}

const validDuration = (d: number) => d === -1 || (Number.isInteger(d) && d >= 15 && d <= 60)

/** Applies a lease action at time `now`, or throws the reference's error for an invalid transition. */
export function leaseTransition(
  lease: LeaseState,
  op: LeaseAction,
  now: number,
  what: string,
): LeaseTransition {
  const state = effectiveState(lease, now)
  const fail = (
    code: 'LeaseAlreadyPresent' | 'LeaseNotPresent' | 'LeaseIsBroken' | 'LeaseIsBreaking',
    why: string,
  ) => new CairnError(code, `Cannot ${op.action} the lease of ${what}: ${why}`)
  const mismatch = () =>
    new CairnError('LeaseIdMismatch', `Cannot ${op.action} the lease of ${what}: the lease id does not match`)
  const leased = (id: string, duration: number): LeaseState => ({
    state: 'leased',
    id,
    duration,
    ...(duration === -1 ? {} : { expiresAt: now + duration * 1000 }),
  })
  switch (op.action) {
    case 'acquire': {
      if (!validDuration(op.duration)) {
        throw new CairnError(
          'InvalidRequest',
          `Cannot acquire the lease of ${what}: a lease lasts 15 to 60 seconds or is infinite (-1), not ${op.duration}`,
        )
      }
      const id = op.proposedId ?? randomUUID()
      if (state === 'leased' && id !== lease.id)
        throw fail('LeaseAlreadyPresent', 'it already has an active lease')
      if (state === 'breaking') throw fail('LeaseIsBreaking', 'its lease is being broken')
      return { next: leased(id, op.duration), id }
    }
    case 'renew': {
      if (state === 'available') throw fail('LeaseNotPresent', 'it has no lease')
      if (op.id !== lease.id) throw mismatch()
      if (state === 'breaking') throw fail('LeaseIsBreaking', 'its lease is being broken')
      if (state === 'broken') throw fail('LeaseIsBroken', 'its lease is broken')
      return { next: leased(op.id, lease.duration ?? -1), id: op.id }
    }
    case 'release': {
      if (state === 'available') throw fail('LeaseNotPresent', 'it has no lease')
      if (op.id !== lease.id) throw mismatch()
      return { next: { state: 'available' } }
    }
    case 'change': {
      if (state === 'available' || state === 'expired')
        throw fail('LeaseNotPresent', 'it has no active lease')
      if (state === 'breaking') throw fail('LeaseIsBreaking', 'its lease is being broken')
      if (state === 'broken') throw fail('LeaseIsBroken', 'its lease is broken')
      if (op.id !== lease.id && op.proposedId !== lease.id) throw mismatch()
      return {
        next: { ...lease, id: op.proposedId },
        id: op.proposedId,
      }
    }
    case 'break': {
      const period = op.breakPeriod
      if (period !== undefined && !(Number.isInteger(period) && period >= 0 && period <= 60)) {
        throw new CairnError(
          'InvalidRequest',
          `Cannot break the lease of ${what}: a break period is 0 to 60 seconds, not ${period}`,
        )
      }
      if (state === 'available') throw fail('LeaseNotPresent', 'it has no lease')
      if (state === 'broken' || state === 'expired') {
        return { next: { state: 'broken', ...(lease.id ? { id: lease.id } : {}) }, leaseTime: 0 }
      }
      let remaining: number
      if (state === 'breaking') remaining = Math.max(0, (lease.breakAt ?? now) - now)
      else if (lease.duration === -1) remaining = 0
      else remaining = Math.max(0, (lease.expiresAt ?? now) - now)
      const wait =
        state === 'leased' && lease.duration === -1
          ? (period ?? 0) * 1000
          : Math.min(remaining, period === undefined ? remaining : period * 1000)
      if (state === 'breaking' && period === undefined) {
        return { next: lease, leaseTime: Math.ceil(remaining / 1000) }
      }
      if (wait === 0)
        return { next: { state: 'broken', ...(lease.id ? { id: lease.id } : {}) }, leaseTime: 0 }
      return {
        next: {
          state: 'breaking',
          ...(lease.id ? { id: lease.id } : {}),
          duration: lease.duration ?? -1,
          breakAt: now + wait,
        },
        leaseTime: Math.ceil(wait / 1000),
      }
    }
  }
}
