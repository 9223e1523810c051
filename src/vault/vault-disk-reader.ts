import { CairnError } from '../util/index.js'
import type { VaultCore } from './_core.js'
import { type Extent, LEAF_SPAN, leafAt, type PageStore } from './_disk-tree.js'
import type { ByteRange, RecoveryPoint } from './types.js'

/** Options of Vault.openDiskReader. */
export interface DiskReaderOptions {
  /** Bytes of opened chunks kept for later reads (default 64 MiB): the reader's memory bound. */
  cacheBytes?: number
  /** Bytes read ahead of a sequential reader (default 8 MiB; 0: none). */
  readAhead?: number
}

/** Decoded index leaves kept (each covers 16 MiB of disk; a leaf is at most ~16 KiB of extents). */
const LEAVES_KEPT = 256

/**
 * Random access to one disk of a vault recovery point, without restoring it: each read finds its
 * extents in the point's index tree (leaves cached), reads and opens the chunks (an LRU cache bounded
 * in bytes, one read per chunk however many readers want it) and copies the bytes out; what no extent
 * covers reads as zeros and `ranges` leaves it out (holes). A sequential reader gets the chunks ahead
 * of it read in parallel.
 */
export class VaultDiskReader {
  readonly size: number
  readonly #core: VaultCore
  readonly #pages: PageStore
  readonly #tree: { root: Buffer | null; depth: number }
  readonly #what: string
  readonly #leaves = new Map<number, Promise<Extent[]>>()
  readonly #chunks = new Map<string, Buffer>()
  readonly #loading = new Map<string, Promise<Buffer>>()
  readonly #cacheBytes: number
  readonly #readAhead: number
  #cached = 0
  #lastEnd = -1
  #aheadTo = 0
  #closed = false

  constructor(core: VaultCore, rp: RecoveryPoint, diskName: string, options: DiskReaderOptions = {}) {
    const disk = rp.disks.find((d) => d.name === diskName)
    if (!disk) {
      throw new CairnError(
        'RecoveryPointDiskNotFound',
        `Cannot read disk "${diskName}": recovery point "${rp.id}" holds ${rp.disks.map((d) => `"${d.name}"`).join(', ') || 'no disks'}`,
      )
    }
    this.size = disk.size
    this.#core = core
    this.#what = `Cannot read disk "${diskName}" of recovery point "${rp.id}"`
    this.#pages = core.pageStore(undefined, this.#what)
    this.#tree = { root: disk.root ? Buffer.from(disk.root, 'hex') : null, depth: disk.depth }
    this.#cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024
    this.#readAhead = options.readAhead ?? 8 * 1024 * 1024
  }

