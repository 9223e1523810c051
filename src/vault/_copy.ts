// Over ~600 lines: one copy pipeline (selection, resume, chunk transfer, re-encryption, pack read-back,
// manifest last) whose steps share the job's lock and checkpoint state.
// Copies of recovery points from one vault into another, whatever their backends: only the chunks the
// target lacks travel, chunks before the manifest (a target never holds a point with missing chunks),
// every chunk re-hashed when read and every pack read back and compared when written, resumable.
//
// Two modes, chosen by the keys:
// - `ciphertext`: both vaults unencrypted, or both encrypted with the same vault key (the same chunk
//   ids): chunk blobs are copied as they are, nonce and all. The same nonce then carries the same
//   plaintext in both vaults, never two different ones.
// - `reencrypt`: the keys differ (or one vault is unencrypted): each chunk is opened with the source's
//   key and sealed again by the target (its own id, a fresh random nonce), and the index pages are
//   rewritten with the target's ids.
//
// The engine takes a lock on both vaults: on the source it names the point as a base (prune and GC keep
// it while it is read), on the target it names the packs it writes (GC keeps them until the manifest
// names them). A copy cut short leaves its target lock; run again with the same lock id (`resume`) it
// finds its packs in the target's index and writes only what is still missing.
import { randomUUID, timingSafeEqual } from 'node:crypto'
import { open } from 'node:fs/promises'
import { CairnError } from '../util/index.js'
import { ChunkDamage, type ChunkKeys, ChunkKind } from './_chunk-codec.js'
import type { ChunkLocation } from './_chunk-index.js'
import type { LockBody, VaultCore } from './_core.js'
import {
  decodeLeaf,
  decodeNode,
  type Extent,
  encodeLeaf,
  encodeNode,
  levelSpan,
  markTree,
} from './_disk-tree.js'
import { forEachLimit } from './_for-each-limit.js'
import { PackWriter } from './_pack-writer.js'
import { RangeBatcher } from './_range-batcher.js'
import { encodeRecord } from './_record.js'
import { Slots } from './_slots.js'
import { WholePackCopier } from './_whole-packs.js'
import type { OperationOptions, RecoveryPoint, RecoveryPointDisk, VaultProgress } from './types.js'
import type { ObjectRange, VaultBackend } from './vault-backend.js'

/** How a copy moves chunks: blobs as they are (same key) or opened and sealed again (different keys). */
export type CopyMode = 'ciphertext' | 'reencrypt'

/** Which points to copy and how. */
export interface CopyOptions extends OperationOptions {
  /** Only these point ids (default every point of the source that matches the other filters). */
  points?: string[]
  /** Only points of this item (a VM's name, a file's item name). */
  item?: string
  /** Only points whose source is of this kind (`vm`, `disks`, `file`). */
  kind?: string
  /** Only points newer than the newest point of the same item on the target (a policy's copies). */
  onlyNewer?: boolean
  /** Only the points this accepts (a policy's copy rules: those they keep). */
  select?: (rp: RecoveryPoint) => boolean
  /**
   * The retention the copied point gets on the target (default: the source point's expiresAt and
   * retainUntil): a copy's retention may differ from the source's.
   */
  retention?: (rp: RecoveryPoint) => { expiresAt: string | null; retainUntil?: string | null }
  /** Read back every pack written and compare it with what was sent (default true). */
  verifyArrival?: boolean
  /** The copy's lock id on both vaults; a second run with the same id adopts the packs of the first. */
  lockId?: string
  /** Told after each point is committed on the target (a job saves it as its checkpoint). */
  onPoint?: (report: CopyReport) => void | Promise<void>
  /** Asked when aborted: true keeps the target lock (and so the packs written) for a later resume. */
  keepLockOnAbort?: () => boolean
  /**
   * The target is a replica of the source (geo-replication, docs/replication.md): the same vault on
   * another site, with the same id and key; points keep their retention.
   */
  replica?: boolean
}

/** One point a copy handled. */
export interface CopiedPoint {
  id: string
  item: string
  state: 'Copied' | 'AlreadyPresent' | 'DeletedOnTarget'
  /** Bytes read from the source (chunk blobs, index pages, manifest). */
  bytesRead: number
  /** Bytes written to the target (packs, manifest, lock records). */
  bytesWritten: number
  /** Chunks (data and index pages) the target lacked and received. */
  chunksCopied: number
  /** Chunks the target already held. */
  chunksPresent: number
  /** Bytes of new chunk plaintext the source point recorded (its disks' bytesNew). */
  bytesNewAtSource: number
}

