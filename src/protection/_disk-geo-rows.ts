// The catalog rows of disk geo-replication: each replicated account's role, and on the secondary each
// replica disk's state (tables disk_geo_accounts and disk_geo_replicas, migration 18).
import type { Catalog } from '../catalog/index.js'

/** A geo-replicated account's role in its pair. */
export type GeoRole = 'primary' | 'secondary'

/** One row of disk_geo_accounts. */
export interface GeoAccountRow {
  account: string
  role: GeoRole
  /** On the primary: the paired site it ships to. */
  pair: string | null
  lastSyncAt: number | null
  lastRoundAt: number | null
  lastError: string | null
  failedOverAt: number | null
}

/** One row of disk_geo_replicas. */
export interface ReplicaRow {
  account: string
  container: string
  disk: string
  /** The primary's snapshot id of the last complete point here. */
  committed: string | null
  /** The local snapshot holding that point: what clients read as the disk. */
  localSnapshot: string | null
  /** The point being applied, the state it starts from and its chunk plan (see _disk-geo-wire.ts). */
  applying: string | null
  base: string | null
  plan: string | null
  /** Chunks of the point being applied that are here and durable. */
  chunks: number[]
  /** The primary's snapshots (clients' snapshots) held here under the same ids. */
  snapshots: string[]
}

/**
 * The `chunks` column: a JSON object `{ chunks, base, plan, snapshots }` (a plain array of chunk numbers
 * in rows written before user snapshots and resume: read as no plan, no snapshots).
 */
function parseProgress(text: string): Pick<ReplicaRow, 'chunks' | 'base' | 'plan' | 'snapshots'> {
  const v = JSON.parse(text) as unknown
  if (Array.isArray(v)) return { chunks: v as number[], base: null, plan: null, snapshots: [] }
  const o = v as Partial<ReplicaRow>
  return { chunks: o.chunks ?? [], base: o.base ?? null, plan: o.plan ?? null, snapshots: o.snapshots ?? [] }
}

/** Reads and writes the two tables. */
export class DiskGeoRows {
  readonly #catalog: Catalog
  readonly #now: () => number

  constructor(catalog: Catalog, now: () => number) {
    this.#catalog = catalog
    this.#now = now
  }

  async accounts(): Promise<GeoAccountRow[]> {
    const rows = await this.#catalog.db.selectFrom('disk_geo_accounts').selectAll().execute()
    return rows.map((r) => ({
      account: r.account,
      role: r.role === 'secondary' ? 'secondary' : 'primary',
      pair: r.pair,
      lastSyncAt: r.last_sync_at === null ? null : Number(r.last_sync_at),
      lastRoundAt: r.last_round_at === null ? null : Number(r.last_round_at),
      lastError: r.last_error,
      failedOverAt: r.failed_over_at === null ? null : Number(r.failed_over_at),
    }))
  }

  async putAccount(row: GeoAccountRow): Promise<void> {
    const values = {
      role: row.role,
      pair: row.pair,
      last_sync_at: row.lastSyncAt,
      last_round_at: row.lastRoundAt,
      last_error: row.lastError,
      failed_over_at: row.failedOverAt,
      updated_at: this.#now(),
    }
    await this.#catalog.db
      .insertInto('disk_geo_accounts')
      .values({ account: row.account, ...values })
      .onConflict((oc) => oc.column('account').doUpdateSet(values))
      .execute()
  }

  async deleteAccount(account: string): Promise<void> {
    await this.#catalog.db.deleteFrom('disk_geo_accounts').where('account', '=', account).execute()
    await this.#catalog.db.deleteFrom('disk_geo_replicas').where('account', '=', account).execute()
  }

  async replicas(account?: string): Promise<ReplicaRow[]> {
    let q = this.#catalog.db.selectFrom('disk_geo_replicas').selectAll()
    if (account !== undefined) q = q.where('account', '=', account)
    const rows = await q.execute()
    return rows.map((r) => ({
      account: r.account,
      container: r.container,
      disk: r.disk,
      committed: r.committed,
      localSnapshot: r.local_snapshot,
      applying: r.applying,
      ...parseProgress(r.chunks),
    }))
  }

  async putReplica(row: ReplicaRow): Promise<void> {
    const values = {
      committed: row.committed,
      local_snapshot: row.localSnapshot,
      applying: row.applying,
      chunks: JSON.stringify({
        chunks: row.chunks,
        base: row.base,
        plan: row.plan,
        snapshots: row.snapshots,
      }),
      updated_at: this.#now(),
    }
    await this.#catalog.db
      .insertInto('disk_geo_replicas')
      .values({ account: row.account, container: row.container, disk: row.disk, ...values })
      .onConflict((oc) => oc.columns(['account', 'container', 'disk']).doUpdateSet(values))
      .execute()
  }

  async deleteReplica(account: string, container: string, disk: string): Promise<void> {
    await this.#catalog.db
      .deleteFrom('disk_geo_replicas')
      .where('account', '=', account)
      .where('container', '=', container)
      .where('disk', '=', disk)
      .execute()
  }
}
