import type { Catalog } from './catalog.js'

/** What a lease attempt found: whether `owner` leads now, and the term (grows at each change of owner). */
export interface LeaseState {
  leader: boolean
  owner: string
  term: number
  until: number
}

/**
 * A named lease in the catalog that one process holds at a time (the scheduler's leader): acquire()
 * takes it when it is free or expired, or renews it for its holder, in one conditional statement, so
 * two processes never both believe they lead within one lease period (clocks within a second of
 * each other; docs/scale-out.md).
 */
export class LeaderLease {
  readonly #catalog: Catalog
  readonly #name: string
  readonly #now: () => number

  constructor(catalog: Catalog, name: string, options: { now?: () => number } = {}) {
    this.#catalog = catalog
    this.#name = name
    this.#now = options.now ?? Date.now
  }

  /** Takes or renews the lease for `owner` for `ms`; answers who holds it afterwards. */
  async acquire(owner: string, ms: number): Promise<LeaseState> {
    const now = this.#now()
    const db = this.#catalog.db
    await db
      .insertInto('leases')
      .values({ name: this.#name, owner, until: now + ms, term: 1 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute()
    // Renew for the holder; take over an expired lease (a new term).
    await db
      .updateTable('leases')
      .set((eb) => ({
        until: now + ms,
        term: eb
          .case()
          .when('owner', '=', owner)
          .then(eb.ref('term'))
          .else(eb('term', '+', 1))
          .end(),
        owner,
      }))
      .where('name', '=', this.#name)
      .where((eb) => eb.or([eb('owner', '=', owner), eb('until', '<', now)]))
      .execute()
    const row = await db
      .selectFrom('leases')
      .selectAll()
      .where('name', '=', this.#name)
      .executeTakeFirstOrThrow()
    return {
      leader: row.owner === owner && row.until > now,
      owner: row.owner,
      term: row.term,
      until: row.until,
    }
  }

  /** Gives the lease up if `owner` holds it (a clean stop: another instance takes over at once). */
  async release(owner: string): Promise<void> {
    await this.#catalog.db
      .updateTable('leases')
      .set({ until: 0 })
      .where('name', '=', this.#name)
      .where('owner', '=', owner)
      .execute()
  }
}
