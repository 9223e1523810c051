// LogDiskStore: the disk store over an append-only data log, per-disk persistent radix trees of
// extents, and checkpoints. See docs/diskstore.md for the design and docs/formats.md for the bytes.
//
// Every mutation validates, appends one log record (page cache), applies the change to the in-memory
// state in the same tick, then awaits a shared fsync. Replaying the log after the newest valid
// checkpoint rebuilds the same state, because applying a record uses only what the record holds.
//
// This file is the façade: the methods of DiskStore and the sequencing of appends, fsyncs,
// checkpoints and the reload after a failed append, which share the store's mutable fields and are
// kept in one place on purpose (that ordering is what makes the store crash-safe). The metadata
// methods (each validates, then commits one META record) live in _account-operations.ts,
// _disk-operations.ts and _snapshot-operations.ts, the reads, page ranges and diffs in
// _read-operations.ts, behind a small host (_operation-host.ts); writes and clears stay here. The
// rest lives in private modules: _store-state.ts (the state and its checkpoint form),
// _apply-record.ts (log records and applying them), _load-state.ts (checkpoint + replay at open),
// _write-conditions.ts, _snapshot-id.ts, _disk-info.ts (public views, listings), _read-root.ts,
// _diff-versions.ts, _live-ranges.ts (space accounting), _compact-log.ts, _import-file.ts,
// _export-file.ts; _space-guard.ts keeps the disk-full rules.

import { mkdirSync } from 'node:fs'
import { CairnError, type ErrorCode, type Logger, silentLogger } from '../util/index.js'
import { AccountOperations } from './_account-operations.js'
import {
  applyClear,
  applyMeta,
  applyWrite,
  clearMeta,
  type MetaOp,
  metaOpMeta,
  writeMeta,
} from './_apply-record.js'
import { NodeWriter, pruneCheckpoints, writeCheckpoint } from './_checkpoint.js'
import { type CompactionHost, compactLog, type Room } from './_compact-log.js'
import { diskInfo, iso } from './_disk-info.js'
import { DiskOperations } from './_disk-operations.js'
import { type ExportHost, exportFile } from './_export-file.js'
import type { Root } from './_extent-tree.js'
import type { ImageExtent } from './_image-stream.js'
import { type ImportHost, importFile, importImage } from './_import-file.js'
import { leaseTransition } from './_lease.js'
import { allRoots, exclusiveBytes, liveRanges, type RootRef } from './_live-ranges.js'
import { loadState } from './_load-state.js'
import { refText } from './_names.js'
import type { OperationHost } from './_operation-host.js'
import { ExclusiveWrites, planOverwrite } from './_overwrite-in-place.js'
import { type DiffOptions, ReadOperations } from './_read-operations.js'
import { readRoot } from './_read-root.js'
import {
  type BackgroundRecord,
  type LogPosition,
  type LogRecord,
  RECORD_HEADER_SIZE,
  RecordType,
  SegmentLog,
} from './_segment-log.js'
import { type CopyDiskOptions, SnapshotOperations } from './_snapshot-operations.js'
import { SpaceGuard } from './_space-guard.js'
import {
  type AccountState,
  type ContainerState,
  type DiskState,
  StoreState,
  type Version,
} from './_store-state.js'
import { checkRange, checkWritable, checkWriteConditions } from './_write-conditions.js'
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

/** Metadata records that free space (or are needed to: breaking a lease before a delete). */
const FREEING: ReadonlySet<string> = new Set([
  'deleteDisk',
  'deleteSnapshot',
  'deleteContainer',
  'deleteAccount',
  'lease',
])

const isStoreFull = (err: unknown): err is CairnError => err instanceof CairnError && err.code === 'StoreFull'

