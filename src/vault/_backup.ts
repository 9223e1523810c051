// Over ~600 lines on purpose: one backup, from planning each disk against its previous point to the
// committed manifest, with the checkpoints a resume continues from; the stages hand each other the
// plan, the pack writer and the checkpoint tracker, and read best in order in one file.
import { randomBytes } from 'node:crypto'
import { CairnError } from '../util/index.js'
import {
  type BackupCheckpoint,
  type BuildStats,
  CheckpointTracker,
  checkpointPages,
} from './_backup-checkpoint.js'
import { ChunkKind } from './_chunk-codec.js'
import type { PackInfo } from './_chunk-index.js'
import type { VaultCore } from './_core.js'
import {
  type Extent,
  LEAF_SPAN,
  leafAt,
  mergeExtents,
  type PageStore,
  RangeSet,
  subtractExtents,
  treeDepth,
  updateTree,
} from './_disk-tree.js'
import { forEachLimit } from './_for-each-limit.js'
import { release } from './_memory.js'
import { newPackName } from './_pack.js'
import { PackWriter } from './_pack-writer.js'
import { DiskDigests, digestKey, loadDiskDigests, saveDiskDigests } from './_page-digests.js'
import type {
  BackupSource,
  ByteRange,
  Consistency,
  OperationOptions,
  RecoveryPoint,
  RecoveryPointDisk,
} from './types.js'
import { isObjectStore, OBJECT_STORE_UPLOADS } from './vault-backend.js'

/** Granularity of incremental changes: a changed run is widened to whole 4 KiB pages. */
export const CHANGE_ALIGN = 4096

/** Options of Vault.backup. */
export interface BackupOptions extends OperationOptions {
  sources: BackupSource[]
  /** What is backed up, recorded in the manifest. */
  item: { kind: string; name: string; config?: Record<string, unknown> }
  consistency?: Consistency
  /** Recovery point to build on: sources with `changes` are relative to it; others are compared by checksum. */
  base?: string
  /**
   * Without a base: a recovery point whose data a full backup compares with by checksum, so unchanged
   * data is referenced, not stored again (every byte is still read; no change list is trusted). Default
   * the item's latest recovery point; null compares with nothing. Kept by prune and GC like a base.
   */
  reference?: string | null
  expiresAt?: Date | null
  /** Until when the retention that applies keeps the point (see RecoveryPoint.retainUntil); default its expiry. */
  retainUntil?: Date | null
  /** Disks backed up at once (default 2). */
  parallelDisks?: number
  /**
   * The new point's id (default a new one); must have the form of `newRecoveryPointId` and be unused.
   * The protection service gives a VM point's id so that both tiers name the point the same way.
   */
  id?: string
  /**
   * The last checkpoint of an earlier run of this backup, cut short (the service died): its committed
   * work is kept and only the rest is read. The sources must read the same snapshots as then. Without
   * its lock, or with a pack or page of it gone, the backup starts over under the same id.
   */
  resume?: BackupCheckpoint
  /** Receives the state to resume from each time a pack is written (the caller keeps the latest). */
  onCheckpoint?: (checkpoint: BackupCheckpoint) => void
  /** With `resume`: told where the backup goes on from (bytes already read; 0 when it starts over). */
  onResume?: (bytesDone: number) => void
  /**
   * Asked when the backup was aborted: true keeps its lock (so GC keeps its packs and prune its base)
   * for a later `resume` from its last checkpoint; default false (the lock goes).
   */
  keepLockOnAbort?: () => boolean
}

const ZERO = Buffer.alloc(1024 * 1024)

function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - o)
    if (!b.subarray(o, o + n).equals(n === ZERO.length ? ZERO : ZERO.subarray(0, n))) return false
  }
  return true
}

