// The disk store's watch over its file system: it refuses growth before the disk is full, keeps a
// reserve file whose space deletes, compaction and checkpoints may take when it is, logs each episode
// once, and notices on its own when space returns.
//
// Why a reserve file: deleting a disk or snapshot appends a small record, and compaction (which is
// what frees the space) writes a checkpoint before it removes segments. On a file system filled to
// the brim by anyone (other files, another program) neither could run, and the store would stay full
// for good. `DATA/disks/reserve` holds real blocks (zeros written, not a sparse file); when an append
// that frees space finds no room, the file goes, and it is written again once space has returned.

import { closeSync, fsyncSync, openSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { CairnError, type Logger } from '../util/index.js'
import type { StoreHealth } from './types.js'

const MiB = 1024 * 1024
/** How often the free space is measured while the store is full (and at most how stale it gets otherwise). */
const FULL_CHECK_MS = 1000
const CHECK_MS = 5000

/** Options of SpaceGuard. */
export interface SpaceGuardOptions {
  logger: Logger
  /** Bytes of the reserve file (default 16 MiB; 0: none). */
  reserveBytes?: number
  /** Free bytes under which a warning is logged (default: 5 % of the file system, at least 4 × the reserve). */
  lowBytes?: number
}

/** Free space accounting of the store's folder. */
export class SpaceGuard {
  readonly #dir: string
  readonly #path: string
  readonly #logger: Logger
  readonly #reserveTarget: number
  readonly #lowOption: number | undefined
  #free = Number.POSITIVE_INFINITY
  #total = 0
  #checkedAt = 0
  /** Bytes appended since the last measurement. */
  #usedSince = 0
  #reserveHeld = 0
  #checkpointBytes = 0
  #full: { since: number; message: string } | undefined
  #low = false
  #lowBytes = 0
  #timer: NodeJS.Timeout | undefined

  constructor(dir: string, options: SpaceGuardOptions) {
    this.#dir = dir
    this.#path = join(dir, 'reserve')
    this.#logger = options.logger
    this.#reserveTarget = Math.max(0, options.reserveBytes ?? 16 * MiB)
    this.#lowOption = options.lowBytes
  }

  /** Measures the file system and writes the reserve file when it is missing and there is room. */
  start(): void {
    try {
      this.#reserveHeld = this.#reserveFileSize()
    } catch {}
    this.refresh()
    // Full already (a restart on a full disk): say so from the start.
    if (Number.isFinite(this.#free) && this.#free < this.#margin)
      this.#enterFull(`only ${this.#free} bytes are free`)
    this.#fillReserve()
  }

  /** Free bytes growth may not take: a checkpoint and a few records need them. */
  get #margin(): number {
    return MiB + 2 * this.#checkpointBytes
  }

  /** The size of the last checkpoint (the next one needs about as much). */
  noteCheckpoint(bytes: number): void {
    this.#checkpointBytes = bytes
  }

  /** Measures the free space again; ends a full episode when there is room. */
  refresh(): void {
    let s: ReturnType<typeof statfsSync>
    try {
      s = statfsSync(this.#dir)
    } catch {
      return
    }
    this.#free = s.bavail * s.bsize
    this.#total = s.blocks * s.bsize
    this.#checkedAt = Date.now()
    this.#usedSince = 0
    const low = this.#lowOption ?? Math.max(4 * (this.#reserveTarget + this.#margin), this.#total * 0.05)
    this.#lowBytes = low
    if (!this.#low && this.#free < low) {
      this.#low = true
      this.#logger.warn('disk store file system is nearly full', {
        dir: this.#dir,
        freeBytes: this.#free,
        totalBytes: this.#total,
      })
    } else if (this.#low && this.#free > low * 1.2) {
      this.#low = false
    }
    // A reserve given away while the disk was short comes back once there is room for it.
    if (this.#full === undefined && this.#reserveHeld < this.#reserveTarget) this.#fillReserve()
    if (
      this.#full !== undefined &&
      this.#free >= 2 * this.#margin + (this.#reserveTarget - this.#reserveHeld)
    ) {
      const ms = Date.now() - this.#full.since
      this.#full = undefined
      this.#stopTimer()
      this.#fillReserve()
      this.#logger.info('disk store has space again: writes resume', {
        dir: this.#dir,
        freeBytes: this.#free,
        fullForMs: ms,
      })
    }
  }

  /** The free bytes as last measured, less what was appended since. */
  #estimate(): number {
    return this.#free - this.#usedSince
  }

  /**
   * Throws StoreFull unless `bytes` more fit while leaving the margin (growth: writes, new disks,
   * snapshots). While the store is full every call measures again at most once a second.
   */
  admit(bytes: number, what: string): void {
    const now = Date.now()
    if (
      this.#estimate() - bytes < 2 * this.#margin ||
      (!this.#low && this.#estimate() - bytes < this.#lowBytes) ||
      now - this.#checkedAt > (this.#full !== undefined ? FULL_CHECK_MS : CHECK_MS)
    ) {
      this.refresh()
    }
    if (this.#full === undefined && this.#estimate() - bytes < this.#margin) {
      this.#enterFull(`only ${this.#estimate()} bytes are free`)
    }
    if (this.#full !== undefined) {
      throw new CairnError(
        'StoreFull',
        `Cannot ${what}: the disk store's file system is full (${this.#full.message}); delete disks or snapshots, or free space on ${this.#dir}`,
      )
    }
    this.#usedSince += bytes
  }

  /**
   * Makes room for an append that frees space (a delete, compaction, a checkpoint): the reserve file
   * goes when the free space would not hold `bytes`.
   */
  makeRoom(bytes: number): void {
    if (this.#estimate() - bytes < this.#margin) this.refresh()
    if (this.#estimate() - bytes < MiB / 4) this.releaseReserve()
    this.#usedSince += bytes
  }

  /** Removes the reserve file (its space goes to the append that needs it); true when there was one. */
  releaseReserve(): boolean {
    if (this.#reserveHeld === 0) return false
    try {
      unlinkSync(this.#path)
    } catch {}
    this.#logger.warn('disk store released its reserve space', { dir: this.#dir, bytes: this.#reserveHeld })
    this.#reserveHeld = 0
    this.refresh()
    return true
  }

  /** An append failed for want of space: the store is full until measurements say otherwise. */
  failed(err: CairnError): void {
    this.#usedSince = Number.POSITIVE_INFINITY
    this.#enterFull(err.message)
  }

  #enterFull(message: string): void {
    if (this.#full !== undefined) return
    this.#full = { since: Date.now(), message }
    // Once per episode: it ends when space returns.
    this.#logger.error('disk store is full: writes are refused until space returns', {
      dir: this.#dir,
      freeBytes: Number.isFinite(this.#free) ? this.#free : undefined,
      error: message,
    })
    this.#timer = setInterval(() => this.refresh(), FULL_CHECK_MS)
    this.#timer.unref()
  }

  /** True while an episode lasts. */
  get full(): boolean {
    return this.#full !== undefined
  }

  /** True when the free space is below the warning level. */
  get low(): boolean {
    return this.#low
  }

  /** What `cairn status` shows. */
  health(): StoreHealth {
    if (Date.now() - this.#checkedAt > FULL_CHECK_MS) this.refresh()
    const h: StoreHealth = {
      state: this.#full !== undefined ? 'full' : this.#low ? 'low' : 'ok',
      freeBytes: Number.isFinite(this.#free) ? this.#free : 0,
      totalBytes: this.#total,
      reserveBytes: this.#reserveHeld,
    }
    if (this.#full !== undefined) {
      h.since = new Date(this.#full.since).toISOString()
      h.message = this.#full.message
    }
    return h
  }

  close(): void {
    this.#stopTimer()
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  #reserveFileSize(): number {
    return statSync(this.#path).size
  }

  /** Writes the reserve file (real blocks) when it is short and the space is there. */
  #fillReserve(): void {
    const want = this.#reserveTarget - this.#reserveHeld
    if (want <= 0 || this.#estimate() - want < 4 * this.#margin) return
    const chunk = Buffer.alloc(Math.min(MiB, this.#reserveTarget))
    let fd: number | undefined
    try {
      fd = openSync(this.#path, 'w')
      for (let at = 0; at < this.#reserveTarget; at += chunk.length) {
        writeSync(fd, chunk, 0, Math.min(chunk.length, this.#reserveTarget - at), at)
      }
      fsyncSync(fd)
      this.#reserveHeld = this.#reserveTarget
    } catch {
      this.#reserveHeld = 0
      try {
        unlinkSync(this.#path)
      } catch {}
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
    this.#usedSince += want
  }
}