  /** Bytes `[offset, offset + length)`; holes read as zeros. With `into`, the bytes go there. */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.#check(offset, length)
    const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length)
    const end = offset + length
    const parts = await this.#extents(offset, end)
    const chunks = await Promise.all(parts.map((e) => this.#chunk(e.id)))
    let pos = offset
    for (let i = 0; i < parts.length; i++) {
      const e = parts[i]!
      const plain = chunks[i]!
      if (e.chunkOffset + e.length > plain.length) {
        throw new CairnError(
          'VaultCorrupt',
          `${this.#what}: the extent at offset ${e.start} reaches past its chunk`,
        )
      }
      if (e.start > pos) out.fill(0, pos - offset, e.start - offset)
      plain.copy(out, e.start - offset, e.chunkOffset, e.chunkOffset + e.length)
      pos = e.start + e.length
    }
    if (pos < end) out.fill(0, pos - offset, length)
    if (offset === this.#lastEnd || offset === 0) this.#ahead(end)
    else this.#aheadTo = 0
    this.#lastEnd = end
    return out
  }

  /** The ranges inside `[offset, offset + length)` that hold data (merged); the rest are holes. */
  async ranges(offset: number, length: number): Promise<ByteRange[]> {
    this.#check(offset, length)
    const out: ByteRange[] = []
    for (const e of await this.#extents(offset, offset + length)) {
      const last = out[out.length - 1]
      if (last && last.end === e.start) last.end = e.start + e.length
      else out.push({ start: e.start, end: e.start + e.length })
    }
    return out
  }

  /** Drops the caches; later reads fail. */
  async close(): Promise<void> {
    this.#closed = true
    this.#chunks.clear()
    this.#leaves.clear()
    this.#cached = 0
  }

  #check(offset: number, length: number): void {
    if (this.#closed) throw new CairnError('Internal', `${this.#what}: the reader is closed`)
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError(
        'InvalidRequest',
        `${this.#what}: bytes ${offset}-${offset + length} are outside the disk (${this.size} bytes)`,
      )
    }
  }

  /** The extents inside `[start, end)`, clipped to it, in disk order. */
  async #extents(start: number, end: number): Promise<Extent[]> {
    const out: Extent[] = []
    for (let leaf = Math.floor(start / LEAF_SPAN) * LEAF_SPAN; leaf < end; leaf += LEAF_SPAN) {
      for (const e of await this.#leaf(leaf)) {
        const s = Math.max(e.start, start)
        const t = Math.min(e.start + e.length, end)
        if (t <= s) continue
        out.push({ start: s, length: t - s, chunkOffset: e.chunkOffset + (s - e.start), id: e.id })
      }
    }
    return out
  }

  #leaf(leafStart: number): Promise<Extent[]> {
    let p = this.#leaves.get(leafStart)
    if (p) {
      this.#leaves.delete(leafStart)
      this.#leaves.set(leafStart, p)
      return p
    }
    p = leafAt(this.#pages, this.#tree, leafStart)
    p.catch(() => this.#leaves.delete(leafStart))
    this.#leaves.set(leafStart, p)
    if (this.#leaves.size > LEAVES_KEPT) this.#leaves.delete(this.#leaves.keys().next().value!)
    return p
  }

  /** An opened chunk, from the cache or read once however many ask at the same time. */
  #chunk(id: Buffer): Promise<Buffer> {
    const k = id.toString('latin1')
    const hit = this.#chunks.get(k)
    if (hit) {
      this.#chunks.delete(k)
      this.#chunks.set(k, hit)
      return Promise.resolve(hit)
    }
    const loading = this.#loading.get(k)
    if (loading) return loading
    const p = this.#core.readChunk(id, this.#what).then(
      (plain) => {
        this.#loading.delete(k)
        if (!this.#closed) this.#keep(k, plain)
        return plain
      },
      (err: unknown) => {
        this.#loading.delete(k)
        throw err
      },
    )
    this.#loading.set(k, p)
    return p
  }

  #keep(k: string, plain: Buffer): void {
    if (plain.length > this.#cacheBytes) return
    this.#chunks.set(k, plain)
    this.#cached += plain.length
    while (this.#cached > this.#cacheBytes) {
      const [oldest, buf] = this.#chunks.entries().next().value as [string, Buffer]
      this.#chunks.delete(oldest)
      this.#cached -= buf.length
    }
  }

  /** Starts reading the chunks after `end` (sequential readers), up to readAhead bytes ahead. */
  #ahead(end: number): void {
    if (this.#readAhead <= 0 || end >= this.size) return
    const to = Math.min(this.size, end + this.#readAhead)
    const from = Math.max(end, this.#aheadTo)
    // Half the window left: top it up (fewer, larger prefetches).
    if (to - from < this.#readAhead / 2) return
    this.#aheadTo = to
    void this.#extents(from, to)
      .then((parts) => {
        // Bounded by the cache: prefetching more than it holds would evict what is read next.
        let bytes = this.#loading.size * this.#core.config.chunkSize
        for (const e of parts) {
          if (bytes > this.#cacheBytes / 2) break
          const k = e.id.toString('latin1')
          if (this.#chunks.has(k) || this.#loading.has(k)) continue
          bytes += e.length
          this.#chunk(e.id).catch(() => {})
        }
      })
      .catch(() => {})
  }
}
