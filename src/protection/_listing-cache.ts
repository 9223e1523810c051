import type { FileSystem } from '../filesystems/index.js'

/** Entries encoded together: a page of any start and size slices one or two of these. */
const CHUNK = 1024

/** Entries of one chunk as JSON, each followed by a comma; `offsets[i]` is where entry i starts. */
interface Encoded {
  bytes: Buffer
  offsets: Uint32Array
}

interface Listing {
  total: number
  chunks: Map<number, Promise<Encoded>>
  bytes: number
}

/** A page of a directory listing: its entries as one JSON array, ready to send. */
export interface EncodedPage {
  /** `[{…},{…}]`: the entries of the page, in name order, symlink targets filled in. */
  json: Buffer
  count: number
  total: number
  next?: number
}

/**
 * Directory listings of recovery points kept as JSON bytes, so a warm page is a slice of bytes encoded
 * once (no entry objects, no JSON.stringify, no UTF-8 encoding per request). A point never changes, so
 * a listing stays true for as long as the point can be opened; the cache holds at most `maxBytes`
 * (least recently used listings leave first).
 */
export class ListingCache {
  readonly #maxBytes: number
  readonly #listings = new Map<string, Listing>()
  #bytes = 0

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  /** Entries `[start, start + limit)` of the directory `path` of `fs`, `key` naming that directory. */
  async page(key: string, fs: FileSystem, path: string, start: number, limit: number): Promise<EncodedPage> {
    let listing = this.#listings.get(key)
    if (listing === undefined) {
      // Lists nothing but checks the path is a directory and learns its size.
      const { total } = await fs.list(path, { start: 0, limit: 0 })
      listing = this.#listings.get(key) ?? { total, chunks: new Map(), bytes: 0 }
      this.#listings.set(key, listing)
    } else {
      this.#listings.delete(key)
      this.#listings.set(key, listing)
    }
    const end = Math.min(listing.total, start + limit)
    const parts: Buffer[] = [OPEN]
    for (let c = Math.floor(start / CHUNK); c * CHUNK < end; c++) {
      const chunk = await this.#chunk(key, listing, fs, path, c)
      const from = Math.max(start, c * CHUNK) - c * CHUNK
      const to = Math.min(end, (c + 1) * CHUNK) - c * CHUNK
      parts.push(chunk.bytes.subarray(chunk.offsets[from]!, chunk.offsets[to]!))
    }
    const json = Buffer.concat(parts)
    // The last entry's comma becomes the closing bracket.
    if (json.length > 1) json[json.length - 1] = CLOSE
    const count = Math.max(0, end - start)
    const out: EncodedPage = { json: json.length > 1 ? json : EMPTY, count, total: listing.total }
    if (end < listing.total) out.next = end
    return out
  }

  #chunk(key: string, listing: Listing, fs: FileSystem, path: string, c: number): Promise<Encoded> {
    const known = listing.chunks.get(c)
    if (known !== undefined) return known
    const job = (async () => {
      const { entries } = await fs.list(path, { start: c * CHUNK, limit: CHUNK })
      // Listings name each symlink's target, as `ls -l` does.
      for (const e of entries)
        if (e.type === 'symlink' && e.target === undefined) e.target = await fs.readlink(e.path)
      const texts = entries.map((e) => `${JSON.stringify(e)},`)
      const offsets = new Uint32Array(texts.length + 1)
      for (let i = 0; i < texts.length; i++) offsets[i + 1] = offsets[i]! + Buffer.byteLength(texts[i]!)
      return { bytes: Buffer.from(texts.join('')), offsets }
    })()
    listing.chunks.set(c, job)
    job.then(
      (encoded) => {
        if (this.#listings.get(key) !== listing) return
        listing.bytes += encoded.bytes.length
        this.#bytes += encoded.bytes.length
        this.#evict(key)
      },
      () => listing.chunks.delete(c),
    )
    return job
  }

  /** Drops the least recently used listings (never `keep`, the one being read) past the bound. */
  #evict(keep: string): void {
    for (const [key, listing] of this.#listings) {
      if (this.#bytes <= this.#maxBytes) return
      if (key === keep) continue
      this.#listings.delete(key)
      this.#bytes -= listing.bytes
    }
  }
}

const OPEN = Buffer.from('[')
const CLOSE = ']'.charCodeAt(0)
const EMPTY = Buffer.from('[]')
