// A local cache of the small immutable objects an object-store vault reads each time it is opened: the
// index (trailer) of every pack and every recovery-point manifest. One file per object, in
// `DIR/<kind>/<encoded object name>`, written atomically (temporary file, rename):
//
//   offset  size  field
//   0       8     magic "CRNCACH1"
//   8       4     header length h, u32 LE
//   12      h     header: UTF-8 JSON { kind, name, size, modified, etag } of the object as listed
//   12+h    n     the cached bytes (a pack's index and footer; a manifest record as stored)
//   12+h+n  32    SHA-256 over bytes 0..12+h+n
//
// An entry is used only when its checksum holds and its header names the object exactly as the store
// lists it now (name, size, modification time and ETag): an object another writer replaced or deleted
// is fetched again or forgotten. A damaged entry is deleted and counted, never believed; callers parse
// the bytes again with their own checks (the pack index's SHA-256, the record's checksum and tag).
// The cache holds at most `maxBytes`; least recently used entries go first.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BackendObject } from './vault-backend.js'

const MAGIC = Buffer.from('CRNCACH1', 'latin1')
const SUM = 32

/** What a cache entry holds. */
export type CachedKind = 'packs' | 'manifests'

/** Default bound of one vault's cache: about 5 TiB of packs' indexes at 32 MiB packs of 1 MiB chunks. */
export const OBJECT_CACHE_BYTES = 256 * 1024 * 1024

/** Counters of one cache since it was opened. */
export interface ObjectCacheStats {
  hits: number
  misses: number
  /** Entries whose checksum or framing failed: deleted and fetched again. */
  corrupt: number
  /** Entries that named an older version of the object (another writer changed it): fetched again. */
  stale: number
  evicted: number
}

interface Entry {
  size: number
  used: number
}

/** The cache of one vault's pack indexes and manifests in a local folder. */
export class ObjectCache {
  readonly dir: string
  readonly maxBytes: number
  readonly stats: ObjectCacheStats = { hits: 0, misses: 0, corrupt: 0, stale: 0, evicted: 0 }
  #entries: Promise<Map<string, Entry>> | undefined
  #bytes = 0

  constructor(dir: string, options: { maxBytes?: number } = {}) {
    this.dir = dir
    this.maxBytes = options.maxBytes ?? OBJECT_CACHE_BYTES
  }

  /** The cached bytes of `object` as listed now, or undefined (missing, stale or damaged: then removed). */
  async get(kind: CachedKind, object: BackendObject): Promise<Buffer | undefined> {
    const entries = await this.#load()
    const file = this.#file(kind, object.name)
    if (!entries.has(file)) {
      this.stats.misses++
      return undefined
    }
    let data: Buffer
    try {
      data = await readFile(file)
    } catch {
      this.#drop(entries, file)
      this.stats.misses++
      return undefined
    }
    const parsed = parse(data)
    if (!parsed) {
      this.stats.corrupt++
      this.stats.misses++
      await this.#remove(entries, file)
      return undefined
    }
    const h = parsed.header
    if (
      h.kind !== kind ||
      h.name !== object.name ||
      h.size !== object.size ||
      h.modified !== object.modified ||
      (h.etag ?? null) !== (object.etag ?? null)
    ) {
      this.stats.stale++
      this.stats.misses++
      await this.#remove(entries, file)
      return undefined
    }
    this.stats.hits++
    const now = Date.now()
    entries.set(file, { size: data.length, used: now })
    utimes(file, now / 1000, now / 1000).catch(() => {})
    return parsed.body
  }

