// The secondary side of disk geo-replication: applies the primary's messages to the replica, in order,
// so that what clients read (each disk's last committed point, kept as a local snapshot) is always a
// point-in-time state of the primary's disk. A message out of order, replayed late or for a point whose
// chunks are missing is refused without touching the replica (docs/replication.md, "Disks").
import { type DiskRef, type DiskStore, MAX_WRITE_SIZE } from '../diskstore/index.js'
import { CairnError, isCairnError } from '../util/index.js'
import type { DiskGeoRows, GeoAccountRow, ReplicaRow } from './_disk-geo-rows.js'
import {
  type DiskGeoMessage,
  decodeGeoMessage,
  type GeoAccountMessage,
  type GeoBeginMessage,
  type GeoCommitMessage,
  type GeoPagesMessage,
  type GeoRoundMessage,
} from './_disk-geo-wire.js'

/** What the secondary holds of an account, as the primary asks for it before each round. */
export interface ReplicaState {
  account: string
  role: 'primary' | 'secondary' | 'none'
  lastSyncTime?: number
  /** `container/disk` → the primary's snapshot id last committed here. */
  committed: Record<string, string>
  /** `container/disk` → the point being applied: its base, chunk plan and the chunks here (to resume). */
  applying?: Record<string, { target: string; base: string | null; plan: string; chunks: number[] }>
  /** `container/disk` → the clients' snapshots held here (the primary's ids). */
  snapshots?: Record<string, string[]>
}

/** The answer to one message. */
export interface ReceiveAnswer {
  kind: DiskGeoMessage['kind']
  /** False when the message was already applied (a replay): nothing changed. */
  applied: boolean
}

export const replicaKey = (a: string, c: string, d: string) => `${a}/${c}/${d}`

/** Chunks applied since the last flush: made durable (and acknowledged) once they reach this many bytes. */
const FLUSH_BYTES = 64 * 1024 * 1024

const refuse = (why: string) =>
  new CairnError('ReplicationRefused', `Cannot accept the replication message: ${why}`)

/** Applies replication messages to this site's replicas; one message of an account at a time. */
export class DiskGeoReceiver {
  readonly #store: DiskStore
  readonly #rows: DiskGeoRows
  readonly #accounts: Map<string, GeoAccountRow>
  readonly #replicas: Map<string, ReplicaRow>
  readonly #now: () => number
  readonly #queues = new Map<string, Promise<unknown>>()
  /** Per replica disk: chunks written but not yet flushed, so not yet acknowledged in its row. */
  readonly #unflushed = new Map<string, { chunks: number[]; bytes: number }>()

  constructor(options: {
    store: DiskStore
    rows: DiskGeoRows
    accounts: Map<string, GeoAccountRow>
    replicas: Map<string, ReplicaRow>
    now: () => number
  }) {
    this.#store = options.store
    this.#rows = options.rows
    this.#accounts = options.accounts
    this.#replicas = options.replicas
    this.#now = options.now
  }

  /** Checks and applies one message (the body of POST /api/v1/geo/disks). */
  async receive(body: Uint8Array): Promise<ReceiveAnswer> {
    // Checked (its data against its SHA-256 too) before it queues.
    const { header, data } = decodeGeoMessage(body)
    return this.#queued(header.account, () => this.#apply(header, data))
  }

  /** Runs `fn` after every message of `account` before it (one at a time per account). */
  #queued<T>(account: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(account) ?? Promise.resolve()
    const run = prev.catch(() => undefined).then(fn)
    this.#queues.set(account, run)
    void run
      .finally(() => {
        if (this.#queues.get(account) === run) this.#queues.delete(account)
      })
      .catch(() => undefined)
    return run
  }

