// The data log of the disk store: append-only segment files `seg-000001.log`, … in the store folder.
// Their byte layout, and the encoding and checking of headers, are in _log-format.ts.
//
// A WRITE record appended with `direct` (a write acknowledged only once durable) bypasses the page
// cache: its meta is padded with zeros so that the data starts on a 4 KiB boundary of the file, and the
// data goes to the device with O_DIRECT through a second descriptor while the header and meta go
// through the cache. The layout is the ordinary one (a reader just sees a longer meta), and the CRC
// covers everything, so a crash between the two writes leaves a torn record like any other. On this
// machine a copy into new page-cache pages costs ~1.3 s of CPU per GiB (dd: 0.14 s to overwrite cached
// pages): Put Page bodies, which are synced before their answer anyway, no longer pay it. `readLater`
// reads such data back directly too, on the thread pool; `read` (synchronous) goes through the cache.
//
// Appends go to the page cache with writeSync, or, for `append(..., { background: true })`, with a
// pwritev on libuv's thread pool so that the event loop neither copies the bytes nor stalls while
// an fdatasync holds the file. Such a record's position is assigned at once and `read` serves its
// bytes from memory until the write completes. `durable()` waits for every write started before the
// call, then resolves after an fdatasync that began after them (group commit: one fsync serves
// every caller waiting at that moment; two such rounds may overlap, each ending after the one
// before). A failed background write stops the log: later appends and durable() fail until the
// owner calls `rewind()` (after `settle()`): the log is then cut at the failed record, as reopening
// the store would cut it, and accepts appends again (a disk that was full may have room by then). `onFailure` tells the owner at once, so that it can rebuild its state from the cut log.
//
// The byte layout of segments and records lives in _log-format.ts. The rest stays in one class
// although over ~600 lines: the cached and direct appends, background writes, group commit, rolling,
// reading back, and cutting the log after a tear or a failed write all act on the same descriptors,
// pending-write queue and end position. Each of them keeps an invariant of the others (a record's
// position is assigned before its bytes land; a cut waits for every pending write), so they stay where
// those fields are private, rather than being opened up across files.

import {
  closeSync,
  constants,
  copyFileSync,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  read as readCallback,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
  writev,
  writevSync,
} from 'node:fs'
import { join } from 'node:path'
import { ALIGN, alignedBuffer, CairnError, isAligned } from '../util/index.js'
import {
  type LogPosition,
  type LogRecord,
  listSegments,
  MAX_DATA,
  RECORD_HEADER_SIZE,
  recordHeader,
  SEGMENT_HEADER_SIZE,
  segmentHeader,
  segmentName,
  segmentRecords,
} from './_log-format.js'

export {
  type LogPosition,
  type LogRecord,
  listSegments,
  RECORD_HEADER_SIZE,
  RecordType,
  SEGMENT_HEADER_SIZE,
} from './_log-format.js'

/** Smallest data part written directly: below it the padding (up to 4 KiB) outweighs the saved copy. */
const DIRECT_MIN = 64 * 1024
/**
 * Group-commit rounds that may run at once. With two, the next round's fdatasync is issued as soon as
 * its writes are done, while the one before still syncs, instead of after that one's answers went out:
 * blob uploads with 8 Put Pages in flight ran 10-38 % faster in 4 of 5 alternating pairs (BENCHMARKS.md).
 */
const SYNC_ROUNDS = 2
/** Staging buffers for direct writes of data not already in aligned memory, kept for reuse. */
const staging: Buffer[] = []
const KEEP_STAGING = 8
const takeStaging = (n: number) => {
  const b = staging.pop()
  return b !== undefined && b.length >= n ? b : alignedBuffer(Math.max(n, MAX_DATA))
}
const giveStaging = (b: Buffer) => {
  if (staging.length < KEEP_STAGING) staging.push(b)
}

/** A fdatasync as a promise. */
const syncFd = (fd: number) =>
  new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())))

/** A background write not completed yet: its bytes, where they go, and its completion. */
interface PendingWrite {
  segment: number
  start: number
  end: number
  parts: Uint8Array[]
  done: Promise<void>
  /** Set when the log wrote these bytes itself (roll, checkpoint): a later failure of its own write changes nothing. */
  inPlace?: boolean
  /** Set once `done` settled. */
  settled?: boolean
}

