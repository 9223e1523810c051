// Disk geo-redundancy of storage accounts (Azure's LRS / GRS / RA-GRS for disks): the primary ships
// each GRS account's disks to its paired site in rounds, the secondary holds a read-only replica whose
// every disk is a point-in-time state of the primary's, RA-GRS serves it on `ACCOUNT-secondary`, and
// `failover` makes the secondary primary (docs/replication.md, "Disks").
import type { Readable } from 'node:stream'
import type { Catalog } from '../catalog/index.js'
import type { AccountInfo, DiskInfo, DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import { DiskGeoReceiver, type ReceiveAnswer, type ReplicaState, replicaKey } from './_disk-geo-receiver.js'
import { DiskGeoRows, type GeoAccountRow, type GeoRole, type ReplicaRow } from './_disk-geo-rows.js'
import { type DiskGeoLink, DiskGeoShipper, GEO_MARKER, type RoundReport } from './_disk-geo-shipper.js'
import { MessageBuffers, readMessage } from './_disk-geo-wire.js'

export type { DiskGeoLink, GeoRole, ReceiveAnswer, ReplicaState, RoundReport }

/** Redundancies whose data has a copy on the paired site. */
export const GEO_REDUNDANCIES: readonly string[] = ['GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']
/** Redundancies whose secondary clients may read (`ACCOUNT-secondary`). */
export const READABLE_SECONDARY: readonly string[] = ['RA-GRS', 'RA-GZRS']

/** A secondary that heard nothing from its primary for this long reports `unavailable`. */
const STALE_MS = 120_000

/** Azure's GeoReplication status of the secondary. */
export type GeoStatus = 'live' | 'bootstrap' | 'unavailable'

/** An account's replication, as `account replication` shows it. */
export interface AccountReplication {
  account: string
  redundancy: string
  /** `none` for an account that is not geo-replicated. */
  role: GeoRole | 'none'
  pair?: string
  status?: GeoStatus
  /** ISO time: every write before it is on the secondary (Azure's LastSyncTime). */
  lastSyncTime?: string
  /** Seconds from lastSyncTime to now. */
  lagSeconds?: number
  lastError?: string
  failedOverAt?: string
}

/** What `account failover` did. */
export interface FailoverReport {
  account: string
  role: 'primary'
  failedOverAt: string
  /** The replica's LastSyncTime: writes to the old primary after it are lost. */
  lastSyncTime?: string
  /** Seconds of writes lost at most: from lastSyncTime to the failover (absent: never synced). */
  dataLossWindowSeconds?: number
  /** Disks rolled back from a point being applied to their last complete one. */
  disksRolledBack: number
  disks: number
  redundancy: string
}

/** Options of DiskGeoReplication. */
export interface DiskGeoReplicationOptions {
  /** The store itself (not a read-only view): replication writes the replicas. */
  store: DiskStore
  catalog: Catalog
  link: DiskGeoLink
  logger?: Logger
  /** Milliseconds between rounds of each primary account (default 10 s). */
  intervalMs?: number
  now?: () => number
}

const iso = (ms: number | null | undefined) => (ms == null ? undefined : new Date(ms).toISOString())

/** Geo-replication of the disk store's accounts, both sides. */
export class DiskGeoReplication {
  readonly #store: DiskStore
  readonly #rows: DiskGeoRows
  readonly #logger: Logger
  readonly #now: () => number
  readonly #intervalMs: number
  readonly #accounts = new Map<string, GeoAccountRow>()
  readonly #replicas = new Map<string, ReplicaRow>()
  readonly #receiver: DiskGeoReceiver
  readonly #shipper: DiskGeoShipper
  readonly #link: DiskGeoLink
  readonly #rounds = new Map<string, Promise<RoundReport>>()
  readonly #failures = new Map<string, number>()
  readonly #nextAt = new Map<string, number>()
  /** Message buffers of the receiving side (a few messages arrive at once). */
  readonly #buffers = new MessageBuffers(4)
  #timer: NodeJS.Timeout | undefined
  #abort = new AbortController()

  constructor(options: DiskGeoReplicationOptions) {
    this.#store = options.store
    this.#now = options.now ?? Date.now
    this.#rows = new DiskGeoRows(options.catalog, this.#now)
    this.#logger = options.logger ?? silentLogger
    this.#intervalMs = options.intervalMs ?? 10_000
    this.#receiver = new DiskGeoReceiver({
      store: this.#store,
      rows: this.#rows,
      accounts: this.#accounts,
      replicas: this.#replicas,
      now: this.#now,
    })
    this.#link = options.link
    this.#shipper = new DiskGeoShipper({ store: this.#store, link: options.link, now: this.#now })
  }

  /** Loads the roles and replica states; with `ship`, starts the rounds of primary accounts. */
  async start(options: { ship?: boolean } = {}): Promise<void> {
    for (const a of await this.#rows.accounts()) this.#accounts.set(a.account, a)
    for (const r of await this.#rows.replicas())
      this.#replicas.set(replicaKey(r.account, r.container, r.disk), r)
    if (options.ship !== false) {
      this.#abort = new AbortController()
      this.#timer = setInterval(() => this.#tick(), Math.min(1000, this.#intervalMs))
      this.#timer.unref()
    }
  }

  /** Stops the rounds and waits for the ones running. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#abort.abort()
    await Promise.allSettled([...this.#rounds.values()])
    await this.#receiver.close().catch((err: unknown) =>
      this.#logger.warn('disk geo-replication: chunks could not be made durable at stop', {
        error: (err as Error).message,
      }),
    )
  }

  // ------------------------------------------------------------ what other parts ask, synchronously

  /** `secondary` when this site holds the account's read-only replica. */
  role(account: string): GeoRole | undefined {
    return this.#accounts.get(account)?.role
  }

  /** True when clients may read this site's replica of `account` (RA-GRS, RA-GZRS). */
  readable(account: string): boolean {
    if (this.role(account) !== 'secondary') return false
    return READABLE_SECONDARY.includes(this.#redundancy(account) ?? '')
  }

  /** The local snapshot holding the replica disk's last complete point (what secondary reads see). */
  readSnapshot(ref: DiskRef): string | undefined {
    return this.#replicas.get(replicaKey(ref.account, ref.container, ref.disk))?.localSnapshot ?? undefined
  }

  /** Azure's Get Blob Service Stats of a replica: GeoReplication Status and LastSyncTime. */
  stats(account: string): { status: GeoStatus; lastSyncTime?: Date } {
    const row = this.#accounts.get(account)
    const status = this.#status(row)
    return row?.lastSyncAt == null ? { status } : { status, lastSyncTime: new Date(row.lastSyncAt) }
  }

  #status(row: GeoAccountRow | undefined): GeoStatus {
    if (row === undefined || row.lastSyncAt === null) return 'bootstrap'
    const heard = row.lastRoundAt ?? row.lastSyncAt
    return this.#now() - heard > STALE_MS ? 'unavailable' : 'live'
  }

  #redundancy(account: string): string | undefined {
    try {
      return this.#store.getAccount(account).redundancy
    } catch (err) {
      if (isCairnError(err) && err.code === 'AccountNotFound') return undefined
      throw err
    }
  }

  // ------------------------------------------------------------ management

  /**
   * Sets an account's redundancy and, for GRS and RA-GRS, the paired site it replicates to. LRS stops
   * replicating (the paired site keeps the replica it has until its own `account failover` or delete).
   */
  async configure(
    account: string,
    options: { redundancy?: string; pair?: string },
  ): Promise<AccountReplication> {
    const info = this.#store.getAccount(account)
    this.#refuseReplica(account, 'change the redundancy of')
    const redundancy = options.redundancy ?? info.redundancy
    const row = this.#accounts.get(account)
    if (GEO_REDUNDANCIES.includes(redundancy)) {
      const pair = options.pair ?? row?.pair ?? undefined
      if (pair === undefined)
        throw new CairnError(
          'InvalidRequest',
          `Cannot make storage account "${account}" ${redundancy}: name the paired site to replicate to (--pair)`,
        )
      await this.#link.checkPair?.(pair)
      if (redundancy !== info.redundancy) await this.#store.setAccountRedundancy(account, redundancy)
      const next: GeoAccountRow = {
        account,
        role: 'primary',
        pair,
        lastSyncAt: row?.pair === pair ? row.lastSyncAt : null,
        lastRoundAt: row?.pair === pair ? row.lastRoundAt : null,
        lastError: null,
        failedOverAt: row?.failedOverAt ?? null,
      }
      await this.#rows.putAccount(next)
      this.#accounts.set(account, next)
      this.#nextAt.set(account, 0)
    } else {
      if (options.pair !== undefined)
        throw new CairnError(
          'InvalidRequest',
          `Cannot pair storage account "${account}": ${redundancy} keeps no copy on a paired site (use GRS or RA-GRS)`,
        )
      if (redundancy !== info.redundancy) await this.#store.setAccountRedundancy(account, redundancy)
      if (row !== undefined) {
        await this.#rows.deleteAccount(account)
        this.#accounts.delete(account)
      }
    }
    return this.replication(account)
  }

  /** An account's replication: role, pair, status, LastSyncTime and lag. */
  replication(account: string): AccountReplication {
    const info: AccountInfo = this.#store.getAccount(account)
    const row = this.#accounts.get(account)
    const out: AccountReplication = { account, redundancy: info.redundancy, role: row?.role ?? 'none' }
    if (row === undefined) return out
    if (row.pair !== null) out.pair = row.pair
    out.status = this.#status(row)
    const sync = iso(row.lastSyncAt)
    if (sync !== undefined) {
      out.lastSyncTime = sync
      out.lagSeconds = Math.max(0, Math.round((this.#now() - (row.lastSyncAt as number)) / 1000))
    }
    if (row.lastError !== null) out.lastError = row.lastError
    const fo = iso(row.failedOverAt)
    if (fo !== undefined) out.failedOverAt = fo
    return out
  }

  /** Runs one round of a primary account now (or waits for the one running and runs the next). */
  async syncNow(account: string): Promise<RoundReport> {
    this.#store.getAccount(account)
    const row = this.#accounts.get(account)
    if (row === undefined || row.role !== 'primary' || row.pair === null)
      throw new CairnError(
        'AccountNotReplicated',
        `Cannot replicate storage account "${account}": it is not the primary of a GRS or RA-GRS pair`,
      )
    const running = this.#rounds.get(account)
    if (running !== undefined) await running.catch(() => undefined)
    return this.#round(account)
  }

  /**
   * Makes this site's replica of `account` the primary (Azure's customer-managed failover): every disk
   * goes back to its last complete point, the account becomes LRS and writable. Writes the old primary
   * took after LastSyncTime are lost; the report says how long that window is.
   */
  async failover(account: string): Promise<FailoverReport> {
    const row = this.#accounts.get(account)
    if (row === undefined || row.role !== 'secondary')
      throw new CairnError(
        'AccountNotReplicated',
        `Cannot fail over storage account "${account}": this site holds no geo-replica of it`,
      )
    const at = this.#now()
    let rolledBack = 0
    let disks = 0
    for (const r of [...this.#replicas.values()]) {
      if (r.account !== account) continue
      const ref: DiskRef = { account, container: r.container, disk: r.disk }
      if (r.localSnapshot === null) {
        // Never complete here: the disk has no point-in-time state to offer.
        await this.#store.deleteDisk(ref, { snapshots: 'include' }).catch(() => undefined)
        rolledBack++
      } else {
        disks++
        if (r.applying !== null) {
          await this.#store.promote(ref, r.localSnapshot)
          rolledBack++
        }
        // The clients' snapshots stay; replication's own (and any orphan of a crash) go.
        const clients = new Set(r.snapshots)
        for (const s of this.#store.listSnapshots(ref))
          if (!clients.has(s.snapshot as string)) await this.#store.deleteSnapshot(ref, s.snapshot as string)
      }
      await this.#rows.deleteReplica(account, r.container, r.disk)
      this.#replicas.delete(replicaKey(account, r.container, r.disk))
    }
    await this.#store.setAccountRedundancy(account, 'LRS')
    await this.#rows.deleteAccount(account)
    this.#accounts.delete(account)
    const report: FailoverReport = {
      account,
      role: 'primary',
      failedOverAt: new Date(at).toISOString(),
      disksRolledBack: rolledBack,
      disks,
      redundancy: 'LRS',
    }
    if (row.lastSyncAt !== null) {
      report.lastSyncTime = new Date(row.lastSyncAt).toISOString()
      report.dataLossWindowSeconds = Math.max(0, (at - row.lastSyncAt) / 1000)
    }
    this.#logger.warn('storage account failed over: this site is its primary now', { ...report })
    return report
  }

  /** Throws AccountIsReplica when `account` is a read-only replica here. */
  #refuseReplica(account: string, what: string): void {
    if (this.role(account) === 'secondary')
      throw new CairnError(
        'AccountIsReplica',
        `Cannot ${what} storage account "${account}": it is the read-only geo-replica of its primary site (cairn account failover makes it primary)`,
      )
  }

  // ------------------------------------------------------------ the peer side

  /** Applies one replication message from the primary (POST /api/v1/geo/disks). */
  receive(body: Uint8Array): Promise<ReceiveAnswer> {
    return this.#receiver.receive(body)
  }

  /**
   * Reads one message of at most `limit` bytes from a request body into a reused page-aligned buffer
   * (its data lands on a page boundary: the disk store writes it without staging) and applies it.
   */
  async receiveStream(source: AsyncIterable<Uint8Array> | Readable, limit: number): Promise<ReceiveAnswer> {
    const { body, release } = await readMessage(source, this.#buffers, limit)
    try {
      return await this.#receiver.receive(body)
    } finally {
      release()
    }
  }

  /** What this site holds of `account` (GET /api/v1/geo/disks/{account}). */
  replicaState(account: string): Promise<ReplicaState> {
    return this.#receiver.settledState(account)
  }

  /**
   * The store as clients see it: every change to a replica account is refused with AccountIsReplica
   * (the blob API answers Azure's WriteOperationNotSupportedOnSecondary), and replication's own
   * snapshots (the primary's marked `cairngeo`, the replica's last point) are not listed.
   */
  readOnlyReplicas<S extends DiskStore>(store: S): S {
    // Every change is async: a refusal is a rejected promise, as the store's own refusals are.
    const guarded =
      (accountOf: (args: unknown[]) => string[], name: string) =>
      (...args: unknown[]) => {
        try {
          for (const a of accountOf(args)) this.#refuseReplica(a, `${name} in`)
        } catch (err) {
          return Promise.reject(err)
        }
        return (store[name as keyof DiskStore] as (...a: unknown[]) => unknown).apply(store, args)
      }
    const byRef = (name: string) => guarded((args) => [(args[0] as DiskRef).account], name)
    const byAccount = (name: string) => guarded((args) => [args[0] as string], name)
    // On a replica, clients see only their own snapshots as the primary had them.
    const hidden = (ref: DiskRef, snapshot: DiskInfo) => {
      if (snapshot.snapshot === undefined) return false
      if (snapshot.metadata[GEO_MARKER] === '1') return true
      const replica = this.#replicas.get(replicaKey(ref.account, ref.container, ref.disk))
      return replica !== undefined && !replica.snapshots.includes(snapshot.snapshot)
    }
    const overrides: Record<string, unknown> = {
      // Replication's own snapshots are not the clients': lists leave them out, and a disk whose only
      // snapshots they are deletes as a disk without snapshots does.
      listSnapshots: (ref: DiskRef) => store.listSnapshots(ref).filter((s) => !hidden(ref, s)),
      listDisks: (account: string, container: string, o?: Parameters<DiskStore['listDisks']>[2]) => {
        const page = store.listDisks(account, container, o)
        return { ...page, items: page.items.filter((d) => !hidden(d.ref, d)) }
      },
      deleteDisk: (ref: DiskRef, o: Parameters<DiskStore['deleteDisk']>[1] = {}) => {
        try {
          this.#refuseReplica(ref.account, 'deleteDisk in')
        } catch (err) {
          return Promise.reject(err)
        }
        let snaps: DiskInfo[] = []
        try {
          snaps = store.listSnapshots(ref)
        } catch {}
        const onlyOurs = snaps.length > 0 && snaps.every((s) => hidden(ref, s))
        return store.deleteDisk(
          ref,
          o.snapshots === undefined && onlyOurs ? { ...o, snapshots: 'include' } : o,
        )
      },
      snapshotGroup: guarded((args) => (args[0] as DiskRef[]).map((r) => r.account), 'snapshotGroup'),
      copyDisk: guarded((args) => [(args[1] as DiskRef).account], 'copyDisk'),
      importFile: guarded((args) => [(args[1] as DiskRef).account], 'importFile'),
      importImage: guarded((args) => [(args[0] as DiskRef).account], 'importImage'),
    }
    for (const m of [
      'createDisk',
      'resizeDisk',
      'setDiskMetadata',
      'setDiskContent',
      'setSequenceNumber',
      'setCopyInfo',
      'setDiskTags',
      'writePages',
      'clearPages',
      'lease',
      'snapshot',
      'deleteSnapshot',
      'promote',
    ])
      overrides[m] = byRef(m)
    for (const m of [
      'deleteAccount',
      'regenerateAccountKey',
      'setAccountRedundancy',
      'createContainer',
      'setContainerMetadata',
      'deleteContainer',
    ])
      overrides[m] = byAccount(m)
    return new Proxy(store, {
      get(target, prop) {
        if (typeof prop === 'string' && prop in overrides) return overrides[prop]
        const v = Reflect.get(target, prop, target) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    })
  }

  // ------------------------------------------------------------ rounds

  #tick(): void {
    const now = this.#now()
    for (const row of this.#accounts.values()) {
      if (row.role !== 'primary' || row.pair === null || this.#rounds.has(row.account)) continue
      if ((this.#nextAt.get(row.account) ?? 0) > now) continue
      this.#round(row.account).catch(() => undefined)
    }
  }

  #round(account: string): Promise<RoundReport> {
    const run = (async () => {
      const row = this.#accounts.get(account)
      if (row === undefined || row.pair === null) throw new CairnError('AccountNotReplicated', account)
      try {
        const report = await this.#shipper.round(account, row.pair, this.#abort.signal)
        const cur = this.#accounts.get(account)
        if (cur !== undefined) {
          const next = { ...cur, lastSyncAt: report.syncTime, lastRoundAt: this.#now(), lastError: null }
          await this.#rows.putAccount(next)
          this.#accounts.set(account, next)
        }
        this.#failures.delete(account)
        this.#nextAt.set(account, this.#now() + this.#intervalMs)
        return report
      } catch (err) {
        const failures = (this.#failures.get(account) ?? 0) + 1
        this.#failures.set(account, failures)
        // Retries back off from one interval to a minute.
        const wait = Math.min(60_000, this.#intervalMs * 2 ** Math.min(failures - 1, 6))
        this.#nextAt.set(account, this.#now() + wait)
        const cur = this.#accounts.get(account)
        if (cur !== undefined && !this.#abort.signal.aborted) {
          const next = { ...cur, lastError: (err as Error).message }
          await this.#rows.putAccount(next).catch(() => undefined)
          this.#accounts.set(account, next)
        }
        this.#logger.warn('disk geo-replication round failed', {
          account,
          error: (err as Error).message,
          retryInMs: wait,
        })
        throw err
      }
    })()
    this.#rounds.set(account, run)
    void run
      .finally(() => {
        if (this.#rounds.get(account) === run) this.#rounds.delete(account)
      })
      .catch(() => undefined)
    return run
  }
}