/** What a copy did, point by point (also its checkpoint: a resumed copy starts from these counts). */
export interface CopyReport {
  mode: CopyMode
  sourceVault: string
  targetVault: string
  points: CopiedPoint[]
  bytesRead: number
  bytesWritten: number
  /** Bytes read back from the target to check what arrived. */
  bytesVerified: number
  chunksCopied: number
  chunksPresent: number
}

/** The mode two vaults' keys allow. */
export function copyMode(source: ChunkKeys | null, target: ChunkKeys | null): CopyMode {
  if (!source && !target) return 'ciphertext'
  if (!source || !target) return 'reencrypt'
  const same = timingSafeEqual(source.dataKey, target.dataKey) && timingSafeEqual(source.idKey, target.idKey)
  return same ? 'ciphertext' : 'reencrypt'
}

/** Counts what goes to and comes from a backend, and reads back the packs it writes. */
class CountedBackend {
  /** Read-back memory not in use (two packs may be read back at once). */
  readonly #scratch: Buffer[] = []
  bytesWritten = 0
  bytesRead = 0
  bytesVerified = 0
  constructor(
    readonly inner: VaultBackend,
    readonly verify: boolean,
  ) {}

  /**
   * Writes an object; a pack is read back and compared unless `readBack` is false. `fresh` as
   * VaultBackend.create's (a pack name just drawn at random).
   */
  async create(
    name: string,
    data: Uint8Array | readonly Uint8Array[],
    options: { fresh?: boolean; readBack?: boolean } = {},
  ): Promise<boolean> {
    const parts = Array.isArray(data) ? (data as readonly Uint8Array[]) : [data as Uint8Array]
    const size = parts.reduce((n, p) => n + p.length, 0)
    const ok = await this.inner.create(name, parts, options.fresh ? { fresh: true } : undefined)
    this.bytesWritten += size
    if ((options.readBack ?? this.verify) && name.startsWith('packs/')) {
      const back = await this.#readBack(name, parts, size)
      this.bytesVerified += back.length
      if (!back.same) {
        await this.inner.delete(name).catch(() => {})
        throw new CairnError(
          'VaultCorrupt',
          `Cannot copy: pack ${name} did not arrive intact at ${this.inner.location} (read back ${back.length} of ${size} bytes, or different bytes)`,
        )
      }
    }
    return ok
  }

  async put(name: string, data: Buffer): Promise<void> {
    await this.inner.put(name, data)
    this.bytesWritten += data.length
  }

  /** Reads a pack back and compares it with its parts (a local file piece by piece, in reused memory). */
  async #readBack(
    name: string,
    parts: readonly Uint8Array[],
    size: number,
  ): Promise<{ length: number; same: boolean }> {
    const path = this.inner.localPath?.(name)
    if (path === undefined) {
      const back = await this.inner.get(name)
      return { length: back.length, same: back.length === size && sameBytes(parts, back) }
    }
    const fh = await open(path, 'r')
    const scratch = this.#scratch.pop() ?? Buffer.allocUnsafeSlow(1024 * 1024)
    try {
      const length = (await fh.stat()).size
      if (length !== size) return { length, same: false }
      let at = 0
      for (const p of parts) {
        for (let o = 0; o < p.length; ) {
          const n = Math.min(scratch.length, p.length - o)
          const { bytesRead } = await fh.read(scratch, 0, n, at)
          if (bytesRead !== n || scratch.compare(p, o, o + n, 0, n) !== 0) return { length, same: false }
          o += n
          at += n
        }
      }
      return { length, same: at === length }
    } finally {
      this.#scratch.push(scratch)
      await fh.close()
    }
  }
}

/** True when the parts, end to end, are the bytes of `whole` (same length checked by the caller). */
function sameBytes(parts: readonly Uint8Array[], whole: Buffer): boolean {
  let at = 0
  for (const p of parts) {
    if (whole.compare(p, 0, p.length, at, at + p.length) !== 0) return false
    at += p.length
  }
  return at === whole.length
}

/** Leaves whose chunks a copy reads at once (their reads batch together on a remote source). */
const LEAVES_AT_ONCE = 4
/** Children of an index node walked at once. */
const CHILDREN_AT_ONCE = 8
/** Chunks of one leaf read at once. */
const CHUNKS_AT_ONCE = 16

