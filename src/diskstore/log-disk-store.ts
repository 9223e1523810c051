// LogDiskStore: the disk store over an append-only data log, per-disk persistent radix trees of
// extents, and checkpoints. See docs/diskstore.md for the design and docs/formats.md for the bytes.
//
// Every mutation validates, appends one log record (page cache), applies the change to the in-memory
// state in the same tick, then awaits a shared fsync. Replaying the log after the newest valid
// checkpoint rebuilds the same state, because applying a record uses only what the record holds.

import { randomBytes } from 'node:crypto'
import { constants, mkdirSync, rmSync, statSync } from 'node:fs'
import { type FileHandle, open as openFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CairnError, type ErrorCode, type Logger, silentLogger } from '../util/index.js'
import {
  type CheckpointData,
  listCheckpoints,
  NodeWriter,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
} from './_checkpoint.js'
import {
  diffTrees,
  editTree,
  forEachExtent,
  forEachLeaf,
  type Leaf,
  type Node,
  type Root,
} from './_extent-tree.js'
import { checkLease, type LeaseState, leaseInfo, leaseTransition, NO_LEASE } from './_lease.js'
import { checkAccountName, checkContainerName, checkDiskName, refText } from './_names.js'
import { dataRanges, forEachDataRun, rawSize } from './_raw-file.js'
import {
  type BackgroundRecord,
  type LogPosition,
  type LogRecord,
  RECORD_HEADER_SIZE,
  RecordType,
  SEGMENT_HEADER_SIZE,
  SegmentLog,
  syncDir,
} from './_segment-log.js'
import { SpaceGuard } from './_space-guard.js'
import { WriteTable } from './_write-table.js'
import {
  type AccountInfo,
  type ByteRange,
  type ContainerInfo,
  type ContentProperties,
  type CopyInfo,
  type CreateDiskOptions,
  type DiskDiff,
  type DiskInfo,
  type DiskRef,
  type DiskStore,
  type LeaseAction,
  type LeaseResult,
  type Listing,
  type ListOptions,
  type LongOperationOptions,
  MAX_DISK_SIZE,
  MAX_WRITE_SIZE,
  PAGE_SIZE,
  type SpaceReport,
  type StoreHealth,
  type StoreUsage,
  type WriteConditions,
  type WriteResult,
} from './types.js'

/** Options of LogDiskStore.open. */
export interface LogDiskStoreOptions {
  logger?: Logger
  /** Milliseconds since the epoch (tests pass a fake clock for leases). */
  clock?: () => number
  /** Bytes per segment file before the log rolls to a new one (default 256 MiB). */
  segmentSize?: number
  /** Interval of background compaction in ms; 0 turns it off (default 60 s). */
  compactIntervalMs?: number
  /** Log bytes after which a checkpoint is written (default 512 MiB). */
  checkpointBytes?: number
  /**
   * Repair after a power failure: when a segment other than the last is damaged, cut the log there
   * instead of refusing to open, and keep what is cut off in a `damaged-<time>` folder of the store.
   * A power failure can leave a later segment on disk while an earlier one lost its unsynced tail;
   * nothing after such a tear was ever acknowledged as durable. Damage of another kind (a bad disk)
   * looks the same, so this is never done without being asked.
   */
  repairLog?: boolean
  /**
   * Bytes of the reserve file kept in the store folder for deletes and compaction when the file
   * system is full (default 0: none; `cairn serve` keeps 16 MiB). See docs/diskstore.md, "Disk full".
   */
  reserveBytes?: number
  /** Free bytes under which a warning is logged (default: 5 % of the file system, at least 4 × the reserve). */
  lowSpaceBytes?: number
}

/** Whether an append grows the store (refused when full) or frees space (may take the reserve). */
type Room = 'grow' | 'free'

/** Metadata records that free space (or are needed to: breaking a lease before a delete). */
const FREEING: ReadonlySet<string> = new Set([
  'deleteDisk',
  'deleteSnapshot',
  'deleteContainer',
  'deleteAccount',
  'lease',
])

const MAX_READ = 1024 ** 3
const IMPORT_BLOCK = 4 * 1024 * 1024
const EXPORT_BLOCK = 4 * 1024 * 1024
const WRITE_META = 28
const CLEAR_META = 24
const RELOCATE_META = 16
/** A segment is compacted when at most this share of it is still live. */
const COMPACT_LIVE_RATIO = 0.5

/** The JSON part of a checkpoint. */
interface CheckpointJson {
  log: LogPosition
  nextWriteId: number
  nextDiskId: number
  changes: number
  lastSnapshot: { ms: number; sub: number }
  /** Disks being imported, with their account and container. */
  pending: (Omit<DiskState, 'root' | 'owner' | 'snapshots'> & { root: number })[]
  accounts: (Omit<AccountState, 'containers'> & {
    containers: (Omit<ContainerState, 'disks' | 'account'> & {
      disks: (Omit<DiskState, 'root' | 'owner' | 'account' | 'container' | 'snapshots'> & {
        root: number
        snapshots: (Omit<SnapshotState, 'root'> & { root: number })[]
      })[]
    })[]
  })[]
}

interface AccountState {
  name: string
  region: string
  redundancy: string
  keys: [string, string]
  createdOn: number
  containers: Map<string, ContainerState>
}

interface ContainerState {
  account: string
  name: string
  metadata: Record<string, string>
  etag: string
  lastModified: number
  createdOn: number
  disks: Map<string, DiskState>
}

/** What a disk and each of its snapshots hold. */
interface Version {
  root: Root
  used: number
  size: number
  sequenceNumber: number
  metadata: Record<string, string>
  content: ContentProperties
  etag: string
  lastModified: number
  createdOn: number
}

interface SnapshotState extends Version {
  id: string
}

interface DiskState extends Version {
  id: number
  account: string
  container: string
  name: string
  /** Token of the tree nodes this disk may change in place. */
  owner: number
  lease: LeaseState
  snapshots: SnapshotState[]
  copy?: CopyInfo
  incrementalCopy: boolean
  /** Being imported: not yet in its container. */
  pending?: boolean
}

/** Metadata records, as stored (JSON) in META log records. */
type MetaOp =
  | {
      op: 'createAccount'
      name: string
      region: string
      redundancy: string
      keys: [string, string]
      t: number
    }
  | { op: 'deleteAccount'; name: string; t: number }
  | { op: 'setAccountKey'; name: string; which: 1 | 2; key: string; t: number }
  | { op: 'createContainer'; account: string; name: string; metadata: Record<string, string>; t: number }
  | { op: 'setContainerMetadata'; account: string; name: string; metadata: Record<string, string>; t: number }
  | { op: 'deleteContainer'; account: string; name: string; t: number }
  | {
      op: 'createDisk'
      id: number
      account: string
      container: string
      name: string
      size: number
      sequenceNumber: number
      metadata: Record<string, string>
      content: ContentProperties
      incrementalCopy: boolean
      /** An import in progress: invisible until publishDisk. */
      pending?: boolean
      t: number
    }
  | { op: 'publishDisk'; id: number; t: number }
  | {
      op: 'setDisk'
      id: number
      size?: number
      sequenceNumber?: number
      metadata?: Record<string, string>
      content?: ContentProperties
      copy?: CopyInfo
      t: number
    }
  | { op: 'deleteDisk'; id: number; snapshots: 'none' | 'include' | 'only'; t: number }
  | { op: 'lease'; id: number; lease: LeaseState; t: number }
  | { op: 'snapshot'; ids: number[]; snapshot: string; metadata?: Record<string, string>; t: number }
  | { op: 'deleteSnapshot'; id: number; snapshot: string; t: number }
  | { op: 'promote'; id: number; snapshot: string; t: number }
  | {
      op: 'copy'
      id: number
      account: string
      container: string
      name: string
      source: number
      sourceSnapshot?: string
      metadata?: Record<string, string>
      t: number
    }

const ETAG_PREFIX = '"0x8DE'

