import type { Catalog } from './catalog.js'
import type { JobKind } from './job-store.js'

/** A job a worker claimed: its id and kind (read the rest with JobStore.get). */
export interface ClaimedJob {
  id: string
  kind: JobKind
}

/**
 * Who runs which job, in the catalog: a process holds a lease on each job it runs and renews it by
 * heartbeats; workers claim queued jobs, and jobs whose lease expired (their process died), with
 * `FOR UPDATE SKIP LOCKED` on PostgreSQL so that concurrent claimers never take the same job and never
 * wait on each other. SQLite runs each claim as one statement under its single writer.
 */
export class JobLeases {
  readonly #catalog: Catalog
  readonly #now: () => number

  constructor(catalog: Catalog, options: { now?: () => number } = {}) {
    this.#catalog = catalog
    this.#now = options.now ?? Date.now
  }

  /** Takes (or renews) the lease of `owner` on an unfinished job; false when another owner holds it. */
  async hold(jobId: string, owner: string, leaseMs: number): Promise<boolean> {
    const now = this.#now()
    const r = await this.#catalog.db
      .updateTable('jobs')
      .set({ owner, lease_until: now + leaseMs })
      .where('id', '=', jobId)
      .where('ended_at', 'is', null)
      .where((eb) => eb.or([eb('owner', 'is', null), eb('owner', '=', owner), eb('lease_until', '<', now)]))
      .executeTakeFirst()
    return Number(r.numUpdatedRows) === 1
  }

  /** The heartbeat: renews `owner`'s leases on `jobIds`; answers the ids it no longer holds. */
  async renew(owner: string, jobIds: readonly string[], leaseMs: number): Promise<string[]> {
    if (jobIds.length === 0) return []
    const now = this.#now()
    const held = await this.#catalog.db
      .updateTable('jobs')
      .set({ lease_until: now + leaseMs })
      .where('id', 'in', [...jobIds])
      .where('owner', '=', owner)
      .where('ended_at', 'is', null)
      .returning('id')
      .execute()
    const kept = new Set(held.map((r) => r.id))
    return jobIds.filter((id) => !kept.has(id))
  }

  /**
   * Claims up to `limit` Queued jobs nobody holds (oldest first) for `owner`: with `host`, only the jobs
   * bound to that process (the ones routed to it); without, only the jobs bound to none.
   */
  async claimQueued(
    owner: string,
    options: { limit: number; leaseMs: number; kinds?: readonly JobKind[]; host?: string },
  ): Promise<ClaimedJob[]> {
    if (options.limit <= 0) return []
    const now = this.#now()
    const db = this.#catalog.db
    let pick = db
      .selectFrom('jobs')
      .select('id')
      .where('status', '=', 'Queued')
      .where('ended_at', 'is', null)
      .where('owner', 'is', null)
      .orderBy('started_at')
      .limit(options.limit)
    pick = options.host === undefined ? pick.where('host', 'is', null) : pick.where('host', '=', options.host)
    if (options.kinds) pick = pick.where('type', 'in', [...options.kinds])
    if (this.#catalog.dialect === 'postgres') pick = pick.forUpdate().skipLocked()
    const rows = await db
      .updateTable('jobs')
      .set({ owner, lease_until: now + options.leaseMs })
      .where('id', 'in', pick)
      .where('owner', 'is', null)
      .returning(['id', 'type'])
      .execute()
    return rows.map((r) => ({ id: r.id, kind: r.type as JobKind }))
  }

  /**
   * Claims up to `limit` unfinished jobs whose owner's lease expired (it died) for `owner`, oldest first,
   * never `owner`'s own; `includeOwn` claims the jobs `owner` itself holds too, expired or not (at its
   * start: they are its last run's). A job
   * bound to another process (`host`: it needs that one's disks) is never claimed: it waits for its host.
   */
  async claimExpired(
    owner: string,
    options: { limit: number; leaseMs: number; includeOwn?: boolean },
  ): Promise<ClaimedJob[]> {
    const now = this.#now()
    const db = this.#catalog.db
    let pick = db
      .selectFrom('jobs')
      .select('id')
      .where('ended_at', 'is', null)
      .where('owner', 'is not', null)
      .where((eb) =>
        options.includeOwn
          ? eb.or([eb('lease_until', '<', now), eb('owner', '=', owner)])
          : // A live process's own job past its lease is one it is starting or running (its heartbeat
            // renews it): only its next start takes it back.
            eb.and([eb('lease_until', '<', now), eb('owner', '<>', owner)]),
      )
      .where((eb) => eb.or([eb('host', 'is', null), eb('host', '=', owner)]))
      .orderBy('started_at')
      .limit(options.limit)
    if (this.#catalog.dialect === 'postgres') pick = pick.forUpdate().skipLocked()
    const rows = await db
      .updateTable('jobs')
      .set({ owner, lease_until: now + options.leaseMs })
      .where('id', 'in', pick)
      .returning(['id', 'type'])
      .execute()
    return rows.map((r) => ({ id: r.id, kind: r.type as JobKind }))
  }

  /** Hands a job `owner` claimed to `to` with its lease already expired (for `to` to take back at its start). */
  async giveBack(jobId: string, owner: string, to: string): Promise<void> {
    await this.#catalog.db
      .updateTable('jobs')
      .set({ owner: to, lease_until: 0 })
      .where('id', '=', jobId)
      .where('owner', '=', owner)
      .execute()
  }

  /** Lets go of `owner`'s lease on a job (it ended, or stops here to be resumed elsewhere). */
  async release(jobId: string, owner: string): Promise<void> {
    await this.#catalog.db
      .updateTable('jobs')
      .set({ owner: null, lease_until: null })
      .where('id', '=', jobId)
      .where('owner', '=', owner)
      .execute()
  }
}