/** Runs one copy from `src` to `dst`; answers what it did. */
export async function runCopy(
  src: VaultCore,
  dst: VaultCore,
  opts: CopyOptions & { resumeFrom?: CopyReport },
): Promise<CopyReport> {
  if (src.config.id === dst.config.id && !opts.replica)
    throw new CairnError('InvalidRequest', 'Cannot copy a vault into itself')
  if (opts.replica && src.config.id !== dst.config.id)
    throw new CairnError('ReplicationRefused', 'Cannot replicate into a vault of another id')
  const mode = copyMode(src.keys, dst.keys)
  const report: CopyReport = opts.resumeFrom
    ? { ...opts.resumeFrom, points: [...opts.resumeFrom.points] }
    : {
        mode,
        sourceVault: src.config.id,
        targetVault: dst.config.id,
        points: [],
        bytesRead: 0,
        bytesWritten: 0,
        bytesVerified: 0,
        chunksCopied: 0,
        chunksPresent: 0,
      }
  report.mode = mode
  const points = await selectPoints(src, dst, opts)
  const done = new Set(report.points.map((p) => p.id))
  const pending = points.filter((p) => !done.has(p.id))
  const meter = new Meter(opts.onProgress, pending)
  const lockId = opts.lockId ?? `copy-${randomUUID()}`
  const out = new CountedBackend(dst.backend, opts.verifyArrival !== false)
  const now = () => new Date().toISOString()
  // The source lock names the points to copy as bases: prune keeps them and GC their chunks meanwhile.
  const srcLock: LockBody = {
    id: lockId,
    startedAt: now(),
    updatedAt: now(),
    bases: pending.map((p) => p.id),
    packs: [],
  }
  // The target lock names every pack before it is written (an earlier run's packs stay named in it),
  // and as bases the points whose chunks count as present: GC keeps all of them until the lock goes.
  const earlier = (await dst.readLocks()).find((l) => l.id === lockId)
  const dstLock: LockBody = {
    id: lockId,
    startedAt: earlier?.startedAt ?? now(),
    updatedAt: now(),
    bases: await dst.recoveryPointIds(),
    packs: earlier?.packs ?? [],
  }
  let lockWrite = Promise.resolve()
  const touch = (...packs: string[]) => {
    dstLock.packs.push(...packs)
    dstLock.updatedAt = now()
    srcLock.updatedAt = dstLock.updatedAt
    const body = encodeRecord('LOCK', 1, { ...dstLock, packs: [...dstLock.packs] })
    lockWrite = lockWrite.then(() => out.put(`locks/${lockId}`, body))
    return lockWrite
  }
  const heartbeat = setInterval(() => {
    void touch().catch(() => {})
    void src.writeLock({ ...srcLock }).catch(() => {})
  }, 30_000)
  heartbeat.unref()
  let finished = false
  try {
    if (pending.length > 0) {
      await Promise.all([src.writeLock(srcLock), touch()])
    }
    // A replica's copy takes the missed points' packs whole and needs the source's index only for a
    // chunk it still lacks after them (loaded then, by the first read that misses).
    if (!(mode === 'ciphertext' && opts.replica)) await src.loadIndex()
    await dst.loadIndex()
    await dst.index.refresh()
    // What the target holds for sure: every chunk of its committed points (bases of the lock) and of
    // the packs the lock names.
    const safe = new Set<string>()
    const pages = new Set<string>()
    const store = dst.pageStore(undefined, 'Cannot copy')
    for (const id of dstLock.bases) {
      const rp = await dst.readManifest(id).catch(() => undefined)
      for (const d of rp?.disks ?? []) {
        const tree = { root: d.root ? Buffer.from(d.root, 'hex') : null, depth: d.depth }
        await markTree(store, tree, pages, safe)
      }
    }
    for (const p of pages) safe.add(p)
    const hex = new Set(safe)
    safe.clear()
    for (const k of hex) safe.add(Buffer.from(k, 'hex').toString('latin1'))
    for (const name of dstLock.packs)
      for (const e of dst.index.pack(name)?.entries ?? []) safe.add(e.id.toString('latin1'))
    // A source whose every read is a round trip (the paired site's) answers the reads of several
    // leaves in a few batched requests, a bounded window of them in flight.
    const batcher = src.backend.getRanges ? new RangeBatcher(batchReader(src)) : undefined
    const shared = {
      mode,
      opts,
      read: batcher
        ? async (range: ChunkRange) => ({ blob: await batcher.read(range), checked: true })
        : async (r: ChunkRange) => ({
            blob: await src.backend.getRange(r.name, r.offset, r.length),
            checked: false,
          }),
      leaves: new Slots(LEAVES_AT_ONCE),
      bringing: new Map<string, Promise<void>>(),
      safe,
      pages,
      complete: new Map<string, Buffer>(),
      ids: new Map<string, Buffer>(),
      paired: new Set<string>(),
    }
    // Two packs in flight: the next one fills while the last one is written and read back.
    const writer = new PackWriter(out as unknown as VaultBackend, dst.index, {
      target: dst.config.packSize,
      inFlight: 2,
      beforeWrite: (names) => touch(...names),
      listAhead: 4,
    })
    // A replica (the same vault on the paired site) takes the packs of a missed point as they are.
    const whole =
      mode === 'ciphertext' && opts.replica
        ? new WholePackCopier(src, dst, {
            held: (id) => safe.has(id.toString('latin1')) || writer.holds(id),
            lock: (names) => touch(...names),
            create: (name, data) => out.create(name, data, { readBack: false }),
            signal: opts.signal,
          })
        : undefined
    for (const rp of pending) {
      opts.signal?.throwIfAborted()
      const before = { written: out.bytesWritten, verified: out.bytesVerified }
      const result = await copyPoint(src, dst, rp, { ...shared, meter, writer, out, whole })
      result.bytesWritten = out.bytesWritten - before.written
      report.points.push(result)
      report.bytesRead += result.bytesRead
      report.bytesWritten += result.bytesWritten
      report.bytesVerified += out.bytesVerified - before.verified
      report.chunksCopied += result.chunksCopied
      report.chunksPresent += result.chunksPresent
      meter.pointDone(rp)
      await opts.onPoint?.(report)
    }
    finished = true
    meter.finish()
    return report
  } catch (err) {
    if (opts.signal?.aborted) throw new CairnError('Cancelled', 'The copy was cancelled')
    if (err instanceof ChunkDamage) throw new CairnError('VaultCorrupt', `Cannot copy: ${err.message}`)
    throw err
  } finally {
    clearInterval(heartbeat)
    await lockWrite.catch(() => {})
    await src.deleteLock(lockId).catch(() => {})
    // A copy cut short keeps its target lock while it is fresh: a later run with the same lock id
    // adopts its packs; once the lock is stale, GC reclaims them.
    if (finished || !(opts.signal?.aborted && opts.keepLockOnAbort?.()))
      await dst.deleteLock(lockId).catch(() => {})
  }
}

