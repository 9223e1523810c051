import { type DiskRef, type DiskStore, MAX_WRITE_SIZE, PAGE_SIZE } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type { RangeLock } from './_range-lock.js'
import type { BlockExtent, NbdExport, WriteOptions } from './export-provider.js'

/** The part of the disk store the NBD exports use. */
export type NbdDiskStore = Pick<
  DiskStore,
  | 'read'
  | 'writePages'
  | 'clearPages'
  | 'pageRanges'
  | 'flush'
  | 'getDisk'
  | 'listDisks'
  | 'listContainers'
  | 'listAccounts'
>

/** Zeros handed to the store for provisioned zeroing; never written to. */
const ZEROS = Buffer.alloc(MAX_WRITE_SIZE)

const down = (n: number) => n - (n % PAGE_SIZE)
const up = (n: number) => down(n + PAGE_SIZE - 1)

/**
 * A disk or snapshot of the disk store as an NBD export. The store takes page-aligned writes of at
 * most 4 MiB: larger writes are split, and unaligned edges are read, merged and written back while
 * their pages are held in the disk's RangeLock (shared by every connection to the disk). Aligned
 * writes wait only for held ranges they overlap; the store applies them in memory when called.
 */
export class DiskExport implements NbdExport {
  readonly name: string
  readonly description: string
  readonly size: number
  readonly readOnly: boolean
  readonly #store: NbdDiskStore
  readonly #ref: DiskRef
  readonly #snapshot: string | undefined
  readonly #lock: RangeLock
  readonly #onClose: () => void
  #closed = false

  constructor(
    store: NbdDiskStore,
    target: {
      name: string
      description: string
      ref: DiskRef
      snapshot?: string
      size: number
      readOnly: boolean
    },
    lock: RangeLock,
    onClose: () => void,
  ) {
    this.#store = store
    this.name = target.name
    this.description = target.description
    this.size = target.size
    this.#ref = target.ref
    this.#snapshot = target.snapshot
    this.readOnly = target.readOnly
    this.#lock = lock
    this.#onClose = onClose
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.#store.read(this.#ref, offset, length, { snapshot: this.#snapshot, into })
  }

  async write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    this.#mutable('write')
    const end = offset + data.length
    if (offset % PAGE_SIZE === 0 && end % PAGE_SIZE === 0) {
      if (this.#lock.blocker(offset, end) === undefined) return this.#writeAligned(offset, data, options.fua)
      return this.#lock.whenFree(offset, end, () => this.#writeAligned(offset, data, options.fua))
    }
    const start = down(offset)
    const stop = up(end)
    const release = await this.#lock.acquire(start, stop)
    let written: Promise<void>
    try {
      const merged = Buffer.allocUnsafe(stop - start)
      const lastPage = stop - PAGE_SIZE
      const edges: Promise<void>[] = []
      if (offset > start) edges.push(this.#readInto(merged, start, start))
      if (end < stop && (lastPage > start || offset === start))
        edges.push(this.#readInto(merged, start, lastPage))
      await Promise.all(edges)
      data.copy(merged, offset - start)
      written = this.#writeAligned(start, merged, options.fua)
    } finally {
      release()
    }
    await written
  }

  flush(): Promise<void> {
    return this.#store.flush()
  }

  async trim(offset: number, length: number, options: WriteOptions): Promise<void> {
    this.#mutable('trim')
    // Only whole pages can be discarded; NBD lets the server shrink a trim to them.
    const start = up(offset)
    const end = down(offset + length)
    if (start >= end) return
    await this.#clear(start, end, options.fua)
  }

  async writeZeroes(
    offset: number,
    length: number,
    options: WriteOptions & { mayTrim: boolean },
  ): Promise<void> {
    this.#mutable('zero')
    const end = offset + length
    const start = up(offset)
    const stop = down(end)
    if (start >= stop) return this.write(offset, Buffer.alloc(length), options)
    const parts: Promise<void>[] = []
    if (offset < start) parts.push(this.write(offset, Buffer.alloc(start - offset), options))
    if (stop < end) parts.push(this.write(stop, Buffer.alloc(end - stop), options))
    if (options.mayTrim) {
      parts.push(this.#clear(start, stop, options.fua))
    } else {
      parts.push(
        this.#lock.whenFree(start, stop, () => {
          const writes: Promise<unknown>[] = []
          for (let at = start; at < stop; at += MAX_WRITE_SIZE) {
            const n = Math.min(MAX_WRITE_SIZE, stop - at)
            writes.push(this.#store.writePages(this.#ref, at, ZEROS.subarray(0, n), { durable: options.fua }))
          }
          return Promise.all(writes).then(() => undefined)
        }),
      )
    }
    await Promise.all(parts)
  }

  blockStatus(offset: number, length: number, maxExtents: number): BlockExtent[] {
    const end = Math.min(offset + length, this.size)
    const from = down(offset)
    const ranges = this.#store.pageRanges(this.#ref, {
      snapshot: this.#snapshot,
      offset: from,
      length: Math.min(up(end), this.size) - from,
    })
    const extents: BlockExtent[] = []
    /** Adds a run, merged with the last one when alike; false once the list is full. */
    const add = (length: number, hole: boolean): boolean => {
      const last = extents[extents.length - 1]
      if (last !== undefined && last.hole === hole) last.length += length
      else if (extents.length >= maxExtents) return false
      else extents.push({ length, hole, zero: hole })
      return true
    }
    let pos = offset
    for (const r of ranges) {
      const s = Math.max(r.start, pos)
      const e = Math.min(r.end, end)
      if (e <= s) continue
      if (s > pos && !add(s - pos, true)) return extents
      if (!add(e - s, false)) return extents
      pos = e
    }
    if (pos < end) add(end - pos, true)
    return extents
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
  }

  #mutable(what: string): void {
    if (this.readOnly) {
      const why = this.#snapshot === undefined ? 'it is an incremental copy' : 'snapshots are read-only'
      throw new CairnError('SnapshotIsReadOnly', `Cannot ${what} export "${this.name}": ${why}`)
    }
  }

  async #readInto(target: Buffer, base: number, page: number): Promise<void> {
    const bytes = await this.#store.read(this.#ref, page, PAGE_SIZE)
    bytes.copy(target, page - base)
  }

  /** Starts the page writes at once (the store applies them when called) and waits for all. */
  #writeAligned(offset: number, data: Buffer, durable: boolean): Promise<void> {
    const writes: Promise<unknown>[] = []
    try {
      for (let at = 0; at < data.length; at += MAX_WRITE_SIZE) {
        const piece = data.subarray(at, Math.min(at + MAX_WRITE_SIZE, data.length))
        writes.push(this.#store.writePages(this.#ref, offset + at, piece, { durable }))
      }
    } catch (err) {
      writes.push(Promise.reject(err))
    }
    return Promise.all(writes).then(() => undefined)
  }

  async #clear(start: number, end: number, durable: boolean): Promise<void> {
    await this.#lock.whenFree(start, end, () =>
      this.#store.clearPages(this.#ref, start, end - start, { durable }),
    )
  }
}