  /** Keeps `body` for `object` as listed; a failed write only costs a later fetch. */
  async put(kind: CachedKind, object: BackendObject, body: Buffer): Promise<void> {
    const entries = await this.#load()
    const file = this.#file(kind, object.name)
    const header = Buffer.from(
      JSON.stringify({
        kind,
        name: object.name,
        size: object.size,
        modified: object.modified,
        etag: object.etag ?? null,
      }),
      'utf8',
    )
    const len = Buffer.alloc(4)
    len.writeUInt32LE(header.length)
    const head = Buffer.concat([MAGIC, len, header, body])
    const data = Buffer.concat([head, createHash('sha256').update(head).digest()])
    const tmp = join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`)
    try {
      await mkdir(join(this.dir, kind), { recursive: true })
      await writeFile(tmp, data)
      await rename(tmp, file)
    } catch {
      await unlink(tmp).catch(() => {})
      return
    }
    this.#drop(entries, file)
    entries.set(file, { size: data.length, used: Date.now() })
    this.#bytes += data.length
    if (this.#bytes > this.maxBytes) await this.#evict(entries)
  }

  /** Forgets the entries of `kind` whose objects are not in `live` (deleted from the store). */
  async retain(kind: CachedKind, live: Iterable<string>): Promise<void> {
    const entries = await this.#load()
    const keep = new Set([...live].map((n) => this.#file(kind, n)))
    const dir = join(this.dir, kind)
    for (const file of [...entries.keys()])
      if (file.startsWith(`${dir}/`) && !keep.has(file)) await this.#remove(entries, file)
  }

  /** Bytes the cache holds now. */
  async bytes(): Promise<number> {
    await this.#load()
    return this.#bytes
  }

  #file(kind: CachedKind, name: string): string {
    return join(this.dir, kind, encodeURIComponent(name))
  }

  #load(): Promise<Map<string, Entry>> {
    this.#entries ??= (async () => {
      const entries = new Map<string, Entry>()
      for (const kind of ['packs', 'manifests'] as const) {
        const dir = join(this.dir, kind)
        const names = await readdir(dir).catch(() => [] as string[])
        for (const n of names) {
          const st = await stat(join(dir, n)).catch(() => undefined)
          if (!st?.isFile()) continue
          entries.set(join(dir, n), { size: st.size, used: st.mtimeMs })
          this.#bytes += st.size
        }
      }
      // Temporary files of a writer that died.
      for (const n of await readdir(this.dir).catch(() => [] as string[]))
        if (n.startsWith('.tmp-')) await unlink(join(this.dir, n)).catch(() => {})
      if (this.#bytes > this.maxBytes) await this.#evict(entries)
      return entries
    })()
    return this.#entries
  }

  #drop(entries: Map<string, Entry>, file: string): void {
    const e = entries.get(file)
    if (!e) return
    entries.delete(file)
    this.#bytes -= e.size
  }

  async #remove(entries: Map<string, Entry>, file: string): Promise<void> {
    this.#drop(entries, file)
    await rm(file, { force: true }).catch(() => {})
  }

  /** Removes the least recently used entries until the cache is at three quarters of its bound. */
  async #evict(entries: Map<string, Entry>): Promise<void> {
    const order = [...entries].sort((a, b) => a[1].used - b[1].used)
    for (const [file] of order) {
      if (this.#bytes <= this.maxBytes * 0.75) break
      await this.#remove(entries, file)
      this.stats.evicted++
    }
  }
}

/** The header and body of a cache file, or undefined when its framing or checksum is wrong. */
function parse(data: Buffer): { header: Record<string, unknown>; body: Buffer } | undefined {
  if (data.length < MAGIC.length + 4 + SUM || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined
  const h = data.readUInt32LE(MAGIC.length)
  const bodyAt = MAGIC.length + 4 + h
  if (bodyAt > data.length - SUM) return undefined
  const sum = createHash('sha256')
    .update(data.subarray(0, data.length - SUM))
    .digest()
  if (!sum.equals(data.subarray(data.length - SUM))) return undefined
  try {
    const header = JSON.parse(data.toString('utf8', MAGIC.length + 4, bodyAt)) as unknown
    if (typeof header !== 'object' || header === null) return undefined
    return { header: header as Record<string, unknown>, body: data.subarray(bodyAt, data.length - SUM) }
  } catch {
    return undefined
  }
}