  /**
   * What this site holds of `account`, as the primary asks before each round: the chunks written so
   * far are made durable first, so a point cut short resumes from its last chunk that arrived.
   */
  settledState(account: string): Promise<ReplicaState> {
    return this.#queued(account, async () => {
      await this.#acknowledgeAll(account)
      return this.state(account)
    })
  }

  /** Makes every chunk written so far durable and acknowledged (before a stop, before a state answer). */
  async #acknowledgeAll(account?: string): Promise<void> {
    for (const key of [...this.#unflushed.keys()])
      if (account === undefined || key.startsWith(`${account}/`)) await this.#acknowledge(key)
  }

  /** Waits for the messages being applied, then acknowledges what they wrote (the service stops). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()])
    await this.#acknowledgeAll()
  }

  /** What this site holds of `account` (the chunks acknowledged so far). */
  state(account: string): ReplicaState {
    const row = this.#accounts.get(account)
    const committed: Record<string, string> = {}
    const applying: NonNullable<ReplicaState['applying']> = {}
    const snapshots: Record<string, string[]> = {}
    for (const r of this.#replicas.values()) {
      if (r.account !== account) continue
      const key = `${r.container}/${r.disk}`
      if (r.committed !== null) committed[key] = r.committed
      if (r.applying !== null && r.plan !== null)
        applying[key] = { target: r.applying, base: r.base, plan: r.plan, chunks: r.chunks }
      if (r.snapshots.length > 0) snapshots[key] = r.snapshots
    }
    const state: ReplicaState = { account, role: row?.role ?? 'none', committed, applying, snapshots }
    if (row?.lastSyncAt != null) state.lastSyncTime = row.lastSyncAt
    return state
  }

  async #apply(m: DiskGeoMessage, data: Buffer): Promise<ReceiveAnswer> {
    switch (m.kind) {
      case 'account':
        return this.#account(m)
      case 'begin':
        return this.#begin(m)
      case 'pages':
        return this.#pages(m, data)
      case 'commit':
        return this.#commit(m)
      case 'round':
        return this.#round(m)
    }
  }

  #secondary(account: string): GeoAccountRow {
    const row = this.#accounts.get(account)
    if (row === undefined) throw refuse(`account "${account}" is not replicated to this site`)
    if (row.role !== 'secondary')
      throw refuse(`account "${account}" is primary on this site (failed over), not a replica`)
    return row
  }

  async #account(m: GeoAccountMessage): Promise<ReceiveAnswer> {
    const row = this.#accounts.get(m.account)
    if (row !== undefined && row.role !== 'secondary')
      throw refuse(`account "${m.account}" is primary on this site (failed over), not a replica`)
    const exists = this.#store.listAccounts().find((a) => a.name === m.account)
    if (row === undefined && exists !== undefined)
      throw refuse(`this site has an account "${m.account}" of its own`)
    let applied = false
    if (exists === undefined) {
      await this.#store.createAccount(m.account, {
        region: m.region,
        redundancy: m.redundancy,
        keys: m.keys,
      })
      applied = true
    } else {
      for (const which of [1, 2] as const)
        if (exists.keys[which - 1] !== m.keys[which - 1]) {
          await this.#store.regenerateAccountKey(m.account, which, m.keys[which - 1])
          applied = true
        }
      if (exists.redundancy !== m.redundancy) {
        await this.#store.setAccountRedundancy(m.account, m.redundancy)
        applied = true
      }
    }
    if (row === undefined) {
      const fresh: GeoAccountRow = {
        account: m.account,
        role: 'secondary',
        pair: null,
        lastSyncAt: null,
        lastRoundAt: null,
        lastError: null,
        failedOverAt: null,
      }
      await this.#rows.putAccount(fresh)
      this.#accounts.set(m.account, fresh)
      applied = true
    }
    return { kind: 'account', applied }
  }

  #replica(m: { account: string; container: string; disk: string }): ReplicaRow {
    return (
      this.#replicas.get(replicaKey(m.account, m.container, m.disk)) ?? {
        account: m.account,
        container: m.container,
        disk: m.disk,
        committed: null,
        localSnapshot: null,
        applying: null,
        base: null,
        plan: null,
        chunks: [],
        snapshots: [],
      }
    )
  }

  async #save(r: ReplicaRow): Promise<void> {
    await this.#rows.putReplica(r)
    this.#replicas.set(replicaKey(r.account, r.container, r.disk), r)
  }

  async #begin(m: GeoBeginMessage): Promise<ReceiveAnswer> {
    this.#secondary(m.account)
    const r = this.#replica(m)
    if (r.committed === m.target || r.snapshots.includes(m.target)) return { kind: 'begin', applied: false }
    // The same point cut short, same base and plan: it resumes with the chunks already here.
    if (r.applying === m.target && r.base === m.base && r.plan === m.plan)
      return { kind: 'begin', applied: false }
    if (r.committed !== null && m.target <= r.committed)
      throw refuse(
        `point ${m.target} of "${m.container}/${m.disk}" is older than its committed ${r.committed}`,
      )
    if (m.base !== null && m.base !== r.committed && !r.snapshots.includes(m.base))
      throw refuse(
        `point ${m.target} of "${m.container}/${m.disk}" follows ${m.base}, but this site holds ${r.committed ?? 'nothing'}`,
      )
    const ref: DiskRef = { account: m.account, container: m.container, disk: m.disk }
    if (!this.#hasContainer(m.account, m.container)) await this.#store.createContainer(m.account, m.container)
    const disk = this.#find(ref)
    if (disk === undefined) {
      await this.#store.createDisk(ref, { size: m.size })
    } else {
      // The disk must hold the base before the diff applies: from an empty disk (the primary lost its
      // base) start from zeros; from a client snapshot held here, from it; from the committed point, roll
      // back what a point cut short (and not resumed) left written.
      if (m.base === null) await this.#store.clearPages(ref, 0, disk.size)
      else if (m.base !== r.committed) await this.#store.promote(ref, m.base)
      else if (r.applying !== null && r.localSnapshot !== null)
        await this.#store.promote(ref, r.localSnapshot)
      const size = this.#store.getDisk(ref).size
      if (size !== m.size) await this.#store.resizeDisk(ref, m.size)
    }
    this.#unflushed.delete(replicaKey(m.account, m.container, m.disk))
    await this.#save({ ...r, applying: m.target, base: m.base, plan: m.plan, chunks: [] })
    return { kind: 'begin', applied: true }
  }

  #hasContainer(account: string, container: string): boolean {
    try {
      this.#store.getContainer(account, container)
      return true
    } catch (err) {
      if (isCairnError(err) && err.code === 'ContainerNotFound') return false
      throw err
    }
  }

  #find(ref: DiskRef) {
    try {
      return this.#store.getDisk(ref)
    } catch (err) {
      if (isCairnError(err) && (err.code === 'DiskNotFound' || err.code === 'ContainerNotFound'))
        return undefined
      throw err
    }
  }

  async #pages(m: GeoPagesMessage, data: Buffer): Promise<ReceiveAnswer> {
    this.#secondary(m.account)
    const r = this.#replica(m)
    if (r.committed === m.target || r.snapshots.includes(m.target)) return { kind: 'pages', applied: false }
    if (r.applying !== m.target)
      throw refuse(`chunk ${m.chunk} is of point ${m.target}, but this site applies ${r.applying ?? 'none'}`)
    if (r.plan !== m.plan) throw refuse(`chunk ${m.chunk} of point ${m.target} is of another chunk plan`)
    const ref: DiskRef = { account: m.account, container: m.container, disk: m.disk }
    for (const c of m.clears) await this.#store.clearPages(ref, c.start, c.end - c.start, { durable: false })
    // The chunk's writes go out together (each is placed in the log, in order, when it is called) and
    // past the page cache: a replica is written once and read later, and the cache's copy of every byte
    // (and its writeback at the flush) cost more than the write itself.
    const writes: Promise<unknown>[] = []
    let at = 0
    for (const range of m.ranges) {
      for (let off = range.start; off < range.end; off += MAX_WRITE_SIZE) {
        const n = Math.min(MAX_WRITE_SIZE, range.end - off)
        writes.push(
          this.#store.writePages(ref, off, data.subarray(at, at + n), { durable: false, direct: true }),
        )
        at += n
      }
    }
    // Every write must end before the message's buffer is given back, failed or not.
    const failed = (await Promise.allSettled(writes)).find((w) => w.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    // A chunk is acknowledged (in the row the primary reads to resume) only once it is durable; the
    // flush is paid every FLUSH_BYTES, not per chunk (a crash loses at most those, sent again).
    const key = replicaKey(m.account, m.container, m.disk)
    const pending = this.#unflushed.get(key) ?? { chunks: [], bytes: 0 }
    if (!r.chunks.includes(m.chunk) && !pending.chunks.includes(m.chunk)) pending.chunks.push(m.chunk)
    pending.bytes += data.length + 512 * m.clears.length
    this.#unflushed.set(key, pending)
    if (pending.bytes >= FLUSH_BYTES) await this.#acknowledge(key)
    return { kind: 'pages', applied: true }
  }

  /** Makes the chunks written so far durable and records them in the replica's row. */
  async #acknowledge(key: string): Promise<void> {
    const pending = this.#unflushed.get(key)
    if (pending === undefined) return
    await this.#store.flush()
    this.#unflushed.delete(key)
    const r = this.#replicas.get(key)
    if (r !== undefined && pending.chunks.length > 0)
      await this.#save({ ...r, chunks: [...r.chunks, ...pending.chunks] })
  }

  async #commit(m: GeoCommitMessage): Promise<ReceiveAnswer> {
    this.#secondary(m.account)
    const r = this.#replica(m)
    if (r.committed === m.target || r.snapshots.includes(m.target)) return { kind: 'commit', applied: false }
    if (r.applying !== m.target || r.plan !== m.plan)
      throw refuse(
        `commit of point ${m.target}, but this site applies ${r.applying ?? 'none'} (or another plan)`,
      )
    const key = replicaKey(m.account, m.container, m.disk)
    const have = new Set([...r.chunks, ...(this.#unflushed.get(key)?.chunks ?? [])])
    for (let i = 0; i < m.chunks; i++)
      if (!have.has(i)) throw refuse(`point ${m.target} misses chunk ${i} of ${m.chunks}`)
    if (have.size !== m.chunks) throw refuse(`point ${m.target} has chunks beyond its ${m.chunks}`)
    const ref: DiskRef = { account: m.account, container: m.container, disk: m.disk }
    await this.#acknowledge(key)
    await this.#store.setDiskMetadata(ref, m.metadata)
    await this.#store.setDiskContent(ref, m.content)
    await this.#store.setSequenceNumber(ref, 'update', m.sequenceNumber)
    let snapshots = r.snapshots
    if (m.userSnapshot === true) {
      // A client's snapshot: kept under the primary's id (made already if a crash cut this commit).
      if (!this.#store.listSnapshots(ref).some((s) => s.snapshot === m.target))
        await this.#store.snapshot(ref, { id: m.target, metadata: m.metadata })
      snapshots = [...snapshots, m.target]
    }
    const snap = await this.#store.snapshot(ref)
    const local = snap.snapshot as string
    // The clients' snapshots and one of replication's own per replica disk, the last committed point
    // (older ones and any orphan of a crash go).
    const keep = new Set([local, ...snapshots])
    for (const s of this.#store.listSnapshots(ref))
      if (!keep.has(s.snapshot as string)) await this.#store.deleteSnapshot(ref, s.snapshot as string)
    await this.#save({
      ...r,
      committed: m.target,
      localSnapshot: local,
      applying: null,
      base: null,
      plan: null,
      chunks: [],
      snapshots,
    })
    return { kind: 'commit', applied: true }
  }

  async #round(m: GeoRoundMessage): Promise<ReceiveAnswer> {
    const row = this.#secondary(m.account)
    if (row.lastSyncAt !== null && m.syncTime <= row.lastSyncAt) return { kind: 'round', applied: false }
    const listed = new Set(m.disks)
    const synced = new Date(m.syncTime).toISOString()
    for (const r of [...this.#replicas.values()]) {
      if (r.account !== m.account || listed.has(`${r.container}/${r.disk}`)) continue
      // A point newer than the round's start is not the round's to judge.
      if (r.committed !== null && r.committed > synced) continue
      const ref: DiskRef = { account: r.account, container: r.container, disk: r.disk }
      if (this.#find(ref) !== undefined) await this.#store.deleteDisk(ref, { snapshots: 'include' })
      await this.#rows.deleteReplica(r.account, r.container, r.disk)
      this.#replicas.delete(replicaKey(r.account, r.container, r.disk))
    }
    // Clients' snapshots deleted on the primary go here too.
    for (const r of [...this.#replicas.values()]) {
      const listed = m.snapshots?.[`${r.container}/${r.disk}`]
      if (r.account !== m.account || listed === undefined) continue
      const keep = new Set(listed)
      const gone = r.snapshots.filter((id) => !keep.has(id) && id <= synced)
      if (gone.length === 0) continue
      const ref: DiskRef = { account: r.account, container: r.container, disk: r.disk }
      const here = new Set(this.#store.listSnapshots(ref).map((s) => s.snapshot))
      for (const id of gone) if (here.has(id)) await this.#store.deleteSnapshot(ref, id)
      await this.#save({ ...r, snapshots: r.snapshots.filter((id) => !gone.includes(id)) })
    }
    const containers = new Set(m.containers)
    let marker: string | undefined
    do {
      const page = this.#store.listContainers(m.account, marker === undefined ? {} : { marker })
      for (const c of page.items) {
        const empty = this.#store.listDisks(m.account, c.name, { maxResults: 1 }).items.length === 0
        if (!containers.has(c.name) && empty) await this.#store.deleteContainer(m.account, c.name)
      }
      marker = page.nextMarker
    } while (marker !== undefined)
    const next = { ...row, lastSyncAt: m.syncTime, lastRoundAt: this.#now(), lastError: null }
    await this.#rows.putAccount(next)
    this.#accounts.set(m.account, next)
    return { kind: 'round', applied: true }
  }
}