/** A new, time-sortable recovery point id: 20261122T195200123Z-3f2a. */
export function newRecoveryPointId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(2).toString('hex')}`
}

/** The form of every recovery point id (`newRecoveryPointId`). */
export const RECOVERY_POINT_ID = /^\d{8}T\d{9}Z-[0-9a-f]{4}$/

/** Runs one backup: every source into one new recovery point; the manifest is written last. */
export async function runBackup(core: VaultCore, opts: BackupOptions): Promise<RecoveryPoint> {
  const started = Date.now()
  const signal = opts.signal
  const names = new Set<string>()
  for (const s of opts.sources) {
    if (names.has(s.name))
      throw new CairnError('InvalidRequest', `Cannot back up: two disks are named "${s.name}"`)
    names.add(s.name)
  }
  const resume = opts.resume
  if (resume) {
    if (!RECOVERY_POINT_ID.test(resume.point))
      throw new CairnError(
        'InvalidRequest',
        `Cannot resume a backup: "${resume.point}" is not a recovery point id`,
      )
    // The manifest may have been written just before the service died: then the backup is done.
    if ((await core.recoveryPointIds()).includes(resume.point)) {
      opts.onResume?.(0)
      await core.deleteLock(resume.point).catch(() => {})
      return core.readManifest(resume.point)
    }
  } else if (opts.id !== undefined) {
    if (!RECOVERY_POINT_ID.test(opts.id))
      throw new CairnError('InvalidRequest', `Cannot back up: "${opts.id}" is not a recovery point id`)
    if ((await core.recoveryPointIds()).includes(opts.id))
      throw new CairnError('InvalidRequest', `Cannot back up: recovery point "${opts.id}" exists`)
  }
  const id = resume?.point ?? opts.id ?? newRecoveryPointId()
  const parent = resume ? (resume.base ?? undefined) : opts.base
  // What the chunks are compared with: the base, or for a full backup the reference (by checksum only).
  const against = resume
    ? (resume.against ?? undefined)
    : (opts.base ??
      (opts.reference === undefined
        ? await latestPoint(core, opts.item.name)
        : (opts.reference ?? undefined)))
  // A resumed backup keeps the packs its earlier run wrote (still named in its lock): their chunks are
  // not written again, and its committed subtrees are not read again when every pack and page is there.
  const earlier = resume ? await earlierRun(core, resume) : { packs: [], usable: false }
  const remote = isObjectStore(core.backend)
  const inFlight = remote ? OBJECT_STORE_UPLOADS : 1
  // The names of the first packs go into the first lock write (see PackWriter's listAhead).
  const listAhead = 2 * inFlight
  const firstPacks = Array.from({ length: listAhead }, () => newPackName())
  const lock = {
    id,
    startedAt: resume?.startedAt ?? new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    bases: against ? [against] : [],
    packs: [...earlier.packs.map((p) => p.name), ...firstPacks],
  }
  // The lock goes first: from here on prune keeps the base and GC keeps this backup's packs.
  await core.writeLock(lock)
  let lockWrite = Promise.resolve()
  const touchLock = (...packs: string[]) => {
    lock.packs.push(...packs)
    lock.updatedAt = new Date().toISOString()
    lockWrite = lockWrite.then(() => core.writeLock({ ...lock, packs: [...lock.packs] }))
    return lockWrite
  }
  let committed = false
  const heartbeat = setInterval(() => void touchLock().catch(() => {}), 30_000)
  heartbeat.unref()
  try {
    const base = against ? await core.readManifest(against) : undefined
    await core.loadIndex()
    const tracker = new CheckpointTracker(
      { point: id, startedAt: lock.startedAt, base: parent ?? null, against: against ?? null },
      earlier.usable ? resume : undefined,
    )
    const progress = new ProgressMeter(opts.onProgress)
    const writer: PackWriter = new PackWriter(core.backend, core.index, {
      target: remote ? uploadTargets(core.config.packSize, progress) : core.config.packSize,
      inFlight,
      beforeWrite: (names) => touchLock(...names),
      listAhead,
      listed: firstPacks,
      afterWrite: () =>
        opts.onCheckpoint?.(tracker.commit(writer.written, earlier.packs.length + writer.packs.length)),
    })
    writer.adopt(earlier.packs.flatMap((p) => p.entries.map((e) => e.id)))
    if (resume) opts.onResume?.(tracker.resumedBytes)
    const storePage = async (page: Buffer): Promise<Buffer> => {
      const { id: pid, parts } = await core.pool.seal(page, ChunkKind.tree)
      if (!writer.holds(pid) && !(base && core.index.has(pid) && baseHasPage(pid))) {
        await writer.add(pid, parts, page.length, ChunkKind.tree)
      }
      return pid
    }
    // Tree pages of the base that are reused by id are already in the vault and protected by the lock.
    const basePages = new Set<string>()
    const baseHasPage = (pid: Buffer) => basePages.has(pid.toString('latin1'))
    const pages = core.pageStore(storePage, 'Cannot back up')
    const tracking: PageStore = {
      load: async (pid) => {
        basePages.add(pid.toString('latin1'))
        return pages.load(pid)
      },
      store: pages.store,
    }

    const plans = await Promise.all(opts.sources.map((s) => planDisk(s, base, parent !== undefined)))
    progress.total = plans.reduce((n, p) => n + p.toRead, 0)
    progress.done = tracker.resumedBytes

    const disks: RecoveryPointDisk[] = new Array(plans.length)
    // A resumed run does not read the subtrees its earlier run committed: it cannot make digests. Nor
    // can a backup whose cache cannot keep a digest key (digests only ever spare reads).
    const cacheDir = core.cache && !(resume && earlier.usable) ? core.cache.dir : undefined
    const key = cacheDir && (await digestKey(cacheDir, core.keys?.idKey ?? null).catch(() => undefined))
    const digests =
      cacheDir && key
        ? { dir: cacheDir, key, item: opts.item.name, against, made: new Map<string, DiskDigests>() }
        : undefined
    try {
      await forEachLimit(plans, opts.parallelDisks ?? 2, async (plan, i) => {
        disks[i] = await backupDisk(core, plan, {
          writer,
          pages: tracking,
          progress,
          signal,
          tracker,
          ...(digests ? { digests } : {}),
        })
      })
      signal?.throwIfAborted()
    } finally {
      // Whatever happened, no pack write may still run once this backup returns.
      await writer.settle()
    }
    await writer.flush()
    if (against) {
      // Prune honours the lock, but one that listed locks just before ours could still have deleted it.
      try {
        await core.readManifest(against)
      } catch (err) {
        if (err instanceof CairnError && err.code === 'RecoveryPointNotFound') {
          throw new CairnError(
            'BackupBaseMissing',
            `Cannot commit the backup of "${opts.item.name}": the recovery point "${against}" it reuses data of was deleted while it ran; run it again`,
          )
        }
        throw err
      }
    }
    const now = new Date()
    const rp: RecoveryPoint = {
      id,
      source: opts.item,
      consistency: opts.consistency ?? 'CrashConsistent',
      createdAt: lock.startedAt,
      completedAt: now.toISOString(),
      expiresAt: opts.expiresAt ? opts.expiresAt.toISOString() : null,
      ...(opts.retainUntil !== undefined ? { retainUntil: opts.retainUntil?.toISOString() ?? null } : {}),
      parent: parent ?? null,
      disks,
      packs: [...earlier.packs.map((p) => p.name), ...writer.packs],
      bytesAdded: earlier.packs.reduce((n, p) => n + p.size, 0) + writer.bytes,
      durationMs: now.getTime() - started,
    }
    await core.writeManifest(rp)
    committed = true
    for (const [disk, d] of digests?.made ?? [])
      await saveDiskDigests(digests!.dir, opts.item.name, disk, id, d, digests!.key)
    progress.finish()
    return rp
  } catch (err) {
    if (signal?.aborted) throw new CairnError('Cancelled', `The backup of "${opts.item.name}" was cancelled`)
    throw err
  } finally {
    clearInterval(heartbeat)
    await lockWrite.catch(() => {})
    // A committed point needs no lock; an aborted backup keeps it only to be resumed.
    if (committed || !(signal?.aborted && opts.keepLockOnAbort?.())) await core.deleteLock(id)
  }
}

/**
 * The packs an earlier run of a resumed backup wrote (those named in its lock that exist), and whether
 * its checkpoint can be trusted: its lock is there, and so are its first `packs` packs and every page.
 */
async function earlierRun(
  core: VaultCore,
  c: BackupCheckpoint,
): Promise<{ packs: PackInfo[]; usable: boolean }> {
  const lock = (await core.readLocks()).find((l) => l.id === c.point)
  await core.loadIndex()
  await core.index.refresh()
  if (!lock) return { packs: [], usable: false }
  const packs = lock.packs.flatMap((name) => core.index.pack(name) ?? [])
  const usable =
    lock.packs.length >= c.packs &&
    lock.packs.slice(0, c.packs).every((name) => core.index.pack(name) !== undefined) &&
    checkpointPages(c).every((pid) => core.index.has(pid))
  return { packs, usable }
}

interface DiskPlan {
  source: BackupSource
  mode: RecoveryPointDisk['mode']
  /** Data is compared by checksum with `base` (checksum backups, and full ones with a reference). */
  compare?: boolean
  base?: { root: Buffer | null; depth: number }
  /** Ranges whose new content is read (incremental: changed, widened; else: data ranges by chunk). */
  read: RangeSet
  /** Ranges whose base content is dropped (incremental only). */
  cut: RangeSet
  toRead: number
}

/** The newest committed recovery point of an item (damaged manifests skipped), if any. */
async function latestPoint(core: VaultCore, item: string): Promise<string | undefined> {
  const listed = await core.recoveryPointObjects()
  for (let i = listed.length - 1; i >= 0; i--) {
    const id = listed[i]!.name.slice(3)
    try {
      if ((await core.readManifest(id, listed[i])).source.name === item) return id
    } catch (err) {
      if (!(err instanceof CairnError) || err.code === 'VaultKeyRequired') throw err
    }
  }
  return undefined
}

/**
 * How one disk is backed up. `isBase`: `base` is the point this one builds on (its change list is
 * trusted, and the disk's mode says checksum); otherwise it is a full backup's reference, compared with
 * by checksum only.
 */
async function planDisk(
  source: BackupSource,
  base: RecoveryPoint | undefined,
  isBase: boolean,
): Promise<DiskPlan> {
  const size = source.size
  const clip = (r: ByteRange) => ({ start: Math.max(0, r.start), end: Math.min(size, r.end) })
  const bd = base?.disks.find((d) => d.name === source.name)
  const baseTree = bd ? { root: bd.root ? Buffer.from(bd.root, 'hex') : null, depth: bd.depth } : undefined
  if (isBase && source.changes && bd && baseTree && bd.size === size && treeDepth(size) === bd.depth) {
    const widen = (r: ByteRange) => ({
      start: Math.floor(r.start / CHANGE_ALIGN) * CHANGE_ALIGN,
      end: Math.ceil(r.end / CHANGE_ALIGN) * CHANGE_ALIGN,
    })
    const read = new RangeSet(source.changes.changed.map((r) => clip(widen(r))))
    const cut = new RangeSet([...read.ranges, ...source.changes.cleared.map(clip)])
    return { source, mode: 'incremental', base: baseTree, read, cut, toRead: read.bytes }
  }
  const read = new RangeSet((await source.ranges()).map(clip))
  const plan: DiskPlan = {
    source,
    mode: bd && isBase ? 'checksum' : 'full',
    compare: baseTree !== undefined,
    read,
    cut: read,
    toRead: read.bytes,
  }
  if (baseTree) plan.base = baseTree
  return plan
}

/** A checksum backup's view of the base leaf it replaces: its extents, their chunk ids, chunks read. */
interface BaseLeaf {
  extents: Extent[]
  known: Set<string>
  /** Base chunks read for page comparisons, shared by the leaf's pieces (an incremental's chunk serves many). */
  chunks: Map<string, Promise<Buffer>>
  /**
   * Pieces not finished yet that lie over each chunk's extents: at zero the chunk's read is dropped
   * (pieces run four at once and finish out of order, so a later piece's end says nothing).
   */
  refs: Map<string, number>
  /** Starts of the pieces running now (four at once: one that started earlier may need its base later). */
  running: Set<number>
}

/**
 * Where an object-store backup closes its next pack (`cut` packs closed before it). A pack is uploaded
 * only once closed, so with full-size packs the first upload starts a pack's worth of stored data into
 * the backup and the last one (up to a whole pack) only after the last read, while the store's side
 * waits and then works alone. Packs therefore start at a quarter of `full` (8 MiB of 32) and double up
 * to it, and near the end a pack closes once it holds about as much as is still to come (the stored
 * part of the input not yet read, at the ratio so far), so the packs shrink back to a quarter and the
 * last upload is short. This costs a few packs more per backup (6 against 3 for a 128 MiB image stored
 * in 64 MiB; 3–4 more for any larger one).
 */
function uploadTarget(full: number, cut: number, progress: ProgressMeter): number {
  const least = full / 4
  const ramp = Math.min(full, least * 2 ** Math.min(cut, 2))
  const left = progress.total - progress.done
  if (progress.stored === 0 || left <= 0) return ramp
  const toCome = left * (progress.stored / progress.done)
  return Math.max(least, Math.min(ramp, toCome))
}

/**
 * uploadTarget for the packs of one backup, never above an earlier one's once the ramp is over: what
 * is still to come only falls, but its estimate counts the bytes read and not yet sealed as stored at
 * nothing (reads run ahead of the workers), so with uploads that start at once a later pack could come
 * out larger than the one before it (4, 8, 8, 5, 7 MiB under load).
 */
function uploadTargets(full: number, progress: ProgressMeter): (cut: number) => number {
  let lowest = Number.POSITIVE_INFINITY
  return (cut) => {
    const target = uploadTarget(full, cut, progress)
    if (cut < 2) return target
    lowest = Math.min(lowest, target)
    return lowest
  }
}

/** The chunks (latin1 ids) of the extents that lie over `[r.start, r.end)`. */
function chunksUnder(extents: readonly Extent[], r: ByteRange): Set<string> {
  const out = new Set<string>()
  for (const e of extents)
    if (e.start < r.end && e.start + e.length > r.start) out.add(e.id.toString('latin1'))
  return out
}

interface DiskContext {
  writer: PackWriter
  pages: PageStore
  progress: ProgressMeter
  signal: AbortSignal | undefined
  tracker: CheckpointTracker
  /** Where page digests are kept (object-store vaults with a local cache), and those this backup makes. */
  digests?: {
    dir: string
    /** The cache's digest key (_page-digests.ts). */
    key: Buffer
    item: string
    against: string | undefined
    made: Map<string, DiskDigests>
  }
}

async function backupDisk(core: VaultCore, plan: DiskPlan, ctx: DiskContext): Promise<RecoveryPointDisk> {
  const { source } = plan
  const chunkSize = core.config.chunkSize
  // Page digests (see _page-digests.ts): made for the new point when the backup reads the whole disk,
  // and the base's used when kept.
  const keep = ctx.digests
  const digests =
    keep && plan.mode !== 'incremental' ? new DiskDigests(source.size, { key: keep.key }) : undefined
  if (digests) keep!.made.set(source.name, digests)
  const baseDigests =
    keep?.against && plan.compare
      ? await loadDiskDigests(keep.dir, keep.item, source.name, keep.against, source.size, keep.key)
      : undefined

  /**
   * Has a worker read runs of the source's file and store the non-zero ones as one chunk; their extents.
   * Used for the scattered runs of incrementals, where a read's cost on the main thread (~40 µs through
   * the thread pool, against ~5 µs read where the bytes are sealed) outweighed the work. Whole chunks of
   * full backups are still read on the main thread: there the pool's reads overlap the workers' sealing,
   * and measured alternating runs were slower with the workers reading (same CPU, more system time).
   */
  const storeRead = async (fd: number, runs: ByteRange[], stats: BuildStats): Promise<Extent[]> => {
    const { sealed, kept } = await core.pool.readSeal(fd, runs, ChunkKind.data)
    const scanned = runs.reduce((n, r) => n + r.end - r.start, 0)
    stats.bytesScanned += scanned
    ctx.progress.add(scanned, 0)
    if (!sealed) return []
    const extents: Extent[] = []
    let at = 0
    for (const i of kept) {
      const r = runs[i]!
      extents.push({ start: r.start, length: r.end - r.start, chunkOffset: at, id: sealed.id })
      at += r.end - r.start
    }
    if (ctx.writer.holds(sealed.id)) {
      stats.chunksReused++
    } else {
      stats.chunksNew++
      stats.bytesNew += at
      ctx.progress.add(0, sealed.length)
      await ctx.writer.add(sealed.id, sealed.parts, at, ChunkKind.data)
    }
    return extents
  }

  /**
   * Stores one piece; returns its extents (none when it is all zeros). In a checksum backup a piece
   * whose chunk is new is compared page by page with the base's bytes there: when at most half of it
   * changed, the base's extents stay and only the changed pages are stored (small changes stay small
   * without a change list too).
   */
  const piece = async (
    start: number,
    end: number,
    base: BaseLeaf | null,
    stats: BuildStats,
  ): Promise<Extent[]> => {
    ctx.signal?.throwIfAborted()
    let data = await source.read(start, end - start)
    if (data.length !== end - start) {
      throw new CairnError(
        'Internal',
        `Cannot back up disk "${source.name}": a read at ${start} returned ${data.length} of ${end - start} bytes`,
      )
    }
    stats.bytesScanned += data.length
    ctx.progress.add(data.length, 0)
    if (isZero(data)) return []
    if (base) {
      // The data moves to a worker to be hashed and comes back.
      const hashed = await core.pool.hashMoving(
        data,
        digests !== undefined || baseDigests !== undefined ? keep!.key : undefined,
      )
      const { id, pages } = hashed
      data = hashed.data
      if (pages) digests?.set(start, pages)
      if (base.known.has(id.toString('latin1')) || ctx.writer.holds(id)) {
        stats.chunksReused++
        return [{ start, length: data.length, chunkOffset: 0, id }]
      }
      const patched = await patchBase(start, data, base, stats, pages)
      if (patched) return patched
    }
    const length = data.length
    // The buffer moves to the worker: no copy, and no use of `data` after this line.
    const {
      id,
      parts,
      length: stored,
      pages,
    } = await core.pool.seal(
      data,
      ChunkKind.data,
      true,
      digests !== undefined && !base ? { pagesKey: keep!.key } : {},
    )
    if (pages) digests?.set(start, pages)
    if (ctx.writer.holds(id)) {
      stats.chunksReused++
    } else {
      stats.chunksNew++
      stats.bytesNew += length
      ctx.progress.add(0, stored)
      await ctx.writer.add(id, parts, length, ChunkKind.data)
    }
    return [{ start, length, chunkOffset: 0, id }]
  }

  /**
   * The extents of a piece as the base's with the changed 4 KiB pages stored anew, or null when the
   * base held nothing there or more than half of the piece changed (then the piece is stored whole).
   */
  const patchBase = async (
    start: number,
    data: Buffer,
    base: BaseLeaf,
    stats: BuildStats,
    pages?: Buffer,
  ): Promise<Extent[] | null> => {
    const end = start + data.length
    const under = base.extents
      .filter((e) => e.start < end && e.start + e.length > start)
      .map((e) => {
        const s = Math.max(start, e.start)
        const t = Math.min(end, e.start + e.length)
        return { start: s, length: t - s, chunkOffset: e.chunkOffset + (s - e.start), id: e.id }
      })
    if (under.length === 0) return null
    // With the base's page digests (kept by the backup that made it) the pages are compared by digest
    // and nothing of the base is read; otherwise the base's bytes are read back and compared.
    let old: Buffer | undefined
    if (!pages || !baseDigests) {
      old = Buffer.alloc(data.length)
      if (under.some((e) => !base.chunks.has(e.id.toString('latin1')))) readBase(base, start)
      for (const e of under) {
        const k = e.id.toString('latin1')
        const plain = base.chunks.get(k)
        if (!plain) throw new Error(`the base chunk at offset ${e.start} was not read`)
        const bytes = await plain
        bytes.copy(old, e.start - start, e.chunkOffset, e.chunkOffset + e.length)
      }
    }
    const runs: ByteRange[] = []
    let changed = 0
    for (let o = 0; o < data.length; o += CHANGE_ALIGN) {
      const n = Math.min(CHANGE_ALIGN, data.length - o)
      if (
        old ? data.compare(old, o, o + n, o, o + n) === 0 : baseDigests!.same(start, pages!, o / CHANGE_ALIGN)
      )
        continue
      const last = runs[runs.length - 1]
      if (last && last.end === start + o) last.end += n
      else runs.push({ start: start + o, end: start + o + n })
      changed += n
    }
    if (changed * 2 > data.length) return null
    const stored = await sealRuns(
      runs.map((run) => ({ run, data: data.subarray(run.start - start, run.end - start) })),
      stats,
    )
    // Both are spent (the changed pages were copied into the sealed chunk): free them now, not at a collection.
    release(old ? [data, old] : [data])
    return mergeExtents(subtractExtents(under, runs), stored)
  }

  /**
   * Starts reading the base chunks of the rest of the leaf (from the piece, or from an earlier one
   * still running beside it) that are not read yet, together (see VaultCore.readChunks); each lands in
   * `base.chunks` as a promise. A leaf's chunks were written side by side (four at once, so not quite
   * in order), so the leaf's base comes in one ranged read per pack it lies in: scattered changes cost
   * one request per 16 MiB leaf, not one per chunk; an isolated change reads up to a leaf of its base.
   */
  const readBase = (base: BaseLeaf, pieceStart: number): void => {
    const start = Math.min(pieceStart, ...base.running)
    const ids: Buffer[] = []
    const at: number[] = []
    const keys: string[] = []
    for (const e of base.extents) {
      const k = e.id.toString('latin1')
      if (e.start + e.length <= start) continue
      if (base.chunks.has(k) || keys.includes(k) || !base.refs.get(k)) continue
      ids.push(e.id)
      at.push(Math.max(start, e.start))
      keys.push(k)
    }
    const reading = core.readChunks(
      ids,
      (i) => `Cannot back up disk "${source.name}": the base's data at offset ${at[i]}`,
    )
    keys.forEach((k, i) => {
      const read = reading.then((plains) => plains[i]!)
      // Awaited only by the pieces that need it; a failure is thrown there.
      read.catch(() => {})
      base.chunks.set(k, read)
    })
  }

  /** Pieces of `[start, end)` to read: runs cut at chunk boundaries (full: whole aligned chunks). */
  const piecesOf = (start: number, end: number): ByteRange[] => {
    const out: ByteRange[] = []
    if (plan.mode === 'incremental') {
      for (const r of plan.read.clip(start, end)) {
        for (let s = r.start; s < r.end; ) {
          const e = Math.min(r.end, (Math.floor(s / chunkSize) + 1) * chunkSize)
          out.push({ start: s, end: e })
          s = e
        }
      }
    } else {
      for (let s = start; s < end; s += chunkSize) {
        const e = Math.min(end, s + chunkSize)
        if (plan.read.intersects(s, e)) out.push({ start: s, end: e })
      }
    }
    return out
  }

  /**
   * Stores the changed runs of an incremental together: read side by side into one buffer of at most
   * a chunk, sealed as one chunk, each run an extent at its offset in it. Scattered 4 KiB writes cost
   * one chunk (one id, one seal, one index entry) per bundle instead of one per page.
   */
  const bundle = async (runs: ByteRange[], stats: BuildStats): Promise<Extent[]> => {
    ctx.signal?.throwIfAborted()
    if (source.fd !== undefined) return storeRead(source.fd, runs, stats)
    const reads = await Promise.all(runs.map((r) => source.read(r.start, r.end - r.start)))
    const kept: { run: ByteRange; data: Buffer }[] = []
    reads.forEach((data, i) => {
      const run = runs[i]!
      if (data.length !== run.end - run.start) {
        throw new CairnError(
          'Internal',
          `Cannot back up disk "${source.name}": a read at ${run.start} returned ${data.length} of ${run.end - run.start} bytes`,
        )
      }
      stats.bytesScanned += data.length
      ctx.progress.add(data.length, 0)
      kept.push({ run, data })
    })
    return sealRuns(kept, stats)
  }

  /** Seals runs side by side as one chunk (all-zero runs left out: they read as holes); their extents. */
  const sealRuns = async (runs: { run: ByteRange; data: Buffer }[], stats: BuildStats): Promise<Extent[]> => {
    const kept = runs.filter((k) => !isZero(k.data))
    if (kept.length === 0) return []
    const total = kept.reduce((n, k) => n + k.data.length, 0)
    const joined = Buffer.allocUnsafeSlow(total)
    const offsets: number[] = []
    let at = 0
    for (const k of kept) {
      k.data.copy(joined, at)
      offsets.push(at)
      at += k.data.length
    }
    // The buffer moves to the worker: no copy, and no use of `joined` after this line.
    const { id, parts, length: stored } = await core.pool.seal(joined, ChunkKind.data, true)
    if (ctx.writer.holds(id)) {
      stats.chunksReused++
    } else {
      stats.chunksNew++
      stats.bytesNew += total
      ctx.progress.add(0, stored)
      await ctx.writer.add(id, parts, total, ChunkKind.data)
    }
    return kept.map((k, i) => ({ start: k.run.start, length: k.data.length, chunkOffset: offsets[i]!, id }))
  }

  const leaf = async (start: number, end: number, baseExtents: Extent[]): Promise<Extent[]> => {
    // What the leaf reads and stores is counted per leaf: a checkpoint carries it for the leaves it keeps.
    const stats = ctx.tracker.leafStats(source.name, Math.floor(start / LEAF_SPAN))
    const pieces = piecesOf(start, end)
    if (plan.mode === 'incremental') {
      const bundles: ByteRange[][] = []
      let current: ByteRange[] = []
      let bytes = 0
      for (const p of pieces) {
        if (current.length > 0 && bytes + (p.end - p.start) > chunkSize) {
          bundles.push(current)
          current = []
          bytes = 0
        }
        current.push(p)
        bytes += p.end - p.start
      }
      if (current.length > 0) bundles.push(current)
      const made: Extent[][] = new Array(bundles.length).fill([])
      await forEachLimit(bundles, 4, async (b, i) => {
        made[i] = await bundle(b, stats)
      })
      return mergeExtents(subtractExtents(baseExtents, plan.cut.clip(start, end)), made.flat())
    }
    let base: BaseLeaf | null = null
    if (plan.compare && plan.base) {
      const extents = await leafAt(ctx.pages, plan.base, start)
      const refs = new Map<string, number>()
      for (const p of pieces) for (const k of chunksUnder(extents, p)) refs.set(k, (refs.get(k) ?? 0) + 1)
      base = {
        extents,
        known: new Set(extents.map((e) => e.id.toString('latin1'))),
        chunks: new Map(),
        refs,
        running: new Set(),
      }
    }
    const made: Extent[][] = new Array(pieces.length).fill([])
    // Four 1 MiB chunks in flight keep two workers busy.
    await forEachLimit(pieces, 4, async (p, i) => {
      base?.running.add(p.start)
      try {
        made[i] = await piece(p.start, p.end, base, stats)
      } finally {
        base?.running.delete(p.start)
        // A base chunk no unfinished piece lies over is dropped at once (a full backup's serves one piece).
        for (const k of base ? chunksUnder(base.extents, p) : []) {
          const left = (base!.refs.get(k) ?? 1) - 1
          base!.refs.set(k, left)
          if (left === 0) base!.chunks.delete(k)
        }
      }
    })
    return made.flat()
  }

  const update = {
    size: source.size,
    affected: (s: number, e: number) => plan.cut.intersects(s, e),
    leaf,
    // Full and checksum backups: one leaf at a time (its four chunks in flight keep the workers busy;
    // a second leaf only doubled the buffers held). Incremental leaves are small and latency-bound.
    concurrency: plan.mode === 'incremental' ? 4 : 1,
    ...(plan.mode === 'incremental' && plan.base ? { base: plan.base } : {}),
    built: ctx.tracker.built(source.name),
    onBuilt: (level: number, index: number, id: Buffer | null) =>
      ctx.tracker.onBuilt(source.name, level, index, id, ctx.writer.added),
  }
  const tree = await updateTree(ctx.pages, update)
  const disk: RecoveryPointDisk = {
    name: source.name,
    size: source.size,
    mode: plan.mode,
    root: tree.root ? tree.root.toString('hex') : null,
    depth: tree.depth,
    ...ctx.tracker.diskStats(source.name, tree.depth),
  }
  if (source.lun !== undefined) disk.lun = source.lun
  if (source.snapshot !== undefined) disk.snapshot = source.snapshot
  return disk
}

/** Turns byte counts into throttled progress events with rate and ETA. */
export class ProgressMeter {
  readonly #on: OperationOptions['onProgress']
  readonly #started = Date.now()
  #last = 0
  total = 0
  done = 0
  stored = 0
  phase = 'backup'

  constructor(on: OperationOptions['onProgress']) {
    this.#on = on
  }

  add(done: number, stored: number): void {
    this.done += done
    this.stored += stored
    const now = Date.now()
    if (now - this.#last >= 200) {
      this.#last = now
      this.#emit()
    }
  }

  finish(): void {
    this.#emit()
  }

  #emit(): void {
    if (!this.#on) return
    const secs = Math.max(0.001, (Date.now() - this.#started) / 1000)
    const rate = this.done / secs
    this.#on({
      phase: this.phase,
      bytesDone: this.done,
      bytesTotal: this.total,
      bytesStored: this.stored,
      rate: Math.round(rate),
      etaMs: rate > 0 ? Math.round(((this.total - this.done) / rate) * 1000) : null,
    })
  }
}
