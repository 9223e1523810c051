// Multi-user authorization, after Azure's resource guard: on a guarded vault a critical operation runs
// only with an approval given by another identity holding the Guard role, valid for a limited time and
// used once. Requests, approvals and denials are rows of the catalog (and, through the API, audited).

import { randomUUID } from 'node:crypto'
import type { Catalog, CatalogSchema } from '../catalog/index.js'
import { CairnError } from '../util/index.js'

/** The critical operations a resource guard holds back, after the reference. */
export const GUARDED_OPERATIONS = [
  'reduceSoftDelete',
  'disableImmutability',
  'reduceRetention',
  'stopProtectionDeleteData',
  'deleteVault',
  'changeGuard',
] as const

/** One critical operation. */
export type GuardedOperation = (typeof GUARDED_OPERATIONS)[number]

/** What each operation covers, for messages and docs. */
export const OPERATION_TEXT: Record<GuardedOperation, string> = {
  reduceSoftDelete: 'turn soft delete off or shorten its retention',
  disableImmutability: 'disable immutability',
  reduceRetention: 'shorten the retention of a backup policy (or move an item to a shorter one)',
  stopProtectionDeleteData: 'stop protection and delete the backup data',
  deleteVault: 'delete the vault',
  changeGuard: 'turn the resource guard off',
}

/** A request's state; Approved turns Expired when its time is up, Used once the operation ran. */
export type GuardRequestState = 'Pending' | 'Approved' | 'Denied' | 'Used' | 'Expired'

/** A request to run one critical operation on one vault. */
export interface GuardRequest {
  id: string
  vault: string
  operation: GuardedOperation
  reason?: string
  requestedBy: string
  requestedAt: string
  state: GuardRequestState
  decidedBy?: string
  decidedAt?: string
  decisionReason?: string
  /** Until when an approval may be used. */
  validUntil?: string
  usedAt?: string
}

/** Whether a vault is guarded. */
export interface GuardStatus {
  vault: string
  enabled: boolean
  updatedAt?: string
  updatedBy?: string
}

/** How long an approval stays valid by default, and at most (hours). */
export const APPROVAL_HOURS = { default: 12, max: 24 * 7 } as const

const HOUR = 3_600_000

/**
 * The resource guard of the service's vaults. `actor` names who the current request runs for (the
 * signed-in user); without one, requests and approvals are refused (they need identities).
 */
export class ResourceGuard {
  readonly #catalog: Catalog
  readonly #now: () => number
  readonly #actor: () => string | undefined

  constructor(catalog: Catalog, options: { actor: () => string | undefined; now?: () => number }) {
    this.#catalog = catalog
    this.#actor = options.actor
    this.#now = options.now ?? Date.now
  }