/** Pads a snapshot id from ms and a sub-millisecond counter: 2026-11-22T19:37:17.1234567Z. */
function snapshotIdOf(ms: number, sub: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(sub).padStart(4, '0')}Z`
}

function parseSnapshotId(id: string): { ms: number; sub: number } | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})(\d{4})Z$/.exec(id)
  if (!m) return undefined
  const ms = Date.parse(`${m[1]}Z`)
  return Number.isNaN(ms) ? undefined : { ms, sub: Number(m[2]) }
}

const iso = (ms: number) => new Date(ms).toISOString()

const isStoreFull = (err: unknown): err is CairnError => err instanceof CairnError && err.code === 'StoreFull'

const isPageAligned = (n: number) => Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE === 0

/** The disk store over a data log and persistent extent trees. */
export class LogDiskStore implements DiskStore {
  readonly #dir: string
  readonly #logger: Logger
  readonly #clock: () => number
  readonly #log: SegmentLog
  readonly #accounts = new Map<string, AccountState>()
  readonly #disks = new Map<number, DiskState>()
  readonly #writes = new WriteTable()
  #nextWriteId = 1
  #nextDiskId = 1
  #nextOwner = 1
  #changes = 0
  #lastSnapshot = { ms: 0, sub: 0 }
  #closed = false
  #closing = false
  #isoMs = Number.NaN
  #isoText = ''
  readonly #segmentSize: number
  readonly #checkpointBytes: number
  readonly #repairLog: boolean
  #checkpointNo = 0
  #lastCheckpointBytes = 0
  #checkpointPending = false
  #appendedSinceCheckpoint = 0
  #appendedSinceCompaction = 0
  /** Set when a delete or clear made garbage since the last compaction looked (appends say little then). */
  #freedSinceCompaction = false
  /** False until compaction looked at this session's garbage once (it is on disk from earlier sessions). */
  #garbageMeasured = false
  #compacting: Promise<{ reclaimedBytes: number }> | undefined
  #timer: NodeJS.Timeout | undefined
  #firstLook: NodeJS.Timeout | undefined
  readonly #space: SpaceGuard
  /** Counts reloads after a failed append: long operations that span one give up. */
  #epoch = 0
  /** The reload after a failed background append, while it runs. */
  #rewinding: Promise<void> | undefined
  #lastFailure: ErrorCode = 'Internal'
  /** Set when a reload failed: the store then refuses everything. */
  #broken: CairnError | undefined
  /** Roots an export is reading: their data stays live. */
  readonly #pins: Root[] = []

  private constructor(dir: string, log: SegmentLog, options: LogDiskStoreOptions) {
    this.#dir = dir
    this.#log = log
    this.#logger = options.logger ?? silentLogger
    this.#clock = options.clock ?? Date.now
    this.#segmentSize = options.segmentSize ?? 256 * 1024 * 1024
    this.#checkpointBytes = options.checkpointBytes ?? 512 * 1024 * 1024
    this.#repairLog = options.repairLog === true
    const spaceOptions: ConstructorParameters<typeof SpaceGuard>[1] = {
      logger: this.#logger,
      reserveBytes: options.reserveBytes ?? 0,
    }
    if (options.lowSpaceBytes !== undefined) spaceOptions.lowBytes = options.lowSpaceBytes
    this.#space = new SpaceGuard(dir, spaceOptions)
  }

  /** Opens (or creates) the store in `dir`: loads the newest checkpoint and replays the log after it. */
  static async open(dir: string, options: LogDiskStoreOptions = {}): Promise<LogDiskStore> {
    mkdirSync(dir, { recursive: true })
    const segmentSize = options.segmentSize ?? 256 * 1024 * 1024
    if (!(Number.isSafeInteger(segmentSize) && segmentSize >= 64 * 1024 && segmentSize <= 2 ** 31)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot open the disk store: a segment size is 64 KiB to 2 GiB, not ${segmentSize}`,
      )
    }
    const log = SegmentLog.open(dir, segmentSize)
    const store = new LogDiskStore(dir, log, options)
    try {
      const from = store.#loadCheckpoint()
      store.#replay(from)
      store.#space.start()
      log.onFailure = (err) => store.#onLogFailure(err)
      await store.#dropPendingImports()
    } catch (err) {
      store.#space.close()
      await log.close()
      throw err
    }
    store.#startTimer(options.compactIntervalMs ?? 60_000)
    return store
  }

  /** Imports cut short by a crash leave invisible disks: delete them. */
  async #dropPendingImports(): Promise<void> {
    for (const d of [...this.#disks.values()]) {
      if (!d.pending) continue
      this.#logger.warn('disk store drops an unfinished import', { disk: d.name })
      await this.#commit({ op: 'deleteDisk', id: d.id, snapshots: 'include', t: this.#now() })
    }
  }

  /**
   * Automatic compaction is decided by the garbage on disk, not by what this session appended: the
   * first look comes soon after open (garbage left by earlier sessions counts), later ones when
   * something may have made garbage since (appends, deletes, clears) or the disk is short of space.
   */
  #startTimer(interval: number): void {
    if (interval <= 0) return
    this.#timer = setInterval(() => this.#maybeCompact(), interval)
    this.#timer.unref()
    this.#firstLook = setTimeout(() => this.#maybeCompact(), Math.min(interval, 1000))
    this.#firstLook.unref()
  }

  #maybeCompact(): void {
    if (this.#closed || this.#closing || this.#compacting !== undefined || this.#rewinding !== undefined)
      return
    const changed =
      !this.#garbageMeasured ||
      this.#freedSinceCompaction ||
      this.#appendedSinceCompaction >= this.#segmentSize / 8 ||
      this.#space.full ||
      this.#space.low
    if (!changed) return
    this.#compacting = this.#compactNow({}, true).finally(() => {
      this.#compacting = undefined
    })
    this.#compacting.catch((err) =>
      this.#logger.error('disk store compaction failed', { error: String(err) }),
    )
  }

  /** After a delete while space is short: look for garbage to reclaim now rather than at the next tick. */
  #compactSoon(): void {
    if (this.#timer === undefined) return
    setImmediate(() => this.#maybeCompact())
  }

  // ---------------------------------------------------------------- disk full

  /** Free space and disk-full state of the store's file system. */
  health(): StoreHealth {
    this.#open()
    return this.#space.health()
  }

  /**
   * A background append failed: once every write on its way has settled, the log is cut at the
   * failed record and the state reloaded from the checkpoint and the log, which is exactly what a
   * restart would find. So a failed write is never visible, before or after a restart.
   */
  #onLogFailure(err: CairnError): void {
    this.#lastFailure = err.code
    if (err.code === 'StoreFull') this.#space.failed(err)
    else this.#logger.error('disk store append failed; the log is cut at that record', { error: err.message })
    this.#rewinding ??= this.#rewind().finally(() => {
      this.#rewinding = undefined
    })
    this.#rewinding.catch(() => {})
  }

  async #rewind(): Promise<void> {
    await this.#log.settle()
    this.#epoch++
    const cut = this.#log.rewind()
    if (cut === undefined) return
    try {
      this.#accounts.clear()
      this.#disks.clear()
      this.#writes.clear()
      this.#nextWriteId = 1
      this.#nextDiskId = 1
      this.#changes = 0
      this.#lastSnapshot = { ms: 0, sub: 0 }
      this.#replay(this.#loadCheckpoint())
    } catch (err) {
      this.#broken = new CairnError(
        'StoreCorrupt',
        `Cannot use the disk store: reloading it after a failed append failed: ${(err as Error).message}`,
        { cause: err },
      )
      this.#logger.error('disk store reload failed; restart the service', { error: String(err) })
      throw this.#broken
    }
    this.#logger.debug('disk store dropped the records from a failed append on', { ...cut })
  }

  /** Waits for the log to be durable; a failure is reported once the store has rewound past it. */
  async #durable(): Promise<void> {
    try {
      await this.#log.durable()
    } catch (err) {
      await this.#rewinding?.catch(() => {})
      throw err
    }
  }

  /** Like #durable, for one background record's write. */
  async #written(rec: BackgroundRecord): Promise<void> {
    try {
      await rec.written
    } catch (err) {
      await this.#rewinding?.catch(() => {})
      throw err
    }
  }

  /** Throws the failed append's code when the store reloaded since `epoch` (a long operation must stop). */
  #sameEpoch(epoch: number, what: string): void {
    if (this.#epoch !== epoch) {
      throw new CairnError(
        this.#lastFailure,
        `Cannot ${what}: an append to the disk store failed meanwhile and the store reloaded; run it again`,
      )
    }
  }

  // ---------------------------------------------------------------- checkpoints

  /** Loads the newest valid checkpoint into memory and returns the log position replay starts from. */
  #loadCheckpoint(): LogPosition {
    const segments = new Set(this.#log.segments())
    for (const n of listCheckpoints(this.#dir)) {
      let data: CheckpointData
      try {
        data = readCheckpoint(this.#dir, n)
      } catch (err) {
        this.#logger.warn('disk store checkpoint is damaged; trying an older one', {
          checkpoint: n,
          error: String(err),
        })
        continue
      }
      const missing = data.writes.find(([, pieces]) => pieces.some((p) => !segments.has(p.segment)))
      const start = (data.json as CheckpointJson).log
      // Replay must begin in the checkpoint's segment; if it is gone but later ones exist, records were lost.
      const startGone = !segments.has(start.segment) && [...segments].some((n) => n > start.segment)
      if (missing !== undefined || startGone) {
        this.#logger.warn('disk store checkpoint refers to a removed segment; trying an older one', {
          checkpoint: n,
        })
        continue
      }
      this.#restore(data)
      this.#checkpointNo = n
      return (data.json as CheckpointJson).log
    }
    const first = this.#log.segments()[0]
    if (first !== undefined && first !== 1) {
      throw new CairnError(
        'StoreCorrupt',
        `Cannot open the disk store in ${this.#dir}: no checkpoint is readable and the log no longer starts at segment 1`,
      )
    }
    return { segment: 0, offset: 0 }
  }

  #restore(data: CheckpointData): void {
    const j = data.json as CheckpointJson
    const root = (id: number): Root => {
      if (id === -1) return undefined
      const node = data.nodes[id]
      if (node === undefined || node instanceof Float64Array) {
        throw new CairnError(
          'StoreCorrupt',
          `Cannot open the disk store: checkpoint root ${id} is not an inner node`,
        )
      }
      return node
    }
    this.#nextWriteId = j.nextWriteId
    this.#nextDiskId = j.nextDiskId
    this.#changes = j.changes
    this.#lastSnapshot = j.lastSnapshot
    for (const [id, pieces] of data.writes) this.#writes.replace(id, pieces)
    for (const d of j.pending) {
      this.#disks.set(d.id, { ...d, root: root(d.root), owner: this.#nextOwner++, snapshots: [] })
    }
    for (const a of j.accounts) {
      const acc: AccountState = { ...a, containers: new Map() }
      this.#accounts.set(a.name, acc)
      for (const c of a.containers) {
        const cont: ContainerState = { ...c, account: a.name, disks: new Map() }
        acc.containers.set(c.name, cont)
        for (const d of c.disks) {
          const disk: DiskState = {
            ...d,
            account: a.name,
            container: c.name,
            root: root(d.root),
            owner: this.#nextOwner++,
            snapshots: d.snapshots.map((sn) => ({ ...sn, root: root(sn.root) })),
          }
          cont.disks.set(d.name, disk)
          this.#disks.set(d.id, disk)
        }
      }
    }
  }

  /** Writes a checkpoint of the whole state (after making the log durable) and prunes old ones. */
  #checkpoint(): void {
    this.#log.syncNow()
    const nodes = new NodeWriter()
    const json: CheckpointJson = {
      log: this.#log.end(),
      nextWriteId: this.#nextWriteId,
      nextDiskId: this.#nextDiskId,
      changes: this.#changes,
      lastSnapshot: this.#lastSnapshot,
      pending: [...this.#disks.values()]
        .filter((d) => d.pending)
        .map((d) => {
          const { root, owner: _owner, snapshots: _s, ...rest } = d
          return { ...rest, root: nodes.id(root) }
        }),
      accounts: [...this.#accounts.values()].map((a) => ({
        name: a.name,
        region: a.region,
        redundancy: a.redundancy,
        keys: a.keys,
        createdOn: a.createdOn,
        containers: [...a.containers.values()].map((c) => ({
          name: c.name,
          metadata: c.metadata,
          etag: c.etag,
          lastModified: c.lastModified,
          createdOn: c.createdOn,
          disks: [...c.disks.values()].map((d) => {
            const { root, owner: _owner, account: _a, container: _c, snapshots, ...rest } = d
            return {
              ...rest,
              root: nodes.id(root),
              snapshots: snapshots.map((sn) => ({ ...sn, root: nodes.id(sn.root) })),
            }
          }),
        })),
      })),
    }
    this.#space.makeRoom(this.#lastCheckpointBytes + 1024 * 1024)
    let bytes: number
    try {
      bytes = writeCheckpoint(this.#dir, this.#checkpointNo + 1, json, this.#writes, nodes)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err
      const full = new CairnError(
        'StoreFull',
        `Cannot write a disk store checkpoint: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
      this.#space.failed(full)
      throw full
    }
    this.#checkpointNo++
    this.#lastCheckpointBytes = bytes
    this.#space.noteCheckpoint(bytes)
    pruneCheckpoints(this.#dir, 2)
    this.#appendedSinceCheckpoint = 0
    this.#logger.debug('disk store checkpoint written', { checkpoint: this.#checkpointNo, bytes })
  }

  /**
   * Appends a record, counting bytes towards the next checkpoint. Growth is refused while the file
   * system is full; an append that frees space may take the reserve (and is tried again once then).
   */
  #append(type: number, meta: Uint8Array, data: Uint8Array | undefined, room: Room, what: string): LogRecord {
    const bytes = RECORD_HEADER_SIZE + meta.length + (data?.length ?? 0)
    if (room === 'grow') this.#space.admit(bytes, what)
    else this.#space.makeRoom(bytes)
    let rec: LogRecord
    try {
      rec = this.#log.append(type, meta, data)
    } catch (err) {
      if (!isStoreFull(err)) throw err
      this.#space.failed(err)
      // (Not while the log is stopped by a failed background write: that error is not about room.)
      if (room === 'grow' || this.#log.failure !== undefined || !this.#space.releaseReserve()) throw err
      rec = this.#log.append(type, meta, data)
    }
    this.#appended(rec)
    return rec
  }

  /**
   * Appends a WRITE record whose bytes are written on the thread pool (see SegmentLog.append); with
   * `direct` (a write acknowledged only once durable) its data bypasses the page cache.
   */
  #appendInBackground(meta: Uint8Array, data: Uint8Array, direct: boolean, what: string): BackgroundRecord {
    this.#space.admit(RECORD_HEADER_SIZE + meta.length + data.length, what)
    let rec: BackgroundRecord
    try {
      rec = this.#log.append(RecordType.write, meta, data, { background: true, direct })
    } catch (err) {
      if (isStoreFull(err)) this.#space.failed(err)
      throw err
    }
    this.#appended(rec)
    return rec
  }

  #appended(rec: LogRecord): void {
    const bytes = rec.end - rec.offset
    this.#appendedSinceCheckpoint += bytes
    this.#appendedSinceCompaction += bytes
    if (this.#appendedSinceCheckpoint >= this.#checkpointBytes && !this.#checkpointPending) {
      this.#checkpointPending = true
      setImmediate(() => {
        this.#autoCheckpoint().finally(() => {
          this.#checkpointPending = false
        })
      })
    }
  }

  /** A checkpoint after enough log: first an fsync off the event loop, so the one inside is short. */
  async #autoCheckpoint(): Promise<void> {
    try {
      await this.#durable()
      if (this.#closed || this.#closing || this.#compacting !== undefined || this.#rewinding !== undefined)
        return
      this.#checkpoint()
    } catch (err) {
      this.#logger.error('disk store checkpoint failed', { error: String(err) })
    }
  }

  /** The folder of the store. */
  get dir(): string {
    return this.#dir
  }

  // ---------------------------------------------------------------- log and replay

  #replay(from: { segment: number; offset: number }): void {
    const it = this.#log.records(from)
    let count = 0
    for (;;) {
      const r = it.next()
      if (r.done) {
        const stop = r.value
        const end = this.#log.end()
        // A last segment without a valid header (a kill while it was being created) is cut too, even
        // when it is empty: appends would otherwise go into it and be lost at the next open.
        if (stop.segment !== end.segment || stop.offset !== end.offset || stop.offset < SEGMENT_HEADER_SIZE) {
          // Only the last segment can end in a torn record (a crash mid-append); damage anywhere else
          // would lose acknowledged records, so refuse to open instead of cutting.
          const last = this.#log.segments().at(-1)
          if (stop.segment !== last) {
            if (!this.#repairLog) {
              throw new CairnError(
                'StoreCorrupt',
                `Cannot open the disk store in ${this.#dir}: segment ${stop.segment} is damaged at offset ${stop.offset} and later segments exist. ` +
                  'If the host lost power, start once with --repair-disk-log (cairn serve): the log is cut there and what follows is kept aside in the store folder',
              )
            }
            const folder = join(
              this.#dir,
              `damaged-${new Date(this.#now()).toISOString().replace(/[:.]/g, '-')}`,
            )
            const kept = this.#log.setAside(stop, folder)
            this.#logger.warn(
              'disk store log cut at a damaged segment (repair); what followed is kept aside',
              {
                ...stop,
                folder,
                segments: kept,
              },
            )
          } else this.#logger.warn('disk store log has a torn tail; cutting it', { ...stop })
          this.#log.truncateAt(stop)
        }
        break
      }
      this.#applyRecord(r.value)
      count++
    }
    this.#logger.debug('disk store replayed log', { records: count })
  }

  #applyRecord(rec: LogRecord): void {
    const m = rec.meta
    switch (rec.type) {
      case RecordType.write: {
        const diskId = m.readUInt32LE(0)
        const writeId = m.readUIntLE(4, 6)
        const offset = m.readUIntLE(10, 6)
        const length = m.readUInt32LE(16)
        const t = m.readDoubleLE(20)
        this.#applyWrite(diskId, writeId, offset, length, t, rec.segment, rec.dataOffset)
        return
      }
      case RecordType.clear: {
        this.#applyClear(m.readUInt32LE(0), m.readUIntLE(4, 6), m.readUIntLE(10, 6), m.readDoubleLE(16))
        return
      }
      case RecordType.relocate: {
        const writeId = m.readUIntLE(0, 6)
        const at = m.readUInt32LE(6)
        this.#writes.relocate(writeId, at, rec.dataLength, rec.segment, rec.dataOffset)
        // Should the write's own record ever be missing, its id must still never be handed out again.
        if (writeId >= this.#nextWriteId) this.#nextWriteId = writeId + 1
        return
      }
      case RecordType.meta: {
        this.#applyMeta(JSON.parse(m.toString('utf8')) as MetaOp)
        return
      }
      default:
        throw new CairnError('StoreCorrupt', `Cannot open the disk store: unknown record type ${rec.type}`)
    }
  }

  #commit(op: MetaOp): Promise<void> {
    this.#commitNow(op)
    return this.#durable()
  }

  /** Appends and applies a metadata record without waiting for it to be durable. */
  #commitNow(op: MetaOp): void {
    const freeing = FREEING.has(op.op)
    this.#append(
      RecordType.meta,
      Buffer.from(JSON.stringify(op), 'utf8'),
      undefined,
      freeing ? 'free' : 'grow',
      `apply ${op.op} to the disk store`,
    )
    this.#applyMeta(op)
    if (freeing && op.op !== 'lease') {
      this.#freedSinceCompaction = true
      if (this.#space.full || this.#space.low) this.#compactSoon()
    }
  }

  #now(): number {
    return this.#clock()
  }

  #etag(): string {
    this.#changes++
    return `${ETAG_PREFIX}${this.#changes.toString(16).toUpperCase().padStart(12, '0')}"`
  }

  #touch(v: { etag: string; lastModified: number }, t: number): void {
    v.etag = this.#etag()
    v.lastModified = t
  }

  // ---------------------------------------------------------------- applying records

  #applyWrite(
    diskId: number,
    writeId: number,
    offset: number,
    length: number,
    t: number,
    segment: number,
    at: number,
  ) {
    const disk = this.#diskById(diskId)
    this.#writes.add(writeId, segment, at)
    if (writeId >= this.#nextWriteId) this.#nextWriteId = writeId + 1
    const r = editTree(disk.root, {
      start: offset,
      end: offset + length,
      writeId,
      writeOffset: 0,
      owner: disk.owner,
    })
    disk.root = r.root
    disk.used += r.delta
    this.#touch(disk, t)
  }

  #applyClear(diskId: number, offset: number, length: number, t: number): void {
    const disk = this.#diskById(diskId)
    const r = editTree(disk.root, {
      start: offset,
      end: offset + length,
      writeId: -1,
      writeOffset: 0,
      owner: disk.owner,
    })
    disk.root = r.root
    disk.used += r.delta
    this.#touch(disk, t)
  }

  #diskById(id: number): DiskState {
    const d = this.#disks.get(id)
    if (d === undefined)
      throw new CairnError('StoreCorrupt', `Cannot apply a disk store record: disk #${id} is unknown`)
    return d
  }

  #applyMeta(op: MetaOp): void {
    switch (op.op) {
      case 'createAccount':
        this.#accounts.set(op.name, {
          name: op.name,
          region: op.region,
          redundancy: op.redundancy,
          keys: op.keys,
          createdOn: op.t,
          containers: new Map(),
        })
        return
      case 'deleteAccount': {
        const acc = this.#accounts.get(op.name)
        if (acc === undefined) return
        for (const c of acc.containers.values()) for (const d of c.disks.values()) this.#disks.delete(d.id)
        this.#accounts.delete(op.name)
        return
      }
      case 'setAccountKey': {
        const acc = this.#accounts.get(op.name)
        if (acc !== undefined) acc.keys[op.which - 1] = op.key
        return
      }
      case 'createContainer': {
        const acc = this.#accounts.get(op.account)
        if (acc === undefined) return
        acc.containers.set(op.name, {
          account: op.account,
          name: op.name,
          metadata: op.metadata,
          etag: this.#etag(),
          lastModified: op.t,
          createdOn: op.t,
          disks: new Map(),
        })
        return
      }
      case 'setContainerMetadata': {
        const c = this.#accounts.get(op.account)?.containers.get(op.name)
        if (c === undefined) return
        c.metadata = op.metadata
        this.#touch(c, op.t)
        return
      }
      case 'deleteContainer': {
        const acc = this.#accounts.get(op.account)
        const c = acc?.containers.get(op.name)
        if (acc === undefined || c === undefined) return
        for (const d of c.disks.values()) this.#disks.delete(d.id)
        acc.containers.delete(op.name)
        return
      }
      case 'createDisk': {
        const c = this.#accounts.get(op.account)?.containers.get(op.container)
        if (c === undefined)
          throw new CairnError('StoreCorrupt', `Cannot apply createDisk: no container ${op.container}`)
        const old = op.pending ? undefined : c.disks.get(op.name)
        const disk: DiskState = {
          id: op.id,
          account: op.account,
          container: op.container,
          name: op.name,
          root: undefined,
          used: 0,
          size: op.size,
          sequenceNumber: op.sequenceNumber,
          metadata: op.metadata,
          content: op.content,
          etag: this.#etag(),
          lastModified: op.t,
          createdOn: old?.createdOn ?? op.t,
          owner: this.#nextOwner++,
          lease: old?.lease ?? NO_LEASE,
          snapshots: old?.snapshots ?? [],
          incrementalCopy: op.incrementalCopy,
        }
        if (old !== undefined && old.id !== op.id) this.#disks.delete(old.id)
        if (op.pending) disk.pending = true
        else c.disks.set(op.name, disk)
        this.#disks.set(op.id, disk)
        if (op.id >= this.#nextDiskId) this.#nextDiskId = op.id + 1
        return
      }
      case 'publishDisk': {
        const d = this.#diskById(op.id)
        const c = this.#accounts.get(d.account)?.containers.get(d.container)
        if (c === undefined)
          throw new CairnError('StoreCorrupt', `Cannot apply publishDisk: no container ${d.container}`)
        delete d.pending
        c.disks.set(d.name, d)
        this.#touch(d, op.t)
        return
      }
      case 'setDisk': {
        const d = this.#diskById(op.id)
        if (op.size !== undefined) {
          if (op.size < d.size) {
            const r = editTree(d.root, {
              start: op.size,
              end: d.size,
              writeId: -1,
              writeOffset: 0,
              owner: d.owner,
            })
            d.root = r.root
            d.used += r.delta
          }
          d.size = op.size
        }
        if (op.sequenceNumber !== undefined) d.sequenceNumber = op.sequenceNumber
        if (op.metadata !== undefined) d.metadata = op.metadata
        if (op.content !== undefined) d.content = op.content
        if (op.copy !== undefined) d.copy = op.copy
        this.#touch(d, op.t)
        return
      }
      case 'deleteDisk': {
        const d = this.#diskById(op.id)
        if (op.snapshots === 'only') {
          d.snapshots = []
          return
        }
        const c = this.#accounts.get(d.account)?.containers.get(d.container)
        if (c?.disks.get(d.name) === d) c.disks.delete(d.name)
        this.#disks.delete(d.id)
        return
      }
      case 'lease': {
        const d = this.#diskById(op.id)
        d.lease = op.lease
        return
      }
      case 'snapshot': {
        const parsed = parseSnapshotId(op.snapshot)
        if (parsed !== undefined && this.#compareTick(parsed, this.#lastSnapshot) > 0)
          this.#lastSnapshot = parsed
        for (const id of op.ids) {
          const d = this.#diskById(id)
          d.snapshots.push({
            id: op.snapshot,
            root: d.root,
            used: d.used,
            size: d.size,
            sequenceNumber: d.sequenceNumber,
            metadata: op.metadata ?? { ...d.metadata },
            content: { ...d.content },
            etag: d.etag,
            lastModified: d.lastModified,
            createdOn: op.t,
          })
          d.owner = this.#nextOwner++
        }
        return
      }
      case 'deleteSnapshot': {
        const d = this.#diskById(op.id)
        d.snapshots = d.snapshots.filter((s) => s.id !== op.snapshot)
        return
      }
      case 'promote': {
        const d = this.#diskById(op.id)
        const s = d.snapshots.find((x) => x.id === op.snapshot)
        if (s === undefined)
          throw new CairnError('StoreCorrupt', `Cannot apply promote: no snapshot ${op.snapshot}`)
        d.root = s.root
        d.used = s.used
        d.size = s.size
        d.metadata = { ...s.metadata }
        d.owner = this.#nextOwner++
        this.#touch(d, op.t)
        return
      }
      case 'copy': {
        const src = this.#diskById(op.source)
        const from: Version =
          op.sourceSnapshot === undefined
            ? src
            : (src.snapshots.find((x) => x.id === op.sourceSnapshot) ??
              (() => {
                throw new CairnError('StoreCorrupt', `Cannot apply copy: no snapshot ${op.sourceSnapshot}`)
              })())
        if (op.sourceSnapshot === undefined) src.owner = this.#nextOwner++
        const c = this.#accounts.get(op.account)?.containers.get(op.container)
        if (c === undefined)
          throw new CairnError('StoreCorrupt', `Cannot apply copy: no container ${op.container}`)
        const old = c.disks.get(op.name)
        const disk: DiskState = {
          id: op.id,
          account: op.account,
          container: op.container,
          name: op.name,
          root: from.root,
          used: from.used,
          size: from.size,
          sequenceNumber: from.sequenceNumber,
          metadata: op.metadata ?? { ...from.metadata },
          content: { ...from.content },
          etag: this.#etag(),
          lastModified: op.t,
          createdOn: old?.createdOn ?? op.t,
          owner: this.#nextOwner++,
          lease: old?.lease ?? NO_LEASE,
          snapshots: old?.snapshots ?? [],
          incrementalCopy: false,
        }
        if (old !== undefined && old.id !== op.id) this.#disks.delete(old.id)
        c.disks.set(op.name, disk)
        this.#disks.set(op.id, disk)
        if (op.id >= this.#nextDiskId) this.#nextDiskId = op.id + 1
        return
      }
    }
  }

  #compareTick(a: { ms: number; sub: number }, b: { ms: number; sub: number }): number {
    return a.ms !== b.ms ? a.ms - b.ms : a.sub - b.sub
  }

  #newSnapshotId(now: number): string {
    const last = this.#lastSnapshot
    let next = { ms: now, sub: 0 }
    if (this.#compareTick(next, last) <= 0) {
      next = last.sub >= 9999 ? { ms: last.ms + 1, sub: 0 } : { ms: last.ms, sub: last.sub + 1 }
    }
    return snapshotIdOf(next.ms, next.sub)
  }

  // ---------------------------------------------------------------- lookups and checks

  #open(): void {
    if (this.#closed) throw new CairnError('ServiceUnavailable', 'Cannot use the disk store: it is closed')
    if (this.#broken !== undefined) throw this.#broken
  }

  #account(name: string): AccountState {
    this.#open()
    const a = this.#accounts.get(name)
    if (a === undefined) throw new CairnError('AccountNotFound', `Cannot find storage account "${name}"`)
    return a
  }

  #container(account: string, name: string): ContainerState {
    const c = this.#account(account).containers.get(name)
    if (c === undefined) {
      throw new CairnError('ContainerNotFound', `Cannot find container "${name}" in account "${account}"`)
    }
    return c
  }

  #disk(ref: DiskRef): DiskState {
    const d = this.#container(ref.account, ref.container).disks.get(ref.disk)
    if (d === undefined) throw new CairnError('DiskNotFound', `Cannot find disk "${refText(ref)}"`)
    return d
  }

  #version(disk: DiskState, snapshot: string | undefined): Version {
    if (snapshot === undefined) return disk
    const s = disk.snapshots.find((x) => x.id === snapshot)
    if (s === undefined) {
      throw new CairnError(
        'SnapshotNotFound',
        `Cannot find snapshot ${snapshot} of disk "${refText({ account: disk.account, container: disk.container, disk: disk.name })}"`,
      )
    }
    return s
  }

  /** Throws unless the conditions hold for a mutation of `disk` (`what` completes "Cannot …"). */
  #check(disk: DiskState | undefined, c: WriteConditions | undefined, what: string, lease = true): void {
    const now = this.#now()
    if (disk !== undefined && lease) checkLease(disk.lease, now, c?.leaseId, what)
    if (c === undefined) return
    const fail = (why: string) => new CairnError('ConditionNotMet', `Cannot ${what}: ${why}`)
    if (c.ifMatch !== undefined && c.ifMatch !== '*' && c.ifMatch !== disk?.etag) {
      throw fail(`the disk's etag is not ${c.ifMatch}`)
    }
    if (c.ifMatch === '*' && disk === undefined) throw fail('the disk does not exist')
    if (
      c.ifNoneMatch !== undefined &&
      disk !== undefined &&
      (c.ifNoneMatch === '*' || c.ifNoneMatch === disk.etag)
    ) {
      throw fail(`the disk's etag matches ${c.ifNoneMatch}`)
    }
    if (disk !== undefined) {
      const modified = Math.floor(disk.lastModified / 1000) * 1000
      if (c.ifModifiedSince !== undefined && !(modified > c.ifModifiedSince.getTime())) {
        throw fail(`the disk was not modified since ${c.ifModifiedSince.toISOString()}`)
      }
      if (c.ifUnmodifiedSince !== undefined && modified > c.ifUnmodifiedSince.getTime()) {
        throw fail(`the disk was modified since ${c.ifUnmodifiedSince.toISOString()}`)
      }
      const seq = disk.sequenceNumber
      const seqFail = (why: string) =>
        new CairnError(
          'SequenceNumberConditionNotMet',
          `Cannot ${what}: the sequence number ${seq} is not ${why}`,
        )
      if (c.ifSequenceNumberLessThanOrEqual !== undefined && !(seq <= c.ifSequenceNumberLessThanOrEqual)) {
        throw seqFail(`at most ${c.ifSequenceNumberLessThanOrEqual}`)
      }
      if (c.ifSequenceNumberLessThan !== undefined && !(seq < c.ifSequenceNumberLessThan)) {
        throw seqFail(`less than ${c.ifSequenceNumberLessThan}`)
      }
      if (c.ifSequenceNumberEqual !== undefined && seq !== c.ifSequenceNumberEqual) {
        throw seqFail(`${c.ifSequenceNumberEqual}`)
      }
    }
  }

  #checkRange(disk: DiskState, offset: number, length: number, what: string): void {
    if (!isPageAligned(offset) || !isPageAligned(length)) {
      throw new CairnError(
        'RangeNotAligned',
        `Cannot ${what}: offset ${offset} and length ${length} must be multiples of ${PAGE_SIZE}`,
      )
    }
    if (offset + length > disk.size) {
      throw new CairnError(
        'RangeOutOfBounds',
        `Cannot ${what}: bytes ${offset}..${offset + length} reach past the disk's end at ${disk.size}`,
      )
    }
  }

  #checkWritable(disk: DiskState, what: string): void {
    if (disk.incrementalCopy) {
      throw new CairnError(
        'DiskIsReadOnly',
        `Cannot ${what}: the disk is an incremental copy and is read-only`,
      )
    }
  }

  #result(disk: DiskState): WriteResult {
    return {
      etag: disk.etag,
      lastModified: this.#iso(disk.lastModified),
      sequenceNumber: disk.sequenceNumber,
    }
  }

  /** `iso`, remembering the last answer: many writes share a millisecond. */
  #iso(ms: number): string {
    if (ms !== this.#isoMs) {
      this.#isoMs = ms
      this.#isoText = iso(ms)
    }
    return this.#isoText
  }

  #diskInfo(disk: DiskState, v: Version, snapshot?: string): DiskInfo {
    const info: DiskInfo = {
      ref: { account: disk.account, container: disk.container, disk: disk.name },
      size: v.size,
      sequenceNumber: v.sequenceNumber,
      metadata: { ...v.metadata },
      content: { ...v.content },
      etag: v.etag,
      lastModified: iso(v.lastModified),
      createdOn: iso(v.createdOn),
      lease:
        snapshot === undefined
          ? leaseInfo(disk.lease, this.#now())
          : { state: 'available', status: 'unlocked' },
      usedBytes: v.used,
    }
    if (snapshot !== undefined) info.snapshot = snapshot
    if (snapshot === undefined && disk.copy !== undefined) info.copy = { ...disk.copy }
    if (snapshot === undefined && disk.incrementalCopy) info.incrementalCopy = true
    return info
  }

  #accountInfo(a: AccountState): AccountInfo {
    return {
      name: a.name,
      region: a.region,
      redundancy: a.redundancy,
      keys: [a.keys[0], a.keys[1]],
      createdOn: iso(a.createdOn),
    }
  }

  #containerInfo(c: ContainerState): ContainerInfo {
    return {
      account: c.account,
      name: c.name,
      metadata: { ...c.metadata },
      etag: c.etag,
      lastModified: iso(c.lastModified),
      createdOn: iso(c.createdOn),
    }
  }

  // ---------------------------------------------------------------- accounts and containers

  async createAccount(
    name: string,
    options: { region?: string; redundancy?: string; keys?: [string, string] } = {},
  ) {
    this.#open()
    checkAccountName(name)
    if (this.#accounts.has(name)) {
      throw new CairnError('AccountAlreadyExists', `Cannot create storage account "${name}": it exists`)
    }
    const redundancy = options.redundancy ?? 'LRS'
    if (!REDUNDANCY.includes(redundancy)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot create storage account "${name}": redundancy must be one of ${REDUNDANCY.join(', ')}, not ${redundancy}`,
      )
    }
    const keys = options.keys ?? [newKey(), newKey()]
    await this.#commit({
      op: 'createAccount',
      name,
      region: options.region ?? 'local',
      redundancy,
      keys: [keys[0], keys[1]],
      t: this.#now(),
    })
    return this.getAccount(name)
  }

  getAccount(name: string): AccountInfo {
    return this.#accountInfo(this.#account(name))
  }

  listAccounts(): AccountInfo[] {
    this.#open()
    return [...this.#accounts.values()].sort((a, b) => cmp(a.name, b.name)).map((a) => this.#accountInfo(a))
  }

  async deleteAccount(name: string): Promise<void> {
    this.#account(name)
    await this.#commit({ op: 'deleteAccount', name, t: this.#now() })
  }

  async regenerateAccountKey(name: string, which: 1 | 2): Promise<AccountInfo> {
    this.#account(name)
    if (which !== 1 && which !== 2) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot regenerate key ${which} of account "${name}": use key 1 or 2`,
      )
    }
    await this.#commit({ op: 'setAccountKey', name, which, key: newKey(), t: this.#now() })
    return this.getAccount(name)
  }

  async createContainer(account: string, name: string, options: { metadata?: Record<string, string> } = {}) {
    const acc = this.#account(account)
    checkContainerName(name)
    if (acc.containers.has(name)) {
      throw new CairnError(
        'ContainerAlreadyExists',
        `Cannot create container "${name}" in "${account}": it exists`,
      )
    }
    await this.#commit({
      op: 'createContainer',
      account,
      name,
      metadata: { ...options.metadata },
      t: this.#now(),
    })
    return this.getContainer(account, name)
  }

  getContainer(account: string, name: string): ContainerInfo {
    return this.#containerInfo(this.#container(account, name))
  }

  listContainers(account: string, options: ListOptions = {}): Listing<ContainerInfo> {
    const all = [...this.#account(account).containers.values()].sort((a, b) => cmp(a.name, b.name))
    return page(
      all,
      (c) => c.name,
      options,
      (c) => this.#containerInfo(c),
    )
  }

  async setContainerMetadata(account: string, name: string, metadata: Record<string, string>) {
    this.#container(account, name)
    await this.#commit({
      op: 'setContainerMetadata',
      account,
      name,
      metadata: { ...metadata },
      t: this.#now(),
    })
    return this.getContainer(account, name)
  }

  async deleteContainer(account: string, name: string): Promise<void> {
    this.#container(account, name)
    await this.#commit({ op: 'deleteContainer', account, name, t: this.#now() })
  }

  // ---------------------------------------------------------------- disks

  async createDisk(ref: DiskRef, options: CreateDiskOptions): Promise<DiskInfo> {
    const c = this.#container(ref.account, ref.container)
    checkDiskName(ref.disk)
    const what = `create disk "${refText(ref)}"`
    checkDiskSize(options.size, what)
    const seq = options.sequenceNumber ?? 0
    checkSequenceNumber(seq, what)
    const old = c.disks.get(ref.disk)
    if (old !== undefined && !options.overwrite) {
      throw new CairnError('DiskAlreadyExists', `Cannot ${what}: it exists`)
    }
    this.#check(old, options.conditions, what)
    const id = old?.id ?? this.#nextDiskId++
    await this.#commit({
      op: 'createDisk',
      id,
      account: ref.account,
      container: ref.container,
      name: ref.disk,
      size: options.size,
      sequenceNumber: seq,
      metadata: { ...options.metadata },
      content: { ...options.content },
      incrementalCopy: options.incrementalCopy ?? false,
      t: this.#now(),
    })
    return this.getDisk(ref)
  }

  getDisk(ref: DiskRef, snapshot?: string): DiskInfo {
    const d = this.#disk(ref)
    return this.#diskInfo(d, this.#version(d, snapshot), snapshot)
  }

  listDisks(
    account: string,
    container: string,
    options: ListOptions & { includeSnapshots?: boolean } = {},
  ): Listing<DiskInfo> {
    const all = [...this.#container(account, container).disks.values()].sort((a, b) => cmp(a.name, b.name))
    const listed = page(
      all,
      (d) => d.name,
      options,
      (d) => d,
    )
    const items: DiskInfo[] = []
    for (const d of listed.items) {
      if (options.includeSnapshots) for (const s of d.snapshots) items.push(this.#diskInfo(d, s, s.id))
      items.push(this.#diskInfo(d, d))
    }
    return listed.nextMarker === undefined ? { items } : { items, nextMarker: listed.nextMarker }
  }

  async resizeDisk(ref: DiskRef, size: number, conditions?: WriteConditions): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `resize disk "${refText(ref)}"`
    checkDiskSize(size, what)
    this.#checkWritable(d, what)
    this.#check(d, conditions, what)
    await this.#commit({ op: 'setDisk', id: d.id, size, t: this.#now() })
    return this.#result(d)
  }

  async setDiskMetadata(ref: DiskRef, metadata: Record<string, string>, conditions?: WriteConditions) {
    const d = this.#disk(ref)
    this.#check(d, conditions, `set the metadata of disk "${refText(ref)}"`)
    await this.#commit({ op: 'setDisk', id: d.id, metadata: { ...metadata }, t: this.#now() })
    return this.#result(d)
  }

  async setDiskContent(ref: DiskRef, content: ContentProperties, conditions?: WriteConditions) {
    const d = this.#disk(ref)
    this.#check(d, conditions, `set the properties of disk "${refText(ref)}"`)
    await this.#commit({ op: 'setDisk', id: d.id, content: { ...content }, t: this.#now() })
    return this.#result(d)
  }

  async setSequenceNumber(
    ref: DiskRef,
    action: 'max' | 'update' | 'increment',
    value?: number,
    conditions?: WriteConditions,
  ): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `${action} the sequence number of disk "${refText(ref)}"`
    let next: number
    if (action === 'increment') {
      if (value !== undefined) {
        throw new CairnError('InvalidRequest', `Cannot ${what}: increment takes no value`)
      }
      next = d.sequenceNumber + 1
    } else if (action === 'max' || action === 'update') {
      if (value === undefined) throw new CairnError('InvalidRequest', `Cannot ${what}: a value is needed`)
      checkSequenceNumber(value, what)
      next = action === 'max' ? Math.max(d.sequenceNumber, value) : value
    } else {
      throw new CairnError('InvalidRequest', `Cannot change the sequence number: unknown action ${action}`)
    }
    checkSequenceNumber(next, what)
    this.#check(d, conditions, what)
    await this.#commit({ op: 'setDisk', id: d.id, sequenceNumber: next, t: this.#now() })
    return this.#result(d)
  }

  async setCopyInfo(ref: DiskRef, copy: CopyInfo): Promise<void> {
    const d = this.#disk(ref)
    await this.#commit({ op: 'setDisk', id: d.id, copy: { ...copy }, t: this.#now() })
  }

  async deleteDisk(
    ref: DiskRef,
    options: { snapshots?: 'include' | 'only'; conditions?: WriteConditions } = {},
  ): Promise<void> {
    const d = this.#disk(ref)
    const what = `delete disk "${refText(ref)}"`
    if (d.snapshots.length > 0 && options.snapshots === undefined) {
      throw new CairnError(
        'DiskHasSnapshots',
        `Cannot ${what}: it has ${d.snapshots.length} snapshots; say whether they go too (include) or alone (only)`,
      )
    }
    this.#check(d, options.conditions, what)
    await this.#commit({ op: 'deleteDisk', id: d.id, snapshots: options.snapshots ?? 'none', t: this.#now() })
  }

  // ---------------------------------------------------------------- data

  async writePages(
    ref: DiskRef,
    offset: number,
    data: Uint8Array,
    options: { conditions?: WriteConditions; durable?: boolean } = {},
  ): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `write ${data.length} bytes at ${offset} of disk "${refText(ref)}"`
    if (data.length > MAX_WRITE_SIZE) {
      throw new CairnError('WriteTooLarge', `Cannot ${what}: a single write is limited to 4 MiB`)
    }
    this.#checkRange(d, offset, data.length, what)
    this.#checkWritable(d, what)
    this.#check(d, options.conditions, what)
    if (data.length === 0) return this.#result(d)
    const t = this.#now()
    const writeId = this.#nextWriteId
    const meta = Buffer.alloc(WRITE_META)
    meta.writeUInt32LE(d.id, 0)
    meta.writeUIntLE(writeId, 4, 6)
    meta.writeUIntLE(offset, 10, 6)
    meta.writeUInt32LE(data.length, 16)
    meta.writeDoubleLE(t, 20)
    // The bytes are written off the event loop; the caller's buffer is held until then. A write that
    // must be durable before its answer goes to the device directly: the cache would not save it a wait.
    const rec = this.#appendInBackground(meta, data, options.durable !== false, what)
    this.#applyWrite(d.id, writeId, offset, data.length, t, rec.segment, rec.dataOffset)
    const result = this.#result(d)
    if (options.durable !== false) await this.#durable()
    else await this.#written(rec)
    return result
  }

  async clearPages(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { conditions?: WriteConditions; durable?: boolean } = {},
  ): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `clear ${length} bytes at ${offset} of disk "${refText(ref)}"`
    this.#checkRange(d, offset, length, what)
    this.#checkWritable(d, what)
    this.#check(d, options.conditions, what)
    if (length === 0) return this.#result(d)
    const t = this.#now()
    const meta = Buffer.alloc(CLEAR_META)
    meta.writeUInt32LE(d.id, 0)
    meta.writeUIntLE(offset, 4, 6)
    meta.writeUIntLE(length, 10, 6)
    meta.writeDoubleLE(t, 16)
    // A clear frees space (TRIM): it may take the reserve.
    this.#append(RecordType.clear, meta, undefined, 'free', what)
    this.#applyClear(d.id, offset, length, t)
    this.#freedSinceCompaction = true
    const result = this.#result(d)
    if (options.durable !== false) await this.#durable()
    return result
  }

  async read(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Promise<Buffer> {
    // Bytes a direct append wrote are read on the thread pool (they come from the device, not the
    // cache); the rest at once. The answer is the disk as of this call either way.
    const later: Promise<void>[] = []
    const out = this.#readChecked(ref, offset, length, options, later)
    if (later.length === 0) return out
    // Every read must end before the buffer goes back to the caller, failed or not.
    const settled = await Promise.allSettled(later)
    const failed = settled.find((r) => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return out
  }

  /** `read` without the promise: the bytes as of this instant. */
  readSync(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Buffer {
    return this.#readChecked(ref, offset, length, options)
  }

  #readChecked(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer },
    later?: Promise<void>[],
  ): Buffer {
    const d = this.#disk(ref)
    const v = this.#version(d, options.snapshot)
    const what = `read ${length} bytes at ${offset} of disk "${refText(ref)}"`
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new CairnError('InvalidRequest', `Cannot ${what}: offset and length must be whole numbers`)
    }
    if (offset + length > v.size) {
      throw new CairnError('RangeOutOfBounds', `Cannot ${what}: the disk ends at ${v.size}`)
    }
    if (length > MAX_READ)
      throw new CairnError('ReadTooLarge', `Cannot ${what}: a single read is limited to 1 GiB`)
    const into = options.into
    if (into !== undefined && into.length < length) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot ${what}: the buffer given holds only ${into.length} bytes`,
      )
    }
    return this.#readRoot(v.root, offset, length, what, into?.subarray(0, length), later)
  }

  /**
   * The bytes of `[offset, offset + length)` of a version, in `into` when given (else a new buffer).
   * With `later`, reads the log can do on the thread pool are started and their completions added.
   */
  #readRoot(
    root: Root,
    offset: number,
    length: number,
    what: string,
    into?: Buffer,
    later?: Promise<void>[],
  ): Buffer {
    // Only the holes are zeroed: the rest is read over at once.
    const out = into ?? Buffer.allocUnsafe(length)
    let filled = 0
    forEachExtent(root, offset, offset + length, (s, e, writeId, at) => {
      if (s - offset > filled) out.fill(0, filled, s - offset)
      const ok = this.#writes.resolve(writeId, at, e - s, (segment, segOffset, n, into) => {
        if (later === undefined) this.#log.read(segment, segOffset, out, s - offset + into, n)
        else {
          const p = this.#log.readLater(segment, segOffset, out, s - offset + into, n)
          if (p !== null) later.push(p)
        }
      })
      if (!ok) {
        throw new CairnError('StoreCorrupt', `Cannot ${what}: the data of write ${writeId} is missing`)
      }
      filled = e - offset
    })
    if (filled < length) out.fill(0, filled, length)
    return out
  }

  pageRanges(
    ref: DiskRef,
    options: { snapshot?: string; offset?: number; length?: number } = {},
  ): ByteRange[] {
    const d = this.#disk(ref)
    const v = this.#version(d, options.snapshot)
    const { start, end } = this.#window(
      v,
      options.offset,
      options.length,
      `list the page ranges of "${refText(ref)}"`,
    )
    const out: ByteRange[] = []
    forEachExtent(v.root, start, end, (s, e) => {
      const last = out[out.length - 1]
      if (last !== undefined && last.end === s) last.end = e
      else out.push({ start: s, end: e })
    })
    return out
  }

  #window(v: Version, offset: number | undefined, length: number | undefined, what: string) {
    const start = offset ?? 0
    if (!isPageAligned(start) || (length !== undefined && !isPageAligned(length))) {
      throw new CairnError(
        'RangeNotAligned',
        `Cannot ${what}: offset and length must be multiples of ${PAGE_SIZE}`,
      )
    }
    const end = length === undefined ? Math.max(v.size, start) : start + length
    return { start, end }
  }

  diff(
    ref: DiskRef,
    options: {
      from: string
      to?: string
      offset?: number
      length?: number
      marker?: string
      maxResults?: number
    },
  ): DiskDiff {
    const d = this.#disk(ref)
    const from = this.#version(d, options.from)
    const to = this.#version(d, options.to)
    const what = `diff disk "${refText(ref)}" from ${options.from} to ${options.to ?? 'the live disk'}`
    if (options.to !== undefined && options.from > options.to) {
      throw new CairnError(
        'SnapshotOrderInvalid',
        `Cannot ${what}: snapshot ${options.from} is newer than ${options.to}`,
      )
    }
    const win = this.#window(to, options.offset, options.length, what)
    let start = win.start
    const end = options.length === undefined ? Math.max(win.end, from.size) : win.end
    if (options.marker !== undefined) {
      const m = /^\d+$/.test(options.marker) ? Number(options.marker) : Number.NaN
      if (!isPageAligned(m) || m < start) {
        throw new CairnError('InvalidMarker', `Cannot ${what}: marker "${options.marker}" is not valid here`)
      }
      start = m
    }
    const max = options.maxResults
    if (max !== undefined && !(Number.isSafeInteger(max) && max > 0)) {
      throw new CairnError('InvalidRequest', `Cannot ${what}: maxResults must be a positive whole number`)
    }
    const pageRanges: ByteRange[] = []
    const clearRanges: ByteRange[] = []
    let count = 0
    let nextMarker: string | undefined
    diffTrees(from.root, to.root, start, end, (kind, s, e) => {
      const list = kind === 'changed' ? pageRanges : clearRanges
      const last = list[list.length - 1]
      if (last !== undefined && last.end === s) {
        last.end = e
        return false
      }
      if (max !== undefined && count >= max) {
        nextMarker = String(s)
        return true
      }
      list.push({ start: s, end: e })
      count++
      return false
    })
    return nextMarker === undefined ? { pageRanges, clearRanges } : { pageRanges, clearRanges, nextMarker }
  }

  flush(): Promise<void> {
    return this.#durable()
  }

  async lease(ref: DiskRef, op: LeaseAction): Promise<LeaseResult> {
    const d = this.#disk(ref)
    const now = this.#now()
    const tr = leaseTransition(d.lease, op, now, `disk "${refText(ref)}"`)
    await this.#commit({ op: 'lease', id: d.id, lease: tr.next, t: now })
    const result: LeaseResult = { etag: d.etag, lastModified: iso(d.lastModified) }
    if (tr.id !== undefined) result.id = tr.id
    if (tr.leaseTime !== undefined) result.leaseTime = tr.leaseTime
    return result
  }

  // ---------------------------------------------------------------- snapshots

  async snapshot(
    ref: DiskRef,
    options: { metadata?: Record<string, string>; conditions?: WriteConditions } = {},
  ): Promise<DiskInfo> {
    const d = this.#disk(ref)
    this.#check(
      d,
      options.conditions,
      `snapshot disk "${refText(ref)}"`,
      options.conditions?.leaseId !== undefined,
    )
    const t = this.#now()
    const id = this.#newSnapshotId(t)
    const op: MetaOp = { op: 'snapshot', ids: [d.id], snapshot: id, t }
    if (options.metadata !== undefined) op.metadata = { ...options.metadata }
    await this.#commit(op)
    return this.getDisk(ref, id)
  }

  async snapshotGroup(refs: DiskRef[]): Promise<DiskInfo[]> {
    const disks = refs.map((r) => this.#disk(r))
    if (new Set(disks).size !== disks.length) {
      throw new CairnError('InvalidRequest', 'Cannot snapshot a consistency group: a disk is named twice')
    }
    const t = this.#now()
    const id = this.#newSnapshotId(t)
    await this.#commit({ op: 'snapshot', ids: disks.map((d) => d.id), snapshot: id, t })
    return refs.map((r) => this.getDisk(r, id))
  }

  listSnapshots(ref: DiskRef): DiskInfo[] {
    const d = this.#disk(ref)
    return d.snapshots.map((s) => this.#diskInfo(d, s, s.id))
  }

  async deleteSnapshot(ref: DiskRef, snapshot: string): Promise<void> {
    const d = this.#disk(ref)
    this.#version(d, snapshot)
    await this.#commit({ op: 'deleteSnapshot', id: d.id, snapshot, t: this.#now() })
  }

  async promote(ref: DiskRef, snapshot: string, conditions?: WriteConditions): Promise<WriteResult> {
    const d = this.#disk(ref)
    this.#version(d, snapshot)
    const what = `promote snapshot ${snapshot} of disk "${refText(ref)}"`
    this.#checkWritable(d, what)
    this.#check(d, conditions, what)
    await this.#commit({ op: 'promote', id: d.id, snapshot, t: this.#now() })
    return this.#result(d)
  }

  async copyDisk(
    source: { ref: DiskRef; snapshot?: string },
    target: DiskRef,
    options: { metadata?: Record<string, string>; overwrite?: boolean; conditions?: WriteConditions } = {},
  ): Promise<DiskInfo> {
    const src = this.#disk(source.ref)
    this.#version(src, source.snapshot)
    const c = this.#container(target.account, target.container)
    checkDiskName(target.disk)
    const what = `copy "${refText(source.ref)}"${source.snapshot ? `@${source.snapshot}` : ''} to "${refText(target)}"`
    const old = c.disks.get(target.disk)
    if (old !== undefined && !options.overwrite)
      throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the target exists`)
    if (old === src && source.snapshot === undefined) {
      throw new CairnError('InvalidRequest', `Cannot ${what}: a disk cannot be copied onto itself`)
    }
    if (old !== undefined) {
      this.#checkWritable(old, what)
      this.#check(old, options.conditions, what)
    }
    const op: MetaOp = {
      op: 'copy',
      id: old?.id ?? this.#nextDiskId++,
      account: target.account,
      container: target.container,
      name: target.disk,
      source: src.id,
      t: this.#now(),
    }
    if (source.snapshot !== undefined) op.sourceSnapshot = source.snapshot
    if (options.metadata !== undefined) op.metadata = { ...options.metadata }
    await this.#commit(op)
    return this.getDisk(target)
  }

  // ---------------------------------------------------------------- space

  #allRoots(): { disk?: DiskState; snapshot?: string; root: Root }[] {
    const out: { disk?: DiskState; snapshot?: string; root: Root }[] = []
    for (const root of this.#pins) out.push({ root })
    for (const d of this.#disks.values()) {
      out.push({ disk: d, root: d.root })
      for (const s of d.snapshots) out.push({ disk: d, snapshot: s.id, root: s.root })
    }
    return out
  }

  space(ref: DiskRef, snapshot?: string): SpaceReport {
    const d = this.#disk(ref)
    const v = this.#version(d, snapshot)
    // Bytes of each write this root sees, then remove what any other root sees too.
    const mine = new Map<number, ByteRange[]>()
    forEachLeaf(v.root, new Set(), (leaf) => {
      for (let i = 0; i < leaf.length; i += 4) {
        const w = leaf[i + 2]!
        const at = leaf[i + 3]!
        const list = mine.get(w) ?? []
        list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
        mine.set(w, list)
      }
    })
    const others = new Map<number, ByteRange[]>()
    const seen = new Set<Node>()
    // Leaves of this root reached from another root are shared wholesale.
    for (const r of this.#allRoots()) {
      if (r.disk === d && r.snapshot === snapshot) continue
      if (r.root === v.root) return this.#spaceReport(d, v, snapshot, 0)
      forEachLeaf(r.root, seen, (leaf: Leaf) => {
        for (let i = 0; i < leaf.length; i += 4) {
          const w = leaf[i + 2]!
          if (!mine.has(w)) continue
          const at = leaf[i + 3]!
          const list = others.get(w) ?? []
          list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
          others.set(w, list)
        }
      })
    }
    let exclusive = 0
    for (const [w, ranges] of mine) {
      const shared = merge(others.get(w) ?? [])
      for (const r of merge(ranges)) exclusive += r.end - r.start - overlap(r, shared)
    }
    return this.#spaceReport(d, v, snapshot, exclusive)
  }

  #spaceReport(d: DiskState, v: Version, snapshot: string | undefined, exclusive: number): SpaceReport {
    const report: SpaceReport = {
      ref: { account: d.account, container: d.container, disk: d.name },
      usedBytes: v.used,
      exclusiveBytes: exclusive,
    }
    if (snapshot !== undefined) report.snapshot = snapshot
    return report
  }

  usage(): StoreUsage {
    this.#open()
    const segments = this.#log.segments()
    let segmentBytes = 0
    for (const n of segments) segmentBytes += this.#log.segmentBytes(n)
    const live = this.#liveRanges()
    let liveBytes = 0
    for (const ranges of live.values()) for (const r of ranges) liveBytes += r.end - r.start
    return { segmentBytes, liveBytes, segments: segments.length }
  }

  /** For every write some root can see, the merged byte ranges (offsets in the write) still visible. */
  #liveRanges(): Map<number, ByteRange[]> {
    const raw = new Map<number, ByteRange[]>()
    const seen = new Set<Node>()
    for (const r of this.#allRoots()) {
      forEachLeaf(r.root, seen, (leaf) => {
        for (let i = 0; i < leaf.length; i += 4) {
          const w = leaf[i + 2]!
          const at = leaf[i + 3]!
          let list = raw.get(w)
          if (list === undefined) {
            list = []
            raw.set(w, list)
          }
          list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
        }
      })
    }
    for (const [w, list] of raw) raw.set(w, merge(list))
    return raw
  }

  async compact(options: LongOperationOptions = {}): Promise<{ reclaimedBytes: number }> {
    this.#open()
    this.#compacting ??= this.#compactNow(options, false).finally(() => {
      this.#compacting = undefined
    })
    return this.#compacting
  }

  /**
   * Copies the live data of mostly dead segments to the head of the log (RELOCATE records), writes a
   * checkpoint, then removes those segments. Yields to the event loop every few MiB; writes made
   * meanwhile go to newer segments and cannot make dead data live again.
   */
  async #compactNow(options: LongOperationOptions, auto: boolean): Promise<{ reclaimedBytes: number }> {
    const { signal, onProgress } = options
    const started = performance.now()
    const epoch = this.#epoch
    const what = 'compact the disk store'
    this.#appendedSinceCompaction = 0
    this.#freedSinceCompaction = false
    this.#garbageMeasured = true
    const live = this.#liveRanges()
    for (const w of this.#writes.ids()) if (!live.has(w)) this.#writes.delete(w)
    const active = this.#log.end().segment
    const liveBySegment = new Map<number, number>()
    for (const [w, ranges] of live) {
      for (const p of this.#writes.pieces(w) ?? []) {
        const n = overlap({ start: p.at, end: p.at + p.length }, ranges)
        liveBySegment.set(p.segment, (liveBySegment.get(p.segment) ?? 0) + n)
      }
    }
    const short = this.#space.full || this.#space.low
    // Short of space, the active segment counts too (rolled below before anything is copied): on a
    // small disk it may be the only one.
    let candidates = this.#log
      .segments()
      .filter(
        (n) =>
          (n !== active || short) &&
          (liveBySegment.get(n) ?? 0) <= this.#log.segmentBytes(n) * COMPACT_LIVE_RATIO,
      )
    if (short) {
      // Short of space: the emptiest segments first, only as many as the free space (and the reserve)
      // can take the live data of; a segment with nothing live costs nothing to drop.
      const h = this.#space.health()
      let budget = h.freeBytes + h.reserveBytes - 2 * this.#lastCheckpointBytes - 2 * 1024 * 1024
      candidates.sort((a, b) => (liveBySegment.get(a) ?? 0) - (liveBySegment.get(b) ?? 0))
      candidates = candidates.filter((n) => {
        const need = (liveBySegment.get(n) ?? 0) * 1.01
        if (need > budget) return false
        budget -= need
        return true
      })
    }
    let garbage = 0
    for (const n of candidates) garbage += this.#log.segmentBytes(n) - (liveBySegment.get(n) ?? 0)
    // Automatic runs wait until the garbage is worth a copy (any amount when space is short).
    if (auto && !short && garbage < this.#segmentSize / 4) return { reclaimedBytes: 0 }
    const victims = new Set(candidates)
    if (victims.size === 0) return { reclaimedBytes: 0 }
    let total = 0
    for (const n of victims) total += liveBySegment.get(n) ?? 0
    this.#space.makeRoom(64 * 1024)
    this.#log.rollNow()
    // An active segment with nothing but its header is not rolled: it stays, as the one appends go to.
    victims.delete(this.#log.end().segment)
    if (victims.size === 0) return { reclaimedBytes: 0 }
    let done = 0
    let copied = 0
    let sinceYield = 0
    const touched: number[] = []
    for (const [w, ranges] of live) {
      const pieces = this.#writes.pieces(w)
      if (pieces === undefined || !pieces.some((p) => victims.has(p.segment))) continue
      touched.push(w)
      for (const p of [...pieces]) {
        if (!victims.has(p.segment)) continue
        for (const r of ranges) {
          const s = Math.max(r.start, p.at)
          const e = Math.min(r.end, p.at + p.length)
          if (s >= e) continue
          const data = Buffer.allocUnsafe(e - s)
          this.#log.read(p.segment, p.offset + (s - p.at), data, 0, e - s)
          const meta = Buffer.alloc(RELOCATE_META)
          meta.writeUIntLE(w, 0, 6)
          meta.writeUInt32LE(s, 6)
          const rec = this.#append(RecordType.relocate, meta, data, 'free', what)
          this.#writes.relocate(w, s, e - s, rec.segment, rec.dataOffset)
          done += e - s
          copied += rec.end - rec.offset
          sinceYield += e - s
        }
      }
      if (sinceYield >= 8 * 1024 * 1024) {
        sinceYield = 0
        onProgress?.({ bytesDone: done, bytesTotal: total })
        await new Promise((r) => setImmediate(r))
        if (signal?.aborted) {
          throw new CairnError('Cancelled', 'Cannot finish compacting the disk store: it was cancelled')
        }
        // A reload after a failed append may have made data live again that this plan calls dead.
        this.#sameEpoch(epoch, what)
      }
    }
    // What is left of a write in a victim segment is dead: forget it.
    for (const w of touched) {
      const pieces = this.#writes.pieces(w)
      if (pieces !== undefined)
        this.#writes.replace(
          w,
          pieces.filter((p) => !victims.has(p.segment)),
        )
    }
    // Relocated data goes to disk off the event loop; the checkpoint's own fsync then has little left.
    await this.#durable()
    this.#sameEpoch(epoch, what)
    this.#checkpoint()
    let removed = 0
    for (const n of victims) {
      removed += this.#log.segmentBytes(n)
      this.#log.removeSegment(n)
    }
    // Not needed for correctness (a removed segment that came back after a power cut lies before the
    // checkpoint's start and nothing refers to it), but the space is then reclaimed for good.
    syncDir(this.#dir)
    onProgress?.({ bytesDone: done, bytesTotal: total })
    const reclaimedBytes = Math.max(0, removed - copied)
    this.#logger.info('disk store compacted', {
      segments: victims.size,
      relocatedBytes: done,
      reclaimedBytes,
      ms: Math.round(performance.now() - started),
    })
    return { reclaimedBytes }
  }

  /** Appends and applies one write, without waiting for durability (import). */
  #writeNow(disk: DiskState, offset: number, data: Uint8Array): void {
    for (let at = 0; at < data.length; at += MAX_WRITE_SIZE) {
      const part = data.subarray(at, Math.min(data.length, at + MAX_WRITE_SIZE))
      const t = this.#now()
      const writeId = this.#nextWriteId
      const meta = Buffer.alloc(WRITE_META)
      meta.writeUInt32LE(disk.id, 0)
      meta.writeUIntLE(writeId, 4, 6)
      meta.writeUIntLE(offset + at, 10, 6)
      meta.writeUInt32LE(part.length, 16)
      meta.writeDoubleLE(t, 20)
      const rec = this.#append(RecordType.write, meta, part, 'grow', 'import into the disk store')
      this.#applyWrite(disk.id, writeId, offset + at, part.length, t, rec.segment, rec.dataOffset)
    }
  }

  async importFile(path: string, ref: DiskRef, options: LongOperationOptions = {}): Promise<DiskInfo> {
    const { signal, onProgress } = options
    const what = `import "${path}" into disk "${refText(ref)}"`
    const c = this.#container(ref.account, ref.container)
    checkDiskName(ref.disk)
    if (c.disks.has(ref.disk)) throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the disk exists`)
    const raw = rawSize(path)
    const size = Math.ceil(raw.size / PAGE_SIZE) * PAGE_SIZE
    checkDiskSize(size, what)
    let fh: FileHandle
    try {
      // Never through a link in the last component, never waiting on a FIFO (docs/security.md).
      fh = await openFile(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    } catch (err) {
      throw new CairnError('FileNotFound', `Cannot ${what}: ${(err as Error).message}`, { cause: err })
    }
    const id = this.#nextDiskId++
    try {
      // Not waited for: a crash before the publish record drops the pending disk anyway.
      this.#commitNow({
        op: 'createDisk',
        id,
        account: ref.account,
        container: ref.container,
        name: ref.disk,
        size,
        sequenceNumber: 0,
        metadata: {},
        content: {},
        incrementalCopy: false,
        pending: true,
        t: this.#now(),
      })
      const disk = this.#diskById(id)
      const epoch = this.#epoch
      const buf = Buffer.allocUnsafe(IMPORT_BLOCK)
      const ranges = (await dataRanges(path, raw.size)) ?? [{ start: 0, end: size }]
      for (const range of ranges) {
        for (let pos = range.start; pos < range.end; pos += IMPORT_BLOCK) {
          if (signal?.aborted) throw new CairnError('Cancelled', `Cannot ${what}: it was cancelled`)
          const want = Math.min(IMPORT_BLOCK, range.end - pos)
          let got = 0
          while (got < want) {
            const { bytesRead } = await fh.read(buf, got, want - got, pos + got)
            if (bytesRead === 0) break
            got += bytesRead
          }
          if (got < want) buf.fill(0, got, want)
          this.#open()
          this.#sameEpoch(epoch, what)
          forEachDataRun(buf, want, (s, e) => this.#writeNow(disk, pos + s, buf.subarray(s, e)))
          onProgress?.({ bytesDone: pos + want, bytesTotal: size })
        }
      }
      onProgress?.({ bytesDone: size, bytesTotal: size })
      const target = this.#container(ref.account, ref.container)
      if (target.disks.has(ref.disk))
        throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the disk was created meanwhile`)
      // One fsync makes the data and the publish record durable together.
      await this.#commit({ op: 'publishDisk', id, t: this.#now() })
    } catch (err) {
      if (this.#disks.get(id)?.pending && !this.#closed) {
        await this.#commit({ op: 'deleteDisk', id, snapshots: 'include', t: this.#now() }).catch(() => {})
      }
      throw err
    } finally {
      await fh.close()
    }
    return this.getDisk(ref)
  }

  async exportFile(
    ref: DiskRef,
    path: string,
    options: LongOperationOptions & { snapshot?: string } = {},
  ): Promise<void> {
    const { signal, onProgress } = options
    const d = this.#disk(ref)
    const v = this.#version(d, options.snapshot)
    const what = `export disk "${refText(ref)}"${options.snapshot ? `@${options.snapshot}` : ''} to "${path}"`
    // Read a fixed root: later writes to the disk do not show up half-way, and the pin keeps its
    // data from compaction.
    const root = v.root
    const size = v.size
    const ranges: ByteRange[] = []
    forEachExtent(root, 0, size, (s, e) => {
      const last = ranges[ranges.length - 1]
      if (last !== undefined && last.end === s) last.end = e
      else ranges.push({ start: s, end: e })
    })
    let blockDevice = false
    try {
      blockDevice = statSync(path).isBlockDevice()
    } catch {}
    if (blockDevice) {
      // A device keeps old bytes where the disk has holes: write those as zeros too.
      ranges.splice(0, ranges.length, { start: 0, end: size })
    }
    let total = 0
    for (const r of ranges) total += r.end - r.start
    this.#pins.push(root)
    const epoch = this.#epoch
    let fh: FileHandle | undefined
    let ok = false
    try {
      try {
        // Never through a link in the last component (docs/security.md).
        const flags = blockDevice
          ? constants.O_RDWR
          : constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC
        fh = await openFile(path, flags | constants.O_NOFOLLOW)
      } catch (err) {
        throw new CairnError('FileNotFound', `Cannot ${what}: ${(err as Error).message}`, { cause: err })
      }
      if (!blockDevice) await fh.truncate(size)
      let done = 0
      onProgress?.({ bytesDone: 0, bytesTotal: total })
      for (const r of ranges) {
        for (let at = r.start; at < r.end; at += EXPORT_BLOCK) {
          if (signal?.aborted) throw new CairnError('Cancelled', `Cannot ${what}: it was cancelled`)
          this.#open()
          this.#sameEpoch(epoch, what)
          const n = Math.min(EXPORT_BLOCK, r.end - at)
          const data = this.#readRoot(root, at, n, what)
          let written = 0
          while (written < n)
            written += (await fh.write(data, written, n - written, at + written)).bytesWritten
          done += n
          onProgress?.({ bytesDone: done, bytesTotal: total })
        }
      }
      await fh.sync()
      ok = true
    } finally {
      this.#pins.splice(this.#pins.indexOf(root), 1)
      await fh?.close()
      if (!ok && fh !== undefined && !blockDevice) rmSync(path, { force: true })
    }
  }

  async close(): Promise<void> {
    if (this.#closed || this.#closing) return
    this.#closing = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    if (this.#firstLook !== undefined) clearTimeout(this.#firstLook)
    try {
      await this.#compacting
    } catch {}
    await this.#rewinding?.catch(() => {})
    this.#space.close()
    try {
      await this.#log.durable()
      try {
        if (this.#appendedSinceCheckpoint > 0 || this.#checkpointNo === 0) this.#checkpoint()
      } catch (err) {
        // The log holds everything (it is durable); the next open replays it.
        if (!isStoreFull(err)) throw err
        this.#logger.warn('disk store closed without a checkpoint: its file system is full')
      }
    } finally {
      this.#closed = true
      await this.#log.close()
    }
  }
}

const REDUNDANCY = ['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']

const newKey = () => randomBytes(64).toString('base64')

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

function checkDiskSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % PAGE_SIZE !== 0 || size > MAX_DISK_SIZE) {
    throw new CairnError(
      'InvalidDiskSize',
      `Cannot ${what}: the size ${size} is not a multiple of ${PAGE_SIZE} bytes up to 8 TiB`,
    )
  }
}

