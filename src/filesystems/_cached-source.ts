import { CairnError } from '../util/index.js'
import { corrupt } from './_errors.js'
import type { BlockSource } from './types.js'

const PAGE = 64 * 1024
/** One source read never asks for more than this, so a slow source still answers in pieces. */
const MAX_RUN = 4 * 1024 * 1024

/**
 * A window of a BlockSource (one volume) with bounds checks and a page cache for metadata: reads are
 * rounded to 64 KiB pages, neighbouring missing pages are fetched in one source read (up to 4 MiB), and
 * concurrent readers of one page share its fetch. File data goes through `readDirect`, uncached.
 */
export class CachedSource {
  readonly size: number
  readonly #src: BlockSource
  readonly #base: number
  readonly #maxPages: number
  readonly #pages = new Map<number, Buffer>()
  readonly #pending = new Map<number, Promise<Buffer>>()

  constructor(src: BlockSource, base: number, size: number, options: { cacheBytes?: number } = {}) {
    this.#src = src
    this.#base = base
    this.size = size
    this.#maxPages = Math.max(16, Math.floor((options.cacheBytes ?? 32 * 1024 * 1024) / PAGE))
  }

  /** Throws FileSystemCorrupt when a range does not lie inside the volume. */
  check(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw corrupt(`Cannot read ${what}: the offset ${offset} or length ${length} is not valid`)
    }
    if (offset + length > this.size) {
      throw corrupt(
        `Cannot read ${what}: bytes ${offset}-${offset + length} lie past the end of the volume (${this.size} bytes)`,
      )
    }
  }

  /** Bytes through the page cache (metadata). */
  async read(offset: number, length: number, what = 'metadata'): Promise<Buffer> {
    this.check(offset, length, what)
    if (length === 0) return Buffer.alloc(0)
    const first = Math.floor(offset / PAGE)
    const last = Math.floor((offset + length - 1) / PAGE)
    if (last - first + 1 > this.#maxPages / 2) return this.readDirect(offset, length, what)
    await this.#load(first, last)
    if (first === last) {
      const page = this.#page(first)
      const at = offset - first * PAGE
      return page.subarray(at, at + length)
    }
    const out = Buffer.allocUnsafe(length)
    for (let p = first; p <= last; p++) {
      const page = this.#page(p)
      const pageStart = p * PAGE
      const from = Math.max(offset, pageStart)
      const to = Math.min(offset + length, pageStart + page.length)
      page.copy(out, from - offset, from - pageStart, to - pageStart)
    }
    return out
  }

  /** The bytes when the cache holds them all inside one page (no await), else undefined. */
  cached(offset: number, length: number): Buffer | undefined {
    const p = Math.floor(offset / PAGE)
    if (
      offset < 0 ||
      length <= 0 ||
      offset + length > this.size ||
      Math.floor((offset + length - 1) / PAGE) !== p
    )
      return undefined
    const page = this.#pages.get(p)
    if (page === undefined) return undefined
    const at = offset - p * PAGE
    return page.subarray(at, at + length)
  }

  /** Loads the pages of several ranges at once, merging neighbours into big reads. */
  async prefetch(ranges: Array<{ offset: number; length: number }>): Promise<void> {
    const pages = new Set<number>()
    for (const r of ranges) {
      if (r.length <= 0 || r.offset < 0 || r.offset + r.length > this.size) continue
      for (let p = Math.floor(r.offset / PAGE); p <= Math.floor((r.offset + r.length - 1) / PAGE); p++)
        pages.add(p)
    }
    const sorted = [...pages].sort((a, b) => a - b)
    const runs: Array<[number, number]> = []
    for (const p of sorted) {
      const run = runs.at(-1)
      if (run && run[1] === p - 1 && (p - run[0] + 1) * PAGE <= MAX_RUN) run[1] = p
      else runs.push([p, p])
    }
    await Promise.all(runs.map(([a, b]) => this.#load(a, b)))
  }

  /**
   * Bytes straight from the source (file data), bounds-checked; with `into` (at least `length` bytes)
   * they are read there, in place, and `into` is answered.
   */
  async readDirect(offset: number, length: number, what = 'file data', into?: Buffer): Promise<Buffer> {
    this.check(offset, length, what)
    if (length === 0) return into?.subarray(0, 0) ?? Buffer.alloc(0)
    const out = into ?? Buffer.allocUnsafe(length)
    for (let done = 0; done < length; ) {
      const n = Math.min(MAX_RUN * 4, length - done)
      await this.#sourceRead(offset + done, n, out.subarray(done, done + n))
      done += n
    }
    return out.length === length ? out : out.subarray(0, length)
  }

  #page(p: number): Buffer {
    const page = this.#pages.get(p)
    if (page === undefined) throw new Error(`page ${p} vanished from the cache`)
    return page
  }

  async #load(first: number, last: number): Promise<void> {
    const waits: Promise<unknown>[] = []
    let runStart = -1
    const flush = (end: number) => {
      if (runStart < 0) return
      for (let a = runStart; a <= end; a += MAX_RUN / PAGE)
        waits.push(this.#fetch(a, Math.min(end, a + MAX_RUN / PAGE - 1)))
      runStart = -1
    }
    for (let p = first; p <= last; p++) {
      const hit = this.#pages.get(p)
      if (hit !== undefined) {
        this.#pages.delete(p)
        this.#pages.set(p, hit)
        flush(p - 1)
        continue
      }
      const pending = this.#pending.get(p)
      if (pending !== undefined) {
        flush(p - 1)
        waits.push(pending)
        continue
      }
      if (runStart < 0) runStart = p
    }
    flush(last)
    await Promise.all(waits)
    // A page evicted between its fetch and now (a burst larger than the cache) is loaded again.
    for (let p = first; p <= last; p++) if (!this.#pages.has(p)) await this.#fetch(p, p)
  }

  #fetch(first: number, last: number): Promise<Buffer> {
    const start = first * PAGE
    const end = Math.min(this.size, (last + 1) * PAGE)
    const job = this.#sourceRead(start, end - start).then(
      (buf) => {
        for (let p = first; p <= last; p++) {
          this.#pending.delete(p)
          this.#pages.set(p, buf.subarray((p - first) * PAGE, Math.min(buf.length, (p - first + 1) * PAGE)))
        }
        while (this.#pages.size > this.#maxPages) {
          const oldest = this.#pages.keys().next().value as number
          this.#pages.delete(oldest)
        }
        return buf
      },
      (err: unknown) => {
        for (let p = first; p <= last; p++) this.#pending.delete(p)
        throw err
      },
    )
    for (let p = first; p <= last; p++) this.#pending.set(p, job)
    return job
  }

  /** Bytes from the source; with `into`, they end up there (copied when the source answered elsewhere). */
  async #sourceRead(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = await this.#src.read(this.#base + offset, length, into)
    if (buf.length < length) {
      throw new CairnError(
        'IoError',
        `Cannot read bytes ${this.#base + offset}-${this.#base + offset + length} of the disk: the source returned ${buf.length} bytes`,
      )
    }
    if (into === undefined) return buf.length === length ? buf : buf.subarray(0, length)
    if (buf.buffer !== into.buffer || buf.byteOffset !== into.byteOffset) buf.copy(into, 0, 0, length)
    return into
  }
}
