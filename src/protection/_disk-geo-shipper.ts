// The primary side of disk geo-replication: one round takes a consistency-group snapshot of every disk
// of the account that changed since the point the secondary holds, and ships each disk's page-range diff
// between the two snapshots (reference 000's incremental snapshot copy across regions), in order. The
// primary keeps no replication state of its own: it asks the secondary what it holds at the start of
// every round, so either side may restart at any moment (docs/replication.md, "Disks").
import type { ByteRange, DiskInfo, DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type { ReplicaState } from './_disk-geo-receiver.js'
import {
  CHUNK_BYTES,
  type DiskGeoMessage,
  dataCrc,
  encodeGeoMessage,
  frameInPlace,
  HEADER_ROOM,
  MessageBuffers,
  planDigest,
} from './_disk-geo-wire.js'

/** The metadata key marking the primary's replication snapshots (value "1"). */
export const GEO_MARKER = 'cairngeo'

/** Ranges (written or cleared) in one pages message. */
const CHUNK_RANGES = 4096
/** Pages messages in flight at once (each read, hashed and sent while the others travel). */
const IN_FLIGHT = 4

/** How this site reaches its paired sites (the pair registry's peer client). */
export interface DiskGeoLink {
  /** Rejects (PairNotFound) unless a paired site of that name exists. */
  checkPair?(pair: string): Promise<void>
  /** Sends one message to the paired site; rejects when the site refuses it or cannot be reached. */
  send(pair: string, message: Buffer, signal?: AbortSignal): Promise<void>
  /** What the paired site holds of `account`. */
  state(pair: string, account: string, signal?: AbortSignal): Promise<ReplicaState>
}

/** What one round did. */
export interface RoundReport {
  account: string
  /** Every write before this instant (ms) is now on the secondary. */
  syncTime: number
  disks: number
  /** Points shipped (disks that changed). */
  points: number
  /** Bytes of the changed pages shipped. */
  changedBytes: number
  /** Bytes of the messages sent (headers, digests and data). */
  wireBytes: number
  /** Bytes of points cut short earlier that were not sent again (the secondary had their chunks). */
  resumedBytes: number
}

interface Chunk {
  ranges: ByteRange[]
  clears: ByteRange[]
  bytes: number
}

/** Runs replication rounds of accounts to their paired site. */
export class DiskGeoShipper {
  readonly #store: DiskStore
  readonly #link: DiskGeoLink
  readonly #now: () => number
  readonly #buffers = new MessageBuffers(IN_FLIGHT)

  constructor(options: { store: DiskStore; link: DiskGeoLink; now: () => number }) {
    this.#store = options.store
    this.#link = options.link
    this.#now = options.now
  }

  /** One round of `account` to `pair`. */
  async round(account: string, pair: string, signal?: AbortSignal): Promise<RoundReport> {
    const info = this.#store.getAccount(account)
    const remote = await this.#link.state(pair, account, signal)
    if (remote.role === 'primary')
      throw new CairnError(
        'ReplicationRefused',
        `Cannot replicate account "${account}" to "${pair}": the paired site holds it as primary (it failed over); this copy is stale`,
      )
    const report: RoundReport = {
      account,
      syncTime: 0,
      disks: 0,
      points: 0,
      changedBytes: 0,
      wireBytes: 0,
      resumedBytes: 0,
    }
    const send = async (header: DiskGeoMessage, data?: Buffer[] | Buffer) => {
      signal?.throwIfAborted()
      const body = Buffer.isBuffer(data) ? data : encodeGeoMessage(header, data)
      report.wireBytes += body.length
      await this.#link.send(pair, body, signal)
    }
    await send({
      kind: 'account',
      account,
      region: info.region,
      redundancy: info.redundancy,
      keys: info.keys,
    })
    // Every write before t0 is in this round: a disk found unchanged below was unchanged at t0, and
    // the snapshot of a changed one is taken after it.
    const t0 = this.#now()
    const { containers, disks } = this.#list(account)
    report.disks = disks.length
    const plans: { ref: DiskRef; key: string; base: string | null; changed: boolean }[] = []
    for (const d of disks) {
      const key = `${d.ref.container}/${d.ref.disk}`
      const mine = new Map(this.#store.listSnapshots(d.ref).map((s) => [s.snapshot as string, s]))
      // The diff starts from the point the secondary holds; when this site lost it (a client deleted
      // that snapshot), from the newest client snapshot both hold; else from zeros.
      const committed = remote.committed[key]
      let base: string | null = null
      if (committed !== undefined && mine.has(committed)) base = committed
      else {
        const both = (remote.snapshots?.[key] ?? []).filter((id) => mine.has(id)).sort()
        base = both.at(-1) ?? null
      }
      const changed = base === null || mine.get(base)?.etag !== d.etag
      plans.push({ ref: d.ref, key, base, changed })
    }
    const moved = plans.filter((p) => p.changed)
    const targets =
      moved.length === 0
        ? []
        : await this.#store.snapshotGroup(
            moved.map((p) => p.ref),
            { markers: { [GEO_MARKER]: '1' } },
          )
    const groupOf = new Map(moved.map((p, i) => [p.key, (targets[i] as DiskInfo).snapshot as string]))
    const snapshots: Record<string, string[]> = {}
    for (const p of plans) {
      const group = groupOf.get(p.key)
      const mine = this.#store.listSnapshots(p.ref)
      const clients = mine.filter((s) => s.metadata[GEO_MARKER] !== '1').map((s) => s.snapshot as string)
      clients.sort()
      snapshots[p.key] = clients
      // In order: the clients' snapshots the secondary lacks (taken before this round's point), then the
      // point. A snapshot taken after the point goes next round.
      const held = new Set(remote.snapshots?.[p.key] ?? [])
      const after = remote.committed[p.key] ?? p.base ?? ''
      const chain = clients.filter((id) => !held.has(id) && id > after && (group === undefined || id < group))
      if (group !== undefined) chain.push(group)
      // A point cut short resumes first when it still leads from the same base.
      const cut = remote.applying?.[p.key]
      const resumable =
        cut !== undefined &&
        cut.base === p.base &&
        mine.some((s) => s.snapshot === cut.target) &&
        cut.target > after &&
        (chain.length === 0 || cut.target <= (chain[0] as string))
      if (resumable && chain[0] !== cut.target) chain.unshift(cut.target)
      let prev = p.base
      for (const target of chain) {
        const info = this.#store.getDisk(p.ref, target)
        const acked = resumable && target === cut.target ? cut : undefined
        const shipped = await this.#shipPoint(p.ref, prev, info, send, acked)
        report.changedBytes += shipped.changed
        report.resumedBytes += shipped.resumed
        report.points++
        prev = target
      }
      await this.#dropGeoSnapshots(p.ref, prev)
    }
    await send({
      kind: 'round',
      account,
      syncTime: t0,
      containers,
      disks: disks.map((d) => `${d.ref.container}/${d.ref.disk}`),
      snapshots,
    })
    report.syncTime = t0
    return report
  }

  #list(account: string): { containers: string[]; disks: DiskInfo[] } {
    const containers: string[] = []
    const disks: DiskInfo[] = []
    let cm: string | undefined
    do {
      const page = this.#store.listContainers(account, cm === undefined ? {} : { marker: cm })
      for (const c of page.items) {
        containers.push(c.name)
        let dm: string | undefined
        do {
          const dp = this.#store.listDisks(account, c.name, dm === undefined ? {} : { marker: dm })
          disks.push(...dp.items)
          dm = dp.nextMarker
        } while (dm !== undefined)
      }
      cm = page.nextMarker
    } while (cm !== undefined)
    return { containers, disks }
  }

  /** Deletes the disk's replication snapshots but `keep`. */
  async #dropGeoSnapshots(ref: DiskRef, keep: string | null): Promise<void> {
    for (const s of this.#store.listSnapshots(ref))
      if (s.metadata[GEO_MARKER] === '1' && s.snapshot !== keep)
        await this.#store.deleteSnapshot(ref, s.snapshot as string)
  }

  /**
   * Ships the diff from `base` to `target`, but the chunks `acked` says the secondary holds of it (a
   * point cut short, same plan); answers the bytes of changed pages and those not sent again.
   */
  async #shipPoint(
    ref: DiskRef,
    base: string | null,
    target: DiskInfo,
    send: (h: DiskGeoMessage, data?: Buffer[] | Buffer) => Promise<void>,
    acked?: { plan: string; chunks: number[] },
  ): Promise<{ changed: number; resumed: number }> {
    const id = target.snapshot as string
    const where = { account: ref.account, container: ref.container, disk: ref.disk, target: id }
    const chunks = this.#chunks(ref, base, id)
    const plan = planDigest(chunks)
    const have = new Set(acked?.plan === plan ? acked.chunks : [])
    await send({ kind: 'begin', ...where, base, size: target.size, plan, chunks: chunks.length })
    let changed = 0
    let resumed = 0
    const inFlight = new Set<Promise<void>>()
    try {
      for (const [i, c] of chunks.entries()) {
        changed += c.bytes
        if (have.has(i)) {
          resumed += c.bytes
          continue
        }
        // The chunk's data is read into a page-aligned message buffer after the header's room, its CRC-32
        // taken, and sent from there: no copy of the data, no fresh allocation.
        const buf = this.#buffers.take()
        const p = (async () => {
          try {
            let at = HEADER_ROOM
            for (const r of c.ranges) {
              await this.#store.read(ref, r.start, r.end - r.start, { snapshot: id, into: buf.subarray(at) })
              at += r.end - r.start
            }
            const data = buf.subarray(HEADER_ROOM, at)
            const header: DiskGeoMessage = {
              kind: 'pages',
              ...where,
              plan,
              chunk: i,
              ranges: c.ranges,
              clears: c.clears,
              crc32: dataCrc(data),
            }
            await send(header, frameInPlace(buf, header, data.length) ?? [Buffer.from(data)])
          } finally {
            this.#buffers.give(buf)
          }
        })()
        inFlight.add(p)
        void p.finally(() => inFlight.delete(p)).catch(() => undefined)
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
      }
      await Promise.all(inFlight)
    } catch (err) {
      // The chunks still on their way land (or fail) before the round ends: the next round asks the
      // secondary what it holds and resumes from there.
      await Promise.allSettled(inFlight)
      throw err
    }
    const metadata = { ...target.metadata }
    const userSnapshot = metadata[GEO_MARKER] !== '1'
    delete metadata[GEO_MARKER]
    await send({
      kind: 'commit',
      ...where,
      plan,
      chunks: chunks.length,
      ...(userSnapshot ? { userSnapshot } : {}),
      sequenceNumber: target.sequenceNumber,
      metadata,
      content: target.content,
    })
    return { changed, resumed }
  }

  /** The diff as chunks of at most CHUNK_BYTES of data (a long range is split). */
  #chunks(ref: DiskRef, base: string | null, target: string): Chunk[] {
    const written: ByteRange[] = []
    const cleared: ByteRange[] = []
    if (base === null) {
      written.push(...this.#store.pageRanges(ref, { snapshot: target }))
    } else {
      let marker: string | undefined
      do {
        const d = this.#store.diff(ref, {
          from: base,
          to: target,
          ...(marker === undefined ? {} : { marker }),
        })
        written.push(...d.pageRanges)
        cleared.push(...d.clearRanges)
        marker = d.nextMarker
      } while (marker !== undefined)
    }
    const chunks: Chunk[] = []
    let cur: Chunk = { ranges: [], clears: [], bytes: 0 }
    const flush = () => {
      if (cur.ranges.length > 0 || cur.clears.length > 0) chunks.push(cur)
      cur = { ranges: [], clears: [], bytes: 0 }
    }
    for (const c of cleared) {
      if (cur.clears.length >= CHUNK_RANGES) flush()
      cur.clears.push(c)
    }
    for (const r of written) {
      let start = r.start
      while (start < r.end) {
        if (cur.bytes >= CHUNK_BYTES || cur.ranges.length >= CHUNK_RANGES) flush()
        const end = Math.min(r.end, start + (CHUNK_BYTES - cur.bytes))
        cur.ranges.push({ start, end })
        cur.bytes += end - start
        start = end
      }
    }
    flush()
    return chunks
  }
}