/** A chunk blob's place in a pack of the source. */
type ChunkRange = ObjectRange & { id: Buffer }

/**
 * Batched reads from a remote source: the blobs of a batch arrive side by side in one answer and are
 * checked (opened and re-hashed) together by one chunk worker, the answer's memory moving to it and
 * back; a damaged blob fails the batch with its name.
 */
function batchReader(src: VaultCore): (ranges: readonly ChunkRange[]) => Promise<Buffer[]> {
  const getRanges = src.backend.getRanges!.bind(src.backend)
  return async (ranges) => {
    const bufs = await getRanges(ranges.map(({ name, offset, length }) => ({ name, offset, length })))
    const first = bufs[0]
    if (!first) return bufs
    const base = first.byteOffset
    let whole: Buffer
    if (bufs.every((b) => b.buffer === first.buffer)) {
      const end = Math.max(...bufs.map((b) => b.byteOffset + b.length))
      whole = Buffer.from(first.buffer, base, end - base)
    } else whole = Buffer.concat(bufs)
    let at = 0
    const blobs = ranges.map((r, i) => {
      const b = bufs[i]!
      const offset = b.buffer === first.buffer && whole.buffer === first.buffer ? b.byteOffset - base : at
      at += b.length
      if (b.length !== r.length)
        throw new ChunkDamage(`chunk ${r.id.toString('hex').slice(0, 12)}… in ${r.name} is truncated`)
      return { offset, length: b.length, id: r.id }
    })
    try {
      whole = await src.pool.checkMany(whole, blobs)
    } catch (err) {
      if (err instanceof ChunkDamage && err.chunk !== undefined) {
        const r = ranges[err.chunk]!
        throw new ChunkDamage(
          `chunk ${r.id.toString('hex').slice(0, 12)}… in ${r.name} of the source is damaged: ${err.message}`,
        )
      }
      throw err
    }
    return blobs.map((b) => whole.subarray(b.offset, b.offset + b.length))
  }
}