  get #db() {
    return this.#catalog.db
  }

  /** Whether a vault is guarded. */
  async status(vault: string): Promise<GuardStatus> {
    const row = await this.#db
      .selectFrom('resource_guards')
      .selectAll()
      .where('vault', '=', vault)
      .executeTakeFirst()
    if (!row) return { vault, enabled: false }
    return {
      vault,
      enabled: row.enabled === 1,
      updatedAt: new Date(row.updated_at).toISOString(),
      updatedBy: row.updated_by,
    }
  }

  /** Turns the guard on (no approval needed) or off (a `changeGuard` approval needed). */
  async setEnabled(vault: string, enabled: boolean): Promise<GuardStatus> {
    const who = this.#need('change the resource guard')
    if (!enabled)
      await this.authorize(vault, 'changeGuard', `Cannot turn off the resource guard of vault "${vault}"`)
    const row = { vault, enabled: enabled ? 1 : 0, updated_at: this.#now(), updated_by: who }
    await this.#db
      .insertInto('resource_guards')
      .values(row)
      .onConflict((oc) =>
        oc.column('vault').doUpdateSet({ enabled: row.enabled, updated_at: row.updated_at, updated_by: who }),
      )
      .execute()
    return this.status(vault)
  }

  /** Asks to run a critical operation on a vault. */
  async request(vault: string, operation: string, options: { reason?: string } = {}): Promise<GuardRequest> {
    const who = this.#need('request approval of a critical operation')
    if (!(GUARDED_OPERATIONS as readonly string[]).includes(operation))
      throw new CairnError(
        'InvalidRequest',
        `Cannot request approval of "${operation}": the critical operations are ${GUARDED_OPERATIONS.join(', ')}`,
      )
    const id = randomUUID()
    await this.#db
      .insertInto('guard_requests')
      .values({
        id,
        vault,
        operation,
        reason: options.reason ?? null,
        requested_by: who,
        requested_at: this.#now(),
        state: 'Pending',
        decided_by: null,
        decided_at: null,
        decision_reason: null,
        valid_until: null,
        used_at: null,
      })
      .execute()
    return this.get(id)
  }

  /** Approves a pending request: never its own requester's; valid for `validHours` (default 12). */
  async approve(id: string, options: { validHours?: number; reason?: string } = {}): Promise<GuardRequest> {
    const hours = options.validHours ?? APPROVAL_HOURS.default
    if (!(hours > 0 && hours <= APPROVAL_HOURS.max))
      throw new CairnError(
        'InvalidRequest',
        `Cannot approve request ${id}: an approval is valid from a moment to ${APPROVAL_HOURS.max} hours, not ${hours}`,
      )
    return this.#decide(id, 'Approved', options.reason, this.#now() + hours * HOUR)
  }

  /** Denies a pending request (its requester may not deny it either: a decision is another identity's). */
  deny(id: string, options: { reason?: string } = {}): Promise<GuardRequest> {
    return this.#decide(id, 'Denied', options.reason, null)
  }

  /** One request. */
  async get(id: string): Promise<GuardRequest> {
    const row = await this.#db
      .selectFrom('guard_requests')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
    if (!row) throw new CairnError('GuardRequestNotFound', `Cannot find guard request ${id}`)
    return this.#toRequest(row)
  }

  /** Requests, newest first, of one vault or in one state if asked. */
  async list(filter: { vault?: string; state?: GuardRequestState } = {}): Promise<GuardRequest[]> {
    let q = this.#db.selectFrom('guard_requests').selectAll()
    if (filter.vault !== undefined) q = q.where('vault', '=', filter.vault)
    const rows = await q.orderBy('requested_at', 'desc').orderBy('id').execute()
    return rows
      .map((r) => this.#toRequest(r))
      .filter((r) => filter.state === undefined || r.state === filter.state)
  }

  /**
   * Lets a critical operation of the current identity run on a guarded vault by using its approval
   * (once); refuses with `ApprovalRequired` without one. An unguarded vault needs none.
   */
  async authorize(vault: string, operation: GuardedOperation, what: string): Promise<void> {
    if (!(await this.status(vault)).enabled) return
    const who = this.#actor()
    const now = this.#now()
    const row =
      who === undefined
        ? undefined
        : await this.#db
            .selectFrom('guard_requests')
            .selectAll()
            .where('vault', '=', vault)
            .where('operation', '=', operation)
            .where('requested_by', '=', who)
            .where('state', '=', 'Approved')
            .where('used_at', 'is', null)
            .where('valid_until', '>', now)
            .orderBy('valid_until')
            .executeTakeFirst()
    if (!row)
      throw new CairnError(
        'ApprovalRequired',
        `${what}: vault "${vault}" is guarded (multi-user authorization); ${OPERATION_TEXT[operation]} needs an approval: cairn guard request --vault ${vault} --operation ${operation}, then someone with the Guard role runs cairn guard approve ID`,
      )
    const used = await this.#db
      .updateTable('guard_requests')
      .set({ state: 'Used', used_at: now })
      .where('id', '=', row.id)
      .where('used_at', 'is', null)
      .executeTakeFirst()
    if (Number(used.numUpdatedRows) !== 1)
      throw new CairnError('ApprovalRequired', `${what}: its approval ${row.id} was used meanwhile`)
  }

  async #decide(
    id: string,
    state: 'Approved' | 'Denied',
    reason: string | undefined,
    validUntil: number | null,
  ): Promise<GuardRequest> {
    const who = this.#need(`${state === 'Approved' ? 'approve' : 'deny'} a guard request`)
    const request = await this.get(id)
    if (request.requestedBy === who)
      throw new CairnError(
        'SelfApprovalNotAllowed',
        `Cannot ${state === 'Approved' ? 'approve' : 'deny'} guard request ${id}: "${who}" asked for it; another identity with the Guard role must decide`,
      )
    if (request.state !== 'Pending')
      throw new CairnError(
        'GuardRequestNotPending',
        `Cannot decide guard request ${id}: it is ${request.state}`,
      )
    await this.#db
      .updateTable('guard_requests')
      .set({
        state,
        decided_by: who,
        decided_at: this.#now(),
        decision_reason: reason ?? null,
        valid_until: validUntil,
      })
      .where('id', '=', id)
      .where('state', '=', 'Pending')
      .execute()
    return this.get(id)
  }

  #need(what: string): string {
    const who = this.#actor()
    if (who === undefined)
      throw new CairnError(
        'Unauthorized',
        `Cannot ${what}: multi-user authorization needs a signed-in identity`,
      )
    return who
  }

  #toRequest(r: CatalogSchema['guard_requests']): GuardRequest {
    let state = r.state as GuardRequestState
    if (state === 'Approved' && r.valid_until !== null && r.valid_until <= this.#now()) state = 'Expired'
    const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString())
    const out: GuardRequest = {
      id: r.id,
      vault: r.vault,
      operation: r.operation as GuardedOperation,
      requestedBy: r.requested_by,
      requestedAt: iso(r.requested_at)!,
      state,
    }
    if (r.reason !== null) out.reason = r.reason
    if (r.decided_by !== null) out.decidedBy = r.decided_by
    if (r.decided_at !== null) out.decidedAt = iso(r.decided_at)!
    if (r.decision_reason !== null) out.decisionReason = r.decision_reason
    if (r.valid_until !== null) out.validUntil = iso(r.valid_until)!
    if (r.used_at !== null) out.usedAt = iso(r.used_at)!
    return out
  }
}