/** The disk store over a data log and persistent extent trees. */
export class LogDiskStore implements DiskStore {
  readonly #dir: string
  readonly #logger: Logger
  readonly #clock: () => number
  readonly #log: SegmentLog
  readonly #state = new StoreState()
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
  /** Which writes only their disk's live version sees (overwrites in place). */
  readonly #exclusive = new ExclusiveWrites()
  /** Log positions of the newest checkpoints (the loaded one, then those written since), oldest first. */
  #checkpointStarts: LogPosition[] = []
  /** Writes done in place, and their bytes, since open. */
  #inPlaceWrites = 0
  #inPlaceBytes = 0
  readonly #accounts: AccountOperations
  readonly #disks: DiskOperations
  readonly #snapshots: SnapshotOperations
  readonly #reads: ReadOperations

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
    const host = this.#operationHost()
    this.#accounts = new AccountOperations(host)
    this.#disks = new DiskOperations(host)
    this.#snapshots = new SnapshotOperations(host)
    this.#reads = new ReadOperations(host)
  }

  /** What the account, disk, snapshot and read operations may see and do of the store. */
  #operationHost(): OperationHost {
    return {
      state: this.#state,
      now: () => this.#now(),
      open: () => this.#open(),
      account: (name) => this.#account(name),
      container: (account, name) => this.#container(account, name),
      disk: (ref) => this.#disk(ref),
      version: (disk, snapshot) => this.#version(disk, snapshot),
      check: (disk, conditions, what, lease) => this.#check(disk, conditions, what, lease),
      result: (disk) => this.#result(disk),
      diskInfo: (disk, v, snapshot) => this.#diskInfo(disk, v, snapshot),
      getDisk: (ref, snapshot) => this.getDisk(ref, snapshot),
      commit: (op) => this.#commit(op),
      readRoot: (root, offset, length, what, into, later) =>
        this.#readRoot(root, offset, length, what, into, later),
    }
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
      store.#load()
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
    for (const d of [...this.#state.disks.values()]) {
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
      this.#state.clear()
      this.#load()
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

  /** Writes a checkpoint of the whole state (after making the log durable) and prunes old ones. */
  #checkpoint(): void {
    this.#log.syncNow()
    const nodes = new NodeWriter()
    const start = this.#log.end()
    const json = this.#state.toCheckpointJson(start, nodes)
    this.#space.makeRoom(this.#lastCheckpointBytes + 1024 * 1024)
    let bytes: number
    try {
      bytes = writeCheckpoint(this.#dir, this.#checkpointNo + 1, json, this.#state.writes, nodes)
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
    this.#checkpointStarts = [...this.#checkpointStarts.slice(-1), start]
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
      // Data on a 512-byte boundary of the file, so that it can later be overwritten in place.
      rec = this.#log.append(RecordType.write, meta, data, {
        background: true,
        direct,
        alignData: PAGE_SIZE,
      })
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

  /** Loads the newest valid checkpoint and replays the log after it into the (empty) state. */
  #load(): void {
    const loaded = loadState({
      dir: this.#dir,
      log: this.#log,
      state: this.#state,
      logger: this.#logger,
      repairLog: this.#repairLog,
      now: () => this.#now(),
    })
    if (loaded.checkpoint !== undefined) this.#checkpointNo = loaded.checkpoint
    this.#checkpointStarts = loaded.checkpoint === undefined ? [] : [loaded.from]
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
      metaOpMeta(op),
      undefined,
      freeing ? 'free' : 'grow',
      `apply ${op.op} to the disk store`,
    )
    applyMeta(this.#state, op)
    if (freeing && op.op !== 'lease') {
      this.#freedSinceCompaction = true
      if (this.#space.full || this.#space.low) this.#compactSoon()
    }
  }

  #now(): number {
    return this.#clock()
  }

  // ---------------------------------------------------------------- lookups and checks

  #open(): void {
    if (this.#closed) throw new CairnError('ServiceUnavailable', 'Cannot use the disk store: it is closed')
    if (this.#broken !== undefined) throw this.#broken
  }

  #account(name: string): AccountState {
    this.#open()
    const a = this.#state.accounts.get(name)
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
    checkWriteConditions(disk, c, what, { now: this.#now(), lease })
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
    return diskInfo(disk, v, snapshot, () => this.#now())
  }

  // ---------------------------------------------------------------- accounts and containers

  createAccount(
    name: string,
    options: { region?: string; redundancy?: string; keys?: [string, string] } = {},
  ) {
    return this.#accounts.createAccount(name, options)
  }

  getAccount(name: string): AccountInfo {
    return this.#accounts.getAccount(name)
  }

  listAccounts(): AccountInfo[] {
    return this.#accounts.listAccounts()
  }

  deleteAccount(name: string): Promise<void> {
    return this.#accounts.deleteAccount(name)
  }

  regenerateAccountKey(name: string, which: 1 | 2, key?: string): Promise<AccountInfo> {
    return this.#accounts.regenerateAccountKey(name, which, key)
  }

  setAccountRedundancy(name: string, redundancy: string): Promise<AccountInfo> {
    return this.#accounts.setAccountRedundancy(name, redundancy)
  }

  createContainer(account: string, name: string, options: { metadata?: Record<string, string> } = {}) {
    return this.#accounts.createContainer(account, name, options)
  }

  getContainer(account: string, name: string): ContainerInfo {
    return this.#accounts.getContainer(account, name)
  }

  listContainers(account: string, options: ListOptions = {}): Listing<ContainerInfo> {
    return this.#accounts.listContainers(account, options)
  }

  setContainerMetadata(account: string, name: string, metadata: Record<string, string>) {
    return this.#accounts.setContainerMetadata(account, name, metadata)
  }

  deleteContainer(account: string, name: string): Promise<void> {
    return this.#accounts.deleteContainer(account, name)
  }

  // ---------------------------------------------------------------- disks

  createDisk(ref: DiskRef, options: CreateDiskOptions): Promise<DiskInfo> {
    return this.#disks.createDisk(ref, options)
  }

  getDisk(ref: DiskRef, snapshot?: string): DiskInfo {
    return this.#disks.getDisk(ref, snapshot)
  }

  listDisks(
    account: string,
    container: string,
    options: ListOptions & { includeSnapshots?: boolean } = {},
  ): Listing<DiskInfo> {
    return this.#disks.listDisks(account, container, options)
  }

  resizeDisk(ref: DiskRef, size: number, conditions?: WriteConditions): Promise<WriteResult> {
    return this.#disks.resizeDisk(ref, size, conditions)
  }

  setDiskMetadata(ref: DiskRef, metadata: Record<string, string>, conditions?: WriteConditions) {
    return this.#disks.setDiskMetadata(ref, metadata, conditions)
  }

  setDiskTags(ref: DiskRef, tags: Record<string, string>, conditions?: WriteConditions): Promise<void> {
    return this.#disks.setDiskTags(ref, tags, conditions)
  }

  setDiskContent(ref: DiskRef, content: ContentProperties, conditions?: WriteConditions) {
    return this.#disks.setDiskContent(ref, content, conditions)
  }

  setSequenceNumber(
    ref: DiskRef,
    action: 'max' | 'update' | 'increment',
    value?: number,
    conditions?: WriteConditions,
  ): Promise<WriteResult> {
    return this.#disks.setSequenceNumber(ref, action, value, conditions)
  }

  setCopyInfo(ref: DiskRef, copy: CopyInfo): Promise<void> {
    return this.#disks.setCopyInfo(ref, copy)
  }

  deleteDisk(
    ref: DiskRef,
    options: { snapshots?: 'include' | 'only'; conditions?: WriteConditions } = {},
  ): Promise<void> {
    return this.#disks.deleteDisk(ref, options)
  }

  // ---------------------------------------------------------------- data

  async writePages(
    ref: DiskRef,
    offset: number,
    data: Uint8Array,
    options: { conditions?: WriteConditions; durable?: boolean; direct?: boolean } = {},
  ): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `write ${data.length} bytes at ${offset} of disk "${refText(ref)}"`
    if (data.length > MAX_WRITE_SIZE) {
      throw new CairnError('WriteTooLarge', `Cannot ${what}: a single write is limited to 4 MiB`)
    }
    checkRange(d, offset, data.length, what)
    checkWritable(d, what)
    this.#check(d, options.conditions, what)
    if (data.length === 0) return this.#result(d)
    const t = this.#now()
    if (options.durable === false && this.#overwriteInPlace(d, offset, data, t)) return this.#result(d)
    const writeId = this.#state.nextWriteId
    const meta = writeMeta(d.id, writeId, offset, data.length, t)
    // The bytes are written off the event loop; the caller's buffer is held until then. A write that
    // must be durable before its answer goes to the device directly: the cache would not save it a wait
    // (nor a bulk write that asks for it: `direct`).
    const direct = options.durable !== false || options.direct === true
    const rec = this.#appendInBackground(meta, data, direct, what)
    applyWrite(this.#state, d.id, writeId, offset, data.length, t, rec.segment, rec.dataOffset)
    const result = this.#result(d)
    if (options.durable !== false) await this.#durable()
    else await this.#written(rec)
    return result
  }

  /**
   * A write without durability over bytes only this disk's live version sees, in records no replay
   * reads again, goes where those bytes are (see _overwrite-in-place.ts); a small META record still
   * gives the disk its new etag and time, in log order. Returns false when the write must be
   * appended instead (and asks for a checkpoint when only the checkpoints' positions stood in the way).
   */
  #overwriteInPlace(d: DiskState, offset: number, data: Uint8Array, t: number): boolean {
    if (
      this.#compacting !== undefined ||
      this.#rewinding !== undefined ||
      this.#closing ||
      this.#pins.length > 0 ||
      this.#log.failure !== undefined ||
      d.pending === true
    )
      return false
    const plan = planOverwrite(
      d.root,
      this.#state.writes,
      this.#log,
      { offset, length: data.length },
      {
        exclusiveFrom: this.#exclusive.from(d, this.#state.nextWriteId),
        safeBefore: this.#checkpointStarts.length >= 2 ? this.#checkpointStarts[0] : undefined,
      },
    )
    if ('refused' in plan) {
      if (plan.refused === 'checkpoint') this.#checkpointForOverwrites()
      return false
    }
    this.#commitNow({ op: 'setDisk', id: d.id, t })
    for (const target of plan.targets) {
      this.#log.overwrite(
        target.segment,
        target.offset,
        data.subarray(target.from, target.from + target.length),
      )
    }
    this.#inPlaceWrites++
    this.#inPlaceBytes += data.length
    return true
  }

  /**
   * Overwrites wait for two checkpoints after the bytes they would land on: take one sooner than
   * the log's size alone would (after an eighth of the usual amount of log, at most 64 MiB).
   */
  #checkpointForOverwrites(): void {
    if (this.#checkpointPending) return
    if (this.#appendedSinceCheckpoint < Math.min(this.#checkpointBytes / 8, 64 * 1024 * 1024)) return
    this.#checkpointPending = true
    setImmediate(() => {
      this.#autoCheckpoint().finally(() => {
        this.#checkpointPending = false
      })
    })
  }

  /** Writes made in place since the store opened (the rest were appended). */
  overwriteStats(): { inPlaceWrites: number; inPlaceBytes: number } {
    return { inPlaceWrites: this.#inPlaceWrites, inPlaceBytes: this.#inPlaceBytes }
  }

  async clearPages(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { conditions?: WriteConditions; durable?: boolean } = {},
  ): Promise<WriteResult> {
    const d = this.#disk(ref)
    const what = `clear ${length} bytes at ${offset} of disk "${refText(ref)}"`
    checkRange(d, offset, length, what)
    checkWritable(d, what)
    this.#check(d, options.conditions, what)
    if (length === 0) return this.#result(d)
    const t = this.#now()
    const meta = clearMeta(d.id, offset, length, t)
    // A clear frees space (TRIM): it may take the reserve.
    this.#append(RecordType.clear, meta, undefined, 'free', what)
    applyClear(this.#state, d.id, offset, length, t)
    this.#freedSinceCompaction = true
    const result = this.#result(d)
    if (options.durable !== false) await this.#durable()
    return result
  }

  /** The bytes of a range of a disk or snapshot; data written directly is read on the thread pool. */
  read(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Promise<Buffer> {
    return this.#reads.read(ref, offset, length, options)
  }

  /** `read` without the promise: the bytes as of this instant. */
  readSync(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Buffer {
    return this.#reads.readSync(ref, offset, length, options)
  }

  #readRoot(
    root: Root,
    offset: number,
    length: number,
    what: string,
    into?: Buffer,
    later?: Promise<void>[],
  ): Buffer {
    return readRoot(this.#state.writes, this.#log, { root, offset, length, what }, into, later)
  }

  pageRanges(
    ref: DiskRef,
    options: { snapshot?: string; offset?: number; length?: number } = {},
  ): ByteRange[] {
    return this.#reads.pageRanges(ref, options)
  }

  diff(ref: DiskRef, options: DiffOptions): DiskDiff {
    return this.#reads.diff(ref, options)
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

  snapshot(
    ref: DiskRef,
    options: { metadata?: Record<string, string>; conditions?: WriteConditions; id?: string } = {},
  ): Promise<DiskInfo> {
    return this.#snapshots.snapshot(ref, options)
  }

  snapshotGroup(refs: DiskRef[], options: { markers?: Record<string, string> } = {}): Promise<DiskInfo[]> {
    return this.#snapshots.snapshotGroup(refs, options)
  }

  listSnapshots(ref: DiskRef): DiskInfo[] {
    return this.#snapshots.listSnapshots(ref)
  }

  deleteSnapshot(ref: DiskRef, snapshot: string): Promise<void> {
    return this.#snapshots.deleteSnapshot(ref, snapshot)
  }

  promote(ref: DiskRef, snapshot: string, conditions?: WriteConditions): Promise<WriteResult> {
    return this.#snapshots.promote(ref, snapshot, conditions)
  }

  copyDisk(
    source: { ref: DiskRef; snapshot?: string },
    target: DiskRef,
    options: CopyDiskOptions = {},
  ): Promise<DiskInfo> {
    return this.#snapshots.copyDisk(source, target, options)
  }

  // ---------------------------------------------------------------- space

  space(ref: DiskRef, snapshot?: string): SpaceReport {
    const d = this.#disk(ref)
    const v = this.#version(d, snapshot)
    return this.#spaceReport(d, v, snapshot, exclusiveBytes(this.#allRoots(), d, v, snapshot))
  }

  #allRoots(): RootRef[] {
    return allRoots(this.#state, this.#pins)
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
    const live = liveRanges(this.#allRoots())
    let liveBytes = 0
    for (const ranges of live.values()) for (const r of ranges) liveBytes += r.end - r.start
    return { segmentBytes, liveBytes, segments: segments.length }
  }

  async compact(options: LongOperationOptions = {}): Promise<{ reclaimedBytes: number }> {
    this.#open()
    this.#compacting ??= this.#compactNow(options, false).finally(() => {
      this.#compacting = undefined
    })
    return this.#compacting
  }

  async #compactNow(options: LongOperationOptions, auto: boolean): Promise<{ reclaimedBytes: number }> {
    this.#appendedSinceCompaction = 0
    this.#freedSinceCompaction = false
    this.#garbageMeasured = true
    return compactLog(this.#compactionHost(), options, auto)
  }

  /** What compaction may see and do of the store. */
  #compactionHost(): CompactionHost {
    const store = this
    return {
      dir: this.#dir,
      log: this.#log,
      writes: this.#state.writes,
      space: this.#space,
      logger: this.#logger,
      segmentSize: this.#segmentSize,
      get lastCheckpointBytes() {
        return store.#lastCheckpointBytes
      },
      get epoch() {
        return store.#epoch
      },
      liveRanges: () => liveRanges(this.#allRoots()),
      append: (type, meta, data, room, what) => this.#append(type, meta, data, room, what),
      durable: () => this.#durable(),
      sameEpoch: (epoch, what) => this.#sameEpoch(epoch, what),
      checkpoint: () => this.#checkpoint(),
    }
  }

  importFile(path: string, ref: DiskRef, options: LongOperationOptions = {}): Promise<DiskInfo> {
    return importFile(this.#transferHost(), path, ref, options)
  }

  importImage(
    ref: DiskRef,
    image: { size: number; extents: AsyncIterable<ImageExtent> },
    options: LongOperationOptions = {},
  ): Promise<DiskInfo> {
    return importImage(this.#transferHost(), ref, image, options)
  }

  exportFile(
    ref: DiskRef,
    path: string,
    options: LongOperationOptions & { snapshot?: string } = {},
  ): Promise<void> {
    return exportFile(this.#transferHost(), ref, path, options)
  }

  /** What import and export may see and do of the store. */
  #transferHost(): ImportHost & ExportHost {
    const store = this
    return {
      state: this.#state,
      pins: this.#pins,
      get epoch() {
        return store.#epoch
      },
      get closed() {
        return store.#closed
      },
      now: () => this.#now(),
      open: () => this.#open(),
      container: (account, name) => this.#container(account, name),
      disk: (ref) => this.#disk(ref),
      version: (disk, snapshot) => this.#version(disk, snapshot),
      share: (disk) => {
        disk.owner = this.#state.nextOwner++
      },
      getDisk: (ref) => this.getDisk(ref),
      commit: (op) => this.#commit(op),
      commitNow: (op) => this.#commitNow(op),
      append: (type, meta, data, room, what) => this.#append(type, meta, data, room, what),
      sameEpoch: (epoch, what) => this.#sameEpoch(epoch, what),
      readRoot: (root, offset, length, what) => this.#readRoot(root, offset, length, what),
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