function checkSequenceNumber(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new CairnError('InvalidRequest', `Cannot ${what}: a sequence number is a whole number from 0`)
  }
}

/** One page of a sorted listing by name, with the name of the next item as marker. */
function page<T, U>(all: T[], key: (t: T) => string, options: ListOptions, map: (t: T) => U): Listing<U> {
  let items = all
  if (options.prefix !== undefined) items = items.filter((t) => key(t).startsWith(options.prefix!))
  if (options.marker !== undefined) items = items.filter((t) => key(t) >= options.marker!)
  const max = options.maxResults ?? 5000
  if (items.length > max) {
    return { items: items.slice(0, max).map(map), nextMarker: key(items[max]!) }
  }
  return { items: items.map(map) }
}

/** Sorts and merges overlapping or adjacent ranges. */
function merge(list: ByteRange[]): ByteRange[] {
  if (list.length <= 1) return list
  list.sort((a, b) => a.start - b.start)
  const out: ByteRange[] = [{ ...list[0]! }]
  for (let i = 1; i < list.length; i++) {
    const r = list[i]!
    const last = out[out.length - 1]!
    if (r.start <= last.end) last.end = Math.max(last.end, r.end)
    else out.push({ ...r })
  }
  return out
}

/** Bytes of `r` covered by the sorted, merged `list`. */
function overlap(r: ByteRange, list: ByteRange[]): number {
  let n = 0
  for (const x of list) {
    if (x.start >= r.end) break
    n += Math.max(0, Math.min(r.end, x.end) - Math.max(r.start, x.start))
  }
  return n
}