/** A LogRecord appended in the background, with the completion of its write. */
export interface BackgroundRecord extends LogRecord {
  /**
   * Resolves when the record and every earlier one are in the page cache; rejects (as the log then
   * does) if one of those writes failed.
   */
  written: Promise<void>
}

/** Append-only segment files with group commit. */
export class SegmentLog {
  readonly #dir: string
  readonly #segmentSize: number
  readonly #fds = new Map<number, number>()
  /** O_DIRECT descriptors of segments, opened at their first direct append. */
  readonly #directFds = new Map<number, number>()
  /** Set once the file system refused O_DIRECT: every append goes through the cache. */
  #noDirect = false
  readonly #sizes = new Map<number, number>()
  #active = 0
  #dirty = new Set<number>()
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  /** Group-commit rounds running (at most SYNC_ROUNDS). */
  #rounds = 0
  #closed = false
  /** Background writes not completed yet (and, once the log failed, the failed one, for reads). */
  readonly #pending = new Set<PendingWrite>()
  /** Reads on the thread pool still running, by segment (its descriptors stay open until they end). */
  readonly #reads = new Set<{ segment: number; done: Promise<void> }>()
  /** Set when a background write failed: the log accepts nothing more until `rewind()`. */
  #failure: CairnError | undefined
  /** Where the earliest failed record starts: `rewind()` cuts the log there. */
  #failedAt: LogPosition | undefined
  /** Called once when a background write fails (the owner then settles and rewinds). */
  onFailure: ((error: CairnError) => void) | undefined
  /** Settled once every group-commit round started so far has ended. */
  #round: Promise<void> = Promise.resolve()
  /** The last round started: the next one ends after it. */
  #lastRound: Promise<void> = Promise.resolve()
  /** The writes and fdatasyncs of the last round started (rejected when they failed). */
  #lastSync: Promise<unknown> = Promise.resolve()

  private constructor(dir: string, segmentSize: number) {
    this.#dir = dir
    this.#segmentSize = segmentSize
  }

  /**
   * Opens the segments of `dir` for reading and appending. Segments before `keepFrom` that are no
   * longer needed are left to the caller. Call `truncateAt` after replay to cut a torn tail.
   */
  static open(dir: string, segmentSize: number): SegmentLog {
    const log = new SegmentLog(dir, segmentSize)
    for (const n of listSegments(dir)) {
      const fd = openSync(join(dir, segmentName(n)), 'r+')
      log.#fds.set(n, fd)
      log.#sizes.set(n, fstatSync(fd).size)
      log.#active = n
    }
    return log
  }