/** The source's points to copy, oldest first (parents before their children). */
async function selectPoints(src: VaultCore, dst: VaultCore, opts: CopyOptions): Promise<RecoveryPoint[]> {
  const listed = await src.recoveryPointObjects()
  const ids = listed.map((o) => o.name.slice(3))
  if (opts.points) {
    const have = new Set(ids)
    const missing = opts.points.filter((p) => !have.has(p))
    if (missing.length > 0)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot copy: the source vault holds no recovery point ${missing.map((m) => `"${m}"`).join(', ')}`,
      )
  }
  const wanted = opts.points ? new Set(opts.points) : undefined
  const out: RecoveryPoint[] = []
  for (const o of listed) {
    const id = o.name.slice(3)
    if (wanted && !wanted.has(id)) continue
    const rp = await src.readManifest(id, o)
    if (opts.item !== undefined && rp.source.name !== opts.item) continue
    if (opts.kind !== undefined && rp.source.kind !== opts.kind) continue
    if (opts.select && !opts.select(rp)) continue
    out.push(rp)
  }
  out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
  if (!opts.onlyNewer) return out
  const newest = new Map<string, string>()
  for (const o of await dst.recoveryPointObjects()) {
    const rp = await dst.readManifest(o.name.slice(3), o)
    const t = newest.get(rp.source.name)
    if (t === undefined || rp.createdAt > t) newest.set(rp.source.name, rp.createdAt)
  }
  return out.filter((rp) => {
    const t = newest.get(rp.source.name)
    return t === undefined || rp.createdAt > t
  })
}

interface PointContext {
  mode: CopyMode
  opts: CopyOptions
  /** Reads a chunk blob of the source (batched and checked already on a remote source). */
  read: (range: ChunkRange) => Promise<{ blob: Buffer; checked: boolean }>
  /** Leaves being copied at once. */
  leaves: Slots
  /** Chunks (source id, latin1) being brought now. */
  bringing: Map<string, Promise<void>>
  meter: Meter
  writer: PackWriter
  out: CountedBackend
  /** A replica's copier of whole packs (undefined: every chunk travels alone). */
  whole: WholePackCopier | undefined
  /** Chunk ids (latin1) the target holds for sure. */
  safe: Set<string>
  /** Page ids (hex) of the target's committed points: their subtrees are complete. */
  pages: Set<string>
  /** Source page id (latin1) → the target's id of a page whose whole subtree the target holds. */
  complete: Map<string, Buffer>
  /** Re-encrypting: source chunk id (latin1) → target chunk id. */
  ids: Map<string, Buffer>
  /** Points whose trees were paired already (re-encrypting). */
  paired: Set<string>
  /** Chunk ids (latin1) of the packs this point's copy received whole (they count as copied). */
  arrived?: Set<string>
}

/** Copies one point: its chunks, then its manifest. */
async function copyPoint(
  src: VaultCore,
  dst: VaultCore,
  rp: RecoveryPoint,
  ctx: PointContext,
): Promise<CopiedPoint> {
  const result: CopiedPoint = {
    id: rp.id,
    item: rp.source.name,
    state: 'Copied',
    bytesRead: 0,
    bytesWritten: 0,
    chunksCopied: 0,
    chunksPresent: 0,
    bytesNewAtSource: rp.disks.reduce((n, d) => n + d.bytesNew, 0),
  }
  if ((await dst.recoveryPointIds()).includes(rp.id)) return { ...result, state: 'AlreadyPresent' }
  if ((await dst.backend.list(`deleted/${rp.id}`)).some((o) => o.name === `deleted/${rp.id}`))
    return { ...result, state: 'DeletedOnTarget' }
  const packsBefore = ctx.writer.packs.length
  const bytesBefore = ctx.writer.bytes
  // The point's own packs first, whole where the target lacks every chunk in them.
  const wholes = ctx.whole ? await ctx.whole.copy(rp.packs ?? []) : []
  const arrived = new Set<string>()
  for (const p of wholes) {
    for (const e of p.entries) arrived.add(e.id.toString('latin1'))
    result.bytesRead += p.size
  }
  for (const k of arrived) ctx.safe.add(k)
  const copier = new TreeCopier(src, dst, { ...ctx, arrived }, result)
  await copier.seed(rp)
  const disks: RecoveryPointDisk[] = []
  let offset = 0
  for (const d of rp.disks) {
    ctx.meter.disk(offset)
    const root = d.root ? await copier.subtree(Buffer.from(d.root, 'hex'), d.depth, 0) : null
    disks.push({ ...d, root: root ? root.toString('hex') : null })
    offset += d.size
  }
  await ctx.writer.flush()
  const retention = ctx.opts.retention?.(rp)
  const copy: RecoveryPoint = {
    ...rp,
    disks,
    packs: [...wholes.map((p) => p.name), ...ctx.writer.packs.slice(packsBefore)],
    bytesAdded: ctx.writer.bytes - bytesBefore + wholes.reduce((n, p) => n + p.size, 0),
  }
  if (retention) {
    copy.expiresAt = retention.expiresAt
    if (retention.retainUntil !== undefined) copy.retainUntil = retention.retainUntil
    else delete copy.retainUntil
  }
  // The manifest last, with create-if-absent: the commit point of the copy.
  const ok = await ctx.out.create(`rp/${rp.id}`, dst.encodeManifest(copy))
  if (!ok && !(await dst.recoveryPointIds()).includes(rp.id))
    throw new CairnError('Internal', `Cannot commit the copy of recovery point "${rp.id}"`)
  return result
}

/** Walks a point's index trees on the source and brings every chunk the target lacks. */
class TreeCopier {
  readonly #src: VaultCore
  readonly #dst: VaultCore
  readonly #ctx: PointContext
  readonly #result: CopiedPoint

  constructor(src: VaultCore, dst: VaultCore, ctx: PointContext, result: CopiedPoint) {
    this.#src = src
    this.#dst = dst
    this.#ctx = ctx
    this.#result = result
  }

  /**
   * Re-encrypting: pairs the source's trees of the point's parent (or of the item's newest point the
   * target holds) with the target's copy of it, page by page, to learn the target ids of what did not
   * change. Copying ciphertext needs nothing: the ids are the same.
   */
  async seed(rp: RecoveryPoint): Promise<void> {
    if (this.#ctx.mode === 'ciphertext') return
    const dstIds = await this.#dst.recoveryPointIds()
    const srcIds = new Set(await this.#src.recoveryPointIds())
    let base: string | undefined
    if (rp.parent && dstIds.includes(rp.parent) && srcIds.has(rp.parent)) base = rp.parent
    for (let i = dstIds.length - 1; i >= 0 && !base; i--) {
      const id = dstIds[i]!
      if (id >= rp.id || !srcIds.has(id)) continue
      const m = await this.#dst.readManifest(id).catch(() => undefined)
      if (m?.source.name === rp.source.name) base = id
    }
    if (!base || this.#ctx.paired.has(base)) return
    this.#ctx.paired.add(base)
    const [a, b] = [await this.#src.readManifest(base), await this.#dst.readManifest(base)]
    for (const d of a.disks) {
      const t = b.disks.find((x) => x.name === d.name)
      if (!d.root || !t?.root || t.depth !== d.depth) continue
      await this.#pair(Buffer.from(d.root, 'hex'), Buffer.from(t.root, 'hex'), d.depth, 0)
    }
  }

  /** Pairs a source subtree with the target's copy of it (same shape, other ids). */
  async #pair(s: Buffer, t: Buffer, level: number, start: number): Promise<void> {
    const sk = s.toString('latin1')
    if (this.#ctx.complete.has(sk)) return
    const sp = await this.#src.pageStore().load(s)
    const tp = await this.#dst.pageStore().load(t)
    if (level === 0) {
      const [se, te] = [decodeLeaf(sp, start), decodeLeaf(tp, start)]
      if (se.length !== te.length) return
      for (let i = 0; i < se.length; i++) this.#ctx.ids.set(se[i]!.id.toString('latin1'), te[i]!.id)
    } else {
      const [sc, tc] = [decodeNode(sp, level, start), decodeNode(tp, level, start)]
      if (sc.size !== tc.size) return
      for (const [i, child] of sc) {
        const other = tc.get(i)
        if (!other) return
        await this.#pair(child, other, level - 1, start + i * levelSpan(level - 1))
        if (!this.#ctx.complete.has(child.toString('latin1'))) return
      }
    }
    this.#ctx.complete.set(sk, t)
  }

  /** Copies a subtree (children before the page); answers the target's id of its page. */
  async subtree(id: Buffer, level: number, start: number): Promise<Buffer> {
    this.#ctx.opts.signal?.throwIfAborted()
    const known = this.#ctx.complete.get(id.toString('latin1'))
    if (known) return known
    if (this.#ctx.mode === 'ciphertext' && this.#ctx.pages.has(id.toString('hex'))) return id
    let targetId: Buffer
    if (level === 0) {
      await this.#ctx.leaves.take()
      try {
        targetId = await this.#leaf(id, start)
      } finally {
        this.#ctx.leaves.give()
      }
    } else {
      const { plain, blob } = await this.#read(id, true)
      const children = [...decodeNode(plain, level, start)].sort((a, b) => a[0] - b[0])
      // Siblings are walked side by side (in the target's tree they keep their places).
      const mapped: { index: number; id: Buffer }[] = children.map(([index]) => ({ index, id: EMPTY }))
      await forEachLimit(children, CHILDREN_AT_ONCE, async ([i, child], k) => {
        mapped[k]!.id = await this.subtree(child, level - 1, start + i * levelSpan(level - 1))
      })
      targetId =
        this.#ctx.mode === 'ciphertext'
          ? await this.#page(id, blob, plain.length)
          : await this.#sealPage(encodeNode(level, start, mapped))
    }
    this.#ctx.complete.set(id.toString('latin1'), targetId)
    return targetId
  }

  /** Copies a leaf: its chunks, then the page. */
  async #leaf(id: Buffer, start: number): Promise<Buffer> {
    const { plain, blob } = await this.#read(id, true)
    const extents = decodeLeaf(plain, start)
    const unique = [...new Map(extents.map((e) => [e.id.toString('latin1'), e.id])).values()]
    await forEachLimit(unique, CHUNKS_AT_ONCE, (c) => this.#chunk(c))
    let targetId: Buffer
    if (this.#ctx.mode === 'ciphertext') targetId = await this.#page(id, blob, plain.length)
    else {
      const ids = this.#ctx.ids
      const mapped: Extent[] = extents.map((e) => ({ ...e, id: ids.get(e.id.toString('latin1'))! }))
      targetId = await this.#sealPage(encodeLeaf(start, mapped))
    }
    this.#ctx.meter.leaf(start)
    return targetId
  }

  /** True when the target holds the chunk for sure (committed, or in a pack of this copy's lock). */
  #held(id: Buffer): boolean {
    return this.#ctx.safe.has(id.toString('latin1')) || this.#ctx.writer.holds(id)
  }

  /** Counts a chunk the target holds: copied when it came in a pack this point received whole. */
  #present(id: Buffer): void {
    if (this.#ctx.arrived?.delete(id.toString('latin1'))) this.#result.chunksCopied++
    else this.#result.chunksPresent++
  }

  /** Brings one data chunk once, even when two leaves copied side by side both name it. */
  async #chunk(id: Buffer): Promise<void> {
    const k = id.toString('latin1')
    const going = this.#ctx.bringing.get(k)
    if (going) {
      await going
      this.#result.chunksPresent++
      return
    }
    const p = this.#bring(id)
    this.#ctx.bringing.set(k, p)
    try {
      await p
    } finally {
      this.#ctx.bringing.delete(k)
    }
  }

  /** Brings one data chunk (and, re-encrypting, learns its target id). */
  async #bring(id: Buffer): Promise<void> {
    if (this.#ctx.mode === 'ciphertext') {
      if (this.#held(id)) {
        this.#present(id)
        return
      }
      const { blob, loc } = await this.#read(id, false)
      await this.#ctx.writer.add(id, blob, loc.rawLength, ChunkKind.data)
      this.#result.chunksCopied++
      return
    }
    const k = id.toString('latin1')
    const known = this.#ctx.ids.get(k)
    if (known && this.#held(known)) {
      this.#result.chunksPresent++
      return
    }
    const { plain } = await this.#read(id, true)
    const sealed = await this.#dst.pool.seal(plain, ChunkKind.data)
    this.#ctx.ids.set(k, sealed.id)
    if (this.#held(sealed.id)) {
      this.#result.chunksPresent++
      return
    }
    await this.#ctx.writer.add(sealed.id, sealed.parts, plain.length, ChunkKind.data)
    this.#result.chunksCopied++
  }

  /** Brings an index page as it is (ciphertext mode). */
  async #page(id: Buffer, blob: Buffer, rawLength: number): Promise<Buffer> {
    if (this.#held(id)) this.#present(id)
    else {
      await this.#ctx.writer.add(id, blob, rawLength, ChunkKind.tree)
      this.#result.chunksCopied++
    }
    return id
  }

  /** Seals a rewritten index page with the target's key and brings it. */
  async #sealPage(page: Buffer): Promise<Buffer> {
    const sealed = await this.#dst.pool.seal(page, ChunkKind.tree)
    if (this.#held(sealed.id)) this.#result.chunksPresent++
    else {
      await this.#ctx.writer.add(sealed.id, sealed.parts, page.length, ChunkKind.tree)
      this.#result.chunksCopied++
    }
    return sealed.id
  }

  /** Reads a chunk blob from the source and checks it (re-hashed); `open` also answers its plaintext. */
  async #read(id: Buffer, open: boolean): Promise<{ blob: Buffer; plain: Buffer; loc: ChunkLocation }> {
    const src = this.#src
    // An index page in a pack that arrived whole is read on the target: it need not travel twice.
    const here = this.#dst.index.get(id)
    if (open && here && this.#ctx.whole?.written.has(here.pack)) {
      const blob = await this.#dst.backend.getRange(here.pack, here.offset, here.length)
      const { plain } = await this.#dst.pool.open(Buffer.from(blob), id, { rehash: true })
      return { blob, plain, loc: here }
    }
    for (let attempt = 0; ; attempt++) {
      const loc = src.index.get(id)
      if (!loc) {
        if (attempt === 0) {
          await src.index.refresh()
          continue
        }
        throw new CairnError(
          'VaultObjectMissing',
          `Cannot copy: chunk ${id.toString('hex').slice(0, 12)}… is missing from the source vault`,
        )
      }
      let blob: Buffer
      let checked: boolean
      try {
        ;({ blob, checked } = await this.#ctx.read({
          name: loc.pack,
          offset: loc.offset,
          length: loc.length,
          id,
        }))
      } catch (err) {
        // A concurrent GC may have repacked the chunk: look again once.
        if (err instanceof CairnError && err.code === 'VaultObjectMissing' && attempt === 0) {
          await src.index.refresh()
          continue
        }
        throw err
      }
      this.#result.bytesRead += blob.length
      if (blob.length !== loc.length)
        throw new ChunkDamage(`chunk ${id.toString('hex').slice(0, 12)}… in ${loc.pack} is truncated`)
      if (checked && !open) return { blob, plain: EMPTY, loc }
      // The worker takes the copy it is given: the blob itself may still go to the target as it is.
      let plain: Buffer
      try {
        plain = (await src.pool.open(Buffer.from(blob), id, { rehash: true })).plain
      } catch (err) {
        if (err instanceof ChunkDamage)
          throw new ChunkDamage(
            `chunk ${id.toString('hex').slice(0, 12)}… in ${loc.pack} of the source is damaged: ${err.message}`,
          )
        throw err
      }
      return { blob, plain: open ? plain : EMPTY, loc }
    }
  }
}

const EMPTY = Buffer.alloc(0)

/** Progress of a copy: bytes of the disks' leaves walked, across the points to copy. */
class Meter {
  readonly #on: ((p: VaultProgress) => void) | undefined
  readonly #total: number
  readonly #started = Date.now()
  #done = 0
  #pointBase = 0
  #diskBase = 0
  #last = 0

  constructor(on: ((p: VaultProgress) => void) | undefined, points: RecoveryPoint[]) {
    this.#on = on
    this.#total = points.reduce((n, p) => n + p.disks.reduce((m, d) => m + d.size, 0), 0)
  }

  /** The disk walked next starts this many bytes into the point. */
  disk(offset: number): void {
    this.#diskBase = offset
  }

  leaf(start: number): void {
    this.#done = Math.max(this.#done, this.#pointBase + this.#diskBase + start)
    this.#emit(false)
  }

  pointDone(rp: RecoveryPoint): void {
    this.#pointBase += rp.disks.reduce((n, d) => n + d.size, 0)
    this.#done = this.#pointBase
    this.#emit(true)
  }

  finish(): void {
    this.#emit(true)
  }

  #emit(force: boolean): void {
    if (!this.#on) return
    const t = Date.now()
    if (!force && t - this.#last < 200) return
    this.#last = t
    const secs = Math.max(0.001, (t - this.#started) / 1000)
    const rate = this.#done / secs
    this.#on({
      phase: 'Copy',
      bytesDone: Math.min(this.#done, this.#total),
      bytesTotal: this.#total,
      bytesStored: 0,
      rate,
      etaMs: rate > 0 ? ((this.#total - this.#done) / rate) * 1000 : null,
    })
  }
}