  /** Segment numbers, ascending. */
  segments(): number[] {
    return [...this.#fds.keys()].sort((a, b) => a - b)
  }

  /** Size in bytes of a segment file. */
  segmentBytes(n: number): number {
    return this.#sizes.get(n) ?? 0
  }

  /** The position where the next record will go. */
  end(): LogPosition {
    if (this.#active === 0) return { segment: 1, offset: SEGMENT_HEADER_SIZE }
    return { segment: this.#active, offset: this.#sizes.get(this.#active)! }
  }

  /** Reads the records from `from` on, stopping at the first torn or invalid one (returned as `stop`). */
  *records(from: LogPosition): Generator<LogRecord, LogPosition> {
    for (const n of this.segments()) {
      if (n < from.segment) continue
      const start = n === from.segment ? from.offset : SEGMENT_HEADER_SIZE
      const stop = yield* segmentRecords(this.#fds.get(n)!, n, this.#sizes.get(n)!, start)
      if (stop !== undefined) return stop
    }
    return this.end()
  }

  /**
   * Keeps what a cut at `pos` would drop, in `folder` (made here, inside the store folder): a copy of
   * segment `pos.segment` and every later segment, moved. Returns the names set aside.
   */
  setAside(pos: LogPosition, folder: string): string[] {
    mkdirSync(folder, { recursive: true })
    const names: string[] = []
    for (const n of this.segments()) {
      if (n < pos.segment) continue
      const name = segmentName(n)
      if (n === pos.segment) copyFileSync(join(this.#dir, name), join(folder, name))
      else {
        closeSync(this.#fds.get(n)!)
        this.#fds.delete(n)
        this.#sizes.delete(n)
        renameSync(join(this.#dir, name), join(folder, name))
      }
      names.push(name)
    }
    syncDir(folder)
    syncDir(this.#dir)
    const segs = this.segments()
    this.#active = segs.length === 0 ? 0 : segs[segs.length - 1]!
    return names
  }

  /** Cuts the log at `pos`: the segment is truncated there (or removed if its header is bad) and later segments removed. */
  truncateAt(pos: LogPosition): void {
    let removed = false
    for (const n of this.segments()) {
      if (n < pos.segment) continue
      const fd = this.#fds.get(n)!
      if (n === pos.segment && pos.offset >= SEGMENT_HEADER_SIZE) {
        if (this.#sizes.get(n) !== pos.offset) {
          ftruncateSync(fd, pos.offset)
          fsyncSync(fd)
          this.#sizes.set(n, pos.offset)
        }
        continue
      }
      this.removeSegment(n)
      removed = true
    }
    if (removed) syncDir(this.#dir)
    const segs = this.segments()
    this.#active = segs.length === 0 ? 0 : segs[segs.length - 1]!
  }

  /**
   * Appends one record and returns its position; `data` is the record's data part. With
   * `background`, the bytes are written on the thread pool: the caller must not change `meta` or
   * `data` before `written` settles.
   */
  append(
    type: number,
    meta: Uint8Array,
    data: Uint8Array | undefined,
    options: { background: true; direct?: boolean; alignData?: number },
  ): BackgroundRecord
  append(type: number, meta: Uint8Array, data?: Uint8Array, options?: { background?: false }): LogRecord
  append(
    type: number,
    meta: Uint8Array,
    data?: Uint8Array,
    options: { background?: boolean; direct?: boolean; alignData?: number } = {},
  ): LogRecord | BackgroundRecord {
    if (this.#closed)
      throw new CairnError('ServiceUnavailable', 'Cannot write to the disk store: it is closed')
    if (this.#failure !== undefined) throw this.#failure
    const dataLength = data?.length ?? 0
    const direct =
      options.background === true &&
      options.direct === true &&
      !this.#noDirect &&
      dataLength >= DIRECT_MIN &&
      dataLength % ALIGN === 0
    // Data written directly starts on an ALIGN boundary of the file; `alignData` asks for a smaller
    // one (whole 512-byte pages in the file, so that an overwrite in place tears only between pages).
    const align = direct ? ALIGN : dataLength > 0 ? (options.alignData ?? 1) : 1
    const room = RECORD_HEADER_SIZE + meta.length + dataLength + align - 1
    if (this.#active === 0 || this.#sizes.get(this.#active)! + room > this.#segmentSize) {
      if (this.#active === 0 || this.#sizes.get(this.#active)! > SEGMENT_HEADER_SIZE) this.#roll()
    }
    if (align > 1) {
      // Zeros after the meta put the data on an `align` boundary of the file.
      const at = this.#sizes.get(this.#active)! + RECORD_HEADER_SIZE + meta.length
      const pad = (align - (at % align)) % align
      if (pad > 0) {
        const padded = Buffer.alloc(meta.length + pad)
        padded.set(meta)
        meta = padded
      }
    }
    const total = RECORD_HEADER_SIZE + meta.length + dataLength
    const head = recordHeader(type, meta, data)
    const n = this.#active
    const fd = this.#fds.get(n)!
    const pos = this.#sizes.get(n)!
    const parts = data !== undefined && dataLength > 0 ? [head, meta, data] : [head, meta]
    const record: LogRecord = {
      type,
      segment: n,
      offset: pos,
      dataOffset: pos + RECORD_HEADER_SIZE + meta.length,
      meta: Buffer.from(meta.buffer, meta.byteOffset, meta.length),
      dataLength,
      end: pos + total,
    }
    if (options.background === true) {
      // Before the log's end moves: nothing may throw between that and the write.
      const directFd = direct ? this.#directFd(n) : undefined
      // `written` settles once this record and every earlier one are in place: an answer given on
      // it (a write without FUA) can never be for a record a failure before it will cut away.
      const earlier = this.#pending.size > 0 ? [...this.#pending].map((p) => p.done) : undefined
      this.#sizes.set(n, pos + total)
      this.#dirty.add(n)
      const own =
        directFd === undefined
          ? this.#writeInBackground(fd, n, pos, parts, total)
          : this.#writeDirectInBackground(fd, directFd, n, pos, parts, total)
      if (earlier === undefined) return { ...record, written: own }
      const written = Promise.all([...earlier, own]).then(() => undefined)
      written.catch(() => {})
      return { ...record, written }
    }
    try {
      writeFully(fd, parts, pos, total)
    } catch (err) {
      try {
        ftruncateSync(fd, pos)
      } catch {}
      throw appendFailure(err)
    }
    this.#sizes.set(n, pos + total)
    this.#dirty.add(n)
    return record
  }

  #writeInBackground(fd: number, n: number, pos: number, parts: Uint8Array[], total: number): Promise<void> {
    const pending: PendingWrite = { segment: n, start: pos, end: pos + total, parts, done: Promise.resolve() }
    pending.done = new Promise<void>((resolve, reject) => {
      writev(fd, parts, pos, (err, written) => {
        try {
          if (err !== null) throw err
          // A short write: finish it here (rare; the rest is at most one record).
          if (written < total) writeFully(fd, parts, pos, total, written)
        } catch (e) {
          if (!pending.inPlace) {
            // The record stays pending so that reads still see what the store applied in memory.
            reject(this.#fail(e, pending))
            return
          }
        }
        this.#pending.delete(pending)
        resolve()
      })
    })
    // A failure is reported by the log from now on; callers that do not wait must not crash the process.
    pending.done.then(
      () => {
        pending.settled = true
      },
      () => {
        pending.settled = true
      },
    )
    this.#pending.add(pending)
    return pending.done
  }

  /**
   * The segment's O_DIRECT descriptor; undefined where none can be opened (from now on where the file
   * system refuses O_DIRECT; for this call only on other errors, such as too many open files): the
   * caller then goes through the cache.
   */
  #directFd(n: number): number | undefined {
    let fd = this.#directFds.get(n)
    if (fd !== undefined) return fd
    try {
      fd = openSync(join(this.#dir, segmentName(n)), constants.O_RDWR | constants.O_DIRECT)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EINVAL' || code === 'EOPNOTSUPP') this.#noDirect = true
      return undefined
    }
    this.#directFds.set(n, fd)
    return fd
  }

  /**
   * A background append whose data (`parts[2]`, on an ALIGN boundary of the file, a multiple of ALIGN
   * long) goes to the device directly, and whose header and meta go through the cache.
   */
  #writeDirectInBackground(
    fd: number,
    directFd: number,
    n: number,
    pos: number,
    parts: Uint8Array[],
    total: number,
  ): Promise<void> {
    const [head, meta, data] = parts as [Uint8Array, Uint8Array, Uint8Array]
    const dataAt = pos + head.length + meta.length
    const pending: PendingWrite = { segment: n, start: pos, end: pos + total, parts, done: Promise.resolve() }
    const write = (into: number, bufs: Uint8Array[], at: number) =>
      new Promise<number>((resolve, reject) =>
        writev(into, bufs, at, (err, written) => (err === null ? resolve(written) : reject(err))),
      )
    pending.done = (async () => {
      const stage = isAligned(data) ? undefined : takeStaging(data.length)
      stage?.set(data)
      try {
        const front = write(fd, [head, meta], pos)
        // Awaited below; a rejection must not go unhandled meanwhile should the data write fail first.
        front.catch(() => {})
        let back: number
        try {
          back = await write(directFd, [stage ? stage.subarray(0, data.length) : data], dataAt)
        } catch (err) {
          // A file system that opens O_DIRECT but refuses the write: through the cache from now on.
          if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
          this.#noDirect = true
          back = await write(fd, [data], dataAt)
        }
        const written = await front
        // A short write: finish it here (rare).
        if (written < head.length + meta.length)
          writeFully(fd, [head, meta], pos, head.length + meta.length, written)
        if (back < data.length) writeFully(fd, [data], dataAt, data.length, back)
      } catch (e) {
        // The record stays pending so that reads still see what the store applied in memory.
        if (!pending.inPlace) throw this.#fail(e, pending)
      } finally {
        if (stage) giveStaging(stage)
      }
      this.#pending.delete(pending)
    })()
    // A failure is reported by the log from now on; callers that do not wait must not crash the process.
    pending.done.then(
      () => {
        pending.settled = true
      },
      () => {
        pending.settled = true
      },
    )
    this.#pending.add(pending)
    return pending.done
  }

  /** Records a failed background write (the earliest one decides where `rewind` cuts); returns the log's error. */
  #fail(err: unknown, pending: PendingWrite): CairnError {
    const first = this.#failure === undefined
    this.#failure ??= appendFailure(err)
    const at = this.#failedAt
    if (
      at === undefined ||
      pending.segment < at.segment ||
      (pending.segment === at.segment && pending.start < at.offset)
    )
      this.#failedAt = { segment: pending.segment, offset: pending.start }
    if (first) this.onFailure?.(this.#failure)
    return this.#failure
  }

  /** The error that stopped the log, if a background write failed and `rewind()` has not run yet. */
  get failure(): CairnError | undefined {
    return this.#failure
  }

  /** Resolves once no background write and no group commit is running. */
  async settle(): Promise<void> {
    for (;;) {
      const running = [...this.#pending].filter((p) => !p.settled).map((p) => p.done)
      if (running.length === 0 && this.#rounds === 0) return
      await Promise.allSettled([...running, this.#round])
      await new Promise((r) => setImmediate(r))
    }
  }

  /**
   * After a failed background write, and once `settle()` resolved: cuts the log where the earliest
   * failed record starts (what reopening would do), forgets the failure and returns the cut, so that
   * appends work again. Records after the cut were never acknowledged as durable (every durable()
   * round since then failed). Returns undefined when the log has not failed.
   */
  rewind(): LogPosition | undefined {
    if (this.#failure === undefined) return undefined
    const cut = this.#failedAt!
    this.#pending.clear()
    this.truncateAt(cut)
    this.#failure = undefined
    this.#failedAt = undefined
    // The failed round is settled (the owner settled first) and cut away: a new round must not fail
    // with it, as it would by following the last round started.
    this.#lastSync = Promise.resolve()
    this.#lastRound = Promise.resolve()
    return cut
  }

  #roll(): void {
    // Records of the next segment must not reach the files before the background writes of this
    // one: a kill would leave a hole in a segment that is no longer the last, which reads as damage
    // (and a later record could outlive the one it follows).
    this.#writePendingNow()
    const n = this.#active + 1
    const name = join(this.#dir, segmentName(n))
    let fd: number
    try {
      fd = openSync(name, 'wx+')
    } catch (err) {
      throw appendFailure(err)
    }
    try {
      const h = segmentHeader(n)
      writeSync(fd, h, 0, SEGMENT_HEADER_SIZE, 0)
      fsyncSync(fd)
      syncDir(this.#dir)
    } catch (err) {
      // A full disk: the file goes again, so that the next roll can create it.
      closeSync(fd)
      try {
        unlinkSync(name)
      } catch {}
      throw appendFailure(err)
    }
    this.#fds.set(n, fd)
    this.#sizes.set(n, SEGMENT_HEADER_SIZE)
    this.#active = n
  }

  /** Starts a new segment for the next append (used by compaction so old segments stop growing). */
  rollNow(): void {
    if (this.#active === 0 || this.#sizes.get(this.#active)! > SEGMENT_HEADER_SIZE) this.#roll()
  }

  /** Copies `length` bytes at `offset` of segment `n` into `into` at `at`. */
  read(n: number, offset: number, into: Uint8Array, at: number, length: number): void {
    const fd = this.#fds.get(n)
    if (fd === undefined) {
      throw new CairnError('StoreCorrupt', `Cannot read from the disk store: segment ${n} is missing`)
    }
    const end = offset + length
    const overlapping: PendingWrite[] = []
    if (this.#pending.size > 0) {
      for (const p of this.#pending)
        if (p.segment === n && p.start < end && p.end > offset) overlapping.push(p)
    }
    if (overlapping.length === 0) {
      this.#readFile(fd, n, offset, into, at, length)
      return
    }
    // Bytes of writes still on their way come from memory, the rest from the file.
    overlapping.sort((a, b) => a.start - b.start)
    let pos = offset
    for (const p of overlapping) {
      if (p.start > pos) this.#readFile(fd, n, pos, into, at + (pos - offset), p.start - pos)
      const from = Math.max(pos, p.start)
      const to = Math.min(end, p.end)
      copyFromParts(p.parts, from - p.start, into, at + (from - offset), to - from)
      pos = to
    }
    if (pos < end) this.#readFile(fd, n, pos, into, at + (pos - offset), end - pos)
  }

  #readFile(fd: number, n: number, offset: number, into: Uint8Array, at: number, length: number): void {
    let done = 0
    while (done < length) {
      const r = readSync(fd, into, at + done, length - done, offset + done)
      if (r === 0) {
        throw new CairnError(
          'StoreCorrupt',
          `Cannot read from the disk store: segment ${n} ends before offset ${offset + length}`,
        )
      }
      done += r
    }
  }

  /**
   * Like `read`, but on the thread pool when the bytes are ones a direct append wrote (aligned in the
   * file, not still on their way): returns the read's completion, or null when it did the read at once.
   * The bytes are those at the instant of the call: log bytes never change in place, and a segment
   * removed meanwhile stays open until the read ends.
   */
  readLater(n: number, offset: number, into: Uint8Array, at: number, length: number): Promise<void> | null {
    const direct =
      length >= DIRECT_MIN && offset % ALIGN === 0 && length % ALIGN === 0 && !this.#noDirect
        ? (this.#directFds.get(n) ?? (this.#fds.has(n) ? this.#directFd(n) : undefined))
        : undefined
    let pending = false
    if (direct !== undefined && this.#pending.size > 0) {
      const end = offset + length
      for (const p of this.#pending) if (p.segment === n && p.start < end && p.end > offset) pending = true
    }
    if (direct === undefined || pending) {
      this.read(n, offset, into, at, length)
      return null
    }
    const target = into.subarray(at, at + length)
    const entry = { segment: n, done: Promise.resolve() }
    entry.done = (async () => {
      const stage = isAligned(target) ? undefined : takeStaging(Math.min(length, MAX_DATA))
      try {
        let done = 0
        while (done < length) {
          const want = stage ? Math.min(stage.length, length - done) : length - done
          const r = await new Promise<number>((resolve, reject) =>
            readCallback(direct, stage ?? target, stage ? 0 : done, want, offset + done, (err, got) =>
              err ? reject(err) : resolve(got),
            ),
          )
          if (r === 0) {
            throw new CairnError(
              'StoreCorrupt',
              `Cannot read from the disk store: segment ${n} ends before offset ${offset + length}`,
            )
          }
          stage?.copy(target, done, 0, r)
          done += r
        }
      } finally {
        if (stage) giveStaging(stage)
        this.#reads.delete(entry)
      }
    })()
    this.#reads.add(entry)
    return entry.done
  }

  /**
   * Whether bytes `start..end` of segment `n` may be overwritten in place now: the segment exists and
   * no append of the log is still writing them (its late write would put the old bytes back, and
   * reads would be served from its buffer).
   */
  canOverwrite(n: number, start: number, end: number): boolean {
    if (this.#closed || this.#failure !== undefined || !this.#fds.has(n)) return false
    if (end > this.#sizes.get(n)!) return false
    for (const p of this.#pending) if (p.segment === n && p.start < end && p.end > start) return false
    return true
  }

  /**
   * Overwrites bytes of a record already in the log, through the page cache, synchronously (check
   * `canOverwrite` first). The record's CRC no longer covers them: only records that no replay will
   * read again may be overwritten (the store allows it only before its older kept checkpoint). The
   * next `durable()` syncs the segment.
   */
  overwrite(n: number, offset: number, data: Uint8Array): void {
    const fd = this.#fds.get(n)
    if (fd === undefined || this.#failure !== undefined) {
      throw new CairnError('Internal', `Cannot overwrite segment ${n} of the disk store: it is not open`)
    }
    this.#dirty.add(n)
    try {
      writeFully(fd, [data], offset, data.length)
    } catch (err) {
      throw appendFailure(err)
    }
  }

  /** Resolves once every append made before the call is on stable storage. */
  durable(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    if (this.#dirty.size === 0 && this.#rounds === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject })
      this.#kick()
    })
  }

  #kick(): void {
    if (this.#rounds >= SYNC_ROUNDS || this.#waiters.length === 0) return
    this.#rounds++
    const batch = this.#waiters
    this.#waiters = []
    const segments = [...this.#dirty]
    this.#dirty.clear()
    // Every append made before these callers asked is either written or pending now.
    const writes = [...this.#pending].map((p) => p.done)
    const own = Promise.all(writes).then(() =>
      // A segment removed meanwhile needs no sync (its descriptor stays open until this round ends).
      Promise.all(
        segments
          .map((n) => this.#fds.get(n))
          .filter((fd) => fd !== undefined)
          .map(syncFd),
      ),
    )
    // A round may start while the one before still syncs (its fdatasync then follows at once, instead
    // of after the answers of the one before went out), but it ends only after that one: the earlier
    // round's appends are among what these callers were promised, and a failed fdatasync there fails
    // this round too (a later fdatasync does not prove that those bytes reached the disk).
    const before = this.#round
    const earlierSync = this.#lastSync
    const round = Promise.allSettled([own, earlierSync, this.#lastRound]).then(([mine, earlier]) => {
      if (mine.status === 'rejected') throw mine.reason
      if (earlier.status === 'rejected') throw earlier.reason
    })
    this.#lastSync = own
    own.catch(() => {})
    this.#lastRound = round
    this.#round = Promise.allSettled([before, round]).then(() => undefined)
    round.then(
      () => {
        this.#rounds--
        for (const w of batch) w.resolve()
        this.#kick()
      },
      (err) => {
        this.#rounds--
        const e =
          err instanceof CairnError
            ? err
            : new CairnError('Internal', `Cannot make disk store writes durable: ${err.message}`, {
                cause: err,
              })
        for (const w of batch) w.reject(e)
        this.#kick()
      },
    )
  }

  /** Fsyncs every dirty segment synchronously (checkpoint, close); background writes still on their way are written here too. */
  syncNow(): void {
    if (this.#failure !== undefined) throw this.#failure
    this.#writePendingNow()
    for (const n of this.#dirty) {
      const fd = this.#fds.get(n)
      if (fd !== undefined) fsyncSync(fd)
    }
    this.#dirty.clear()
  }

  /**
   * Writes the background writes still on their way synchronously (the same bytes at the same place:
   * harmless if they land as well). One that fails here stops the log as its own failure would.
   */
  #writePendingNow(): void {
    for (const p of this.#pending) {
      if (p.inPlace) continue
      const fd = this.#fds.get(p.segment)
      if (fd === undefined) continue
      try {
        writeFully(fd, p.parts, p.start, p.end - p.start)
      } catch (err) {
        throw this.#fail(err, p)
      }
      p.inPlace = true
    }
  }

  /** Deletes a segment file (after compaction moved its live data). */
  removeSegment(n: number): void {
    const fd = this.#fds.get(n)
    // A descriptor is closed only once no background write or fsync uses it (a reused number would
    // take their bytes).
    const writes = [...this.#pending, ...this.#reads].filter((p) => p.segment === n).map((p) => p.done)
    const directFd = this.#directFds.get(n)
    const closeAll = () => {
      if (fd !== undefined) closeSync(fd)
      if (directFd !== undefined) closeSync(directFd)
    }
    if (writes.length === 0 && this.#rounds === 0) closeAll()
    else void Promise.allSettled([...writes, this.#round]).then(closeAll)
    this.#fds.delete(n)
    this.#directFds.delete(n)
    this.#sizes.delete(n)
    this.#dirty.delete(n)
    try {
      unlinkSync(join(this.#dir, segmentName(n)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  /** Waits for pending syncs, then closes every file. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#pending, ...this.#reads].map((p) => p.done))
    await this.durable()
    this.syncNow()
    this.#closed = true
    for (const fd of this.#fds.values()) closeSync(fd)
    for (const fd of this.#directFds.values()) closeSync(fd)
    this.#fds.clear()
    this.#directFds.clear()
  }
}

/** Writes `parts` (`total` bytes) at `pos`, from byte `from` on, however short the system calls. */
function writeFully(fd: number, parts: Uint8Array[], pos: number, total: number, from = 0): void {
  let written = from === 0 ? writevSync(fd, parts, pos) : from
  if (written >= total) return
  const all = Buffer.concat(parts)
  while (written < total) written += writeSync(fd, all, written, total - written, pos + written)
}

/** Copies `length` bytes from byte `from` of the concatenation of `parts` into `into` at `at`. */
function copyFromParts(
  parts: Uint8Array[],
  from: number,
  into: Uint8Array,
  at: number,
  length: number,
): void {
  let skip = from
  let left = length
  let to = at
  for (const part of parts) {
    if (left === 0) break
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    const n = Math.min(part.length - skip, left)
    into.set(part.subarray(skip, skip + n), to)
    to += n
    left -= n
    skip = 0
  }
}

function appendFailure(err: unknown): CairnError {
  if (err instanceof CairnError) return err
  const code = (err as NodeJS.ErrnoException).code
  return new CairnError(
    code === 'ENOSPC' || code === 'EDQUOT' ? 'StoreFull' : 'Internal',
    `Cannot append to the disk store log: ${(err as Error).message}`,
    { cause: err },
  )
}

/** Fsyncs a directory so created, renamed and removed names in it are durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
