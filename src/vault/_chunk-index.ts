import { CairnError } from '../util/index.js'
import type { ChunkKind } from './_chunk-codec.js'
import type { ObjectCache } from './_object-cache.js'
import { PACK_FOOTER, type PackEntry, parsePackFooter, parsePackIndex } from './_pack.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

/** Where a chunk is stored. */
export interface ChunkLocation {
  pack: string
  offset: number
  length: number
  rawLength: number
  kind: ChunkKind
}

/** What the index knows about one pack. */
export interface PackInfo {
  name: string
  size: number
  modified: number
  entries: PackEntry[]
}

const key = (id: Buffer) => id.toString('latin1')

/**
 * Which pack holds each chunk, built from the pack indexes (trailers) and kept in memory; with a cache
 * (object stores), a pack's index is read from the store once and from the cache at later opens.
 */
export class ChunkIndex {
  readonly #backend: VaultBackend
  readonly #cache: ObjectCache | undefined
  readonly #chunks = new Map<string, ChunkLocation>()
  readonly #packs = new Map<string, PackInfo>()
  /** Packs whose index cannot be read, with the reason. */
  readonly damaged = new Map<string, string>()
  /** The listed version of each damaged pack: one listed in another version is read again. */
  readonly #damagedAs = new Map<string, string>()
  #refreshing: Promise<void> | undefined

  constructor(backend: VaultBackend, cache?: ObjectCache) {
    this.#backend = backend
    this.#cache = cache
  }

  get(id: Buffer): ChunkLocation | undefined {
    return this.#chunks.get(key(id))
  }

  has(id: Buffer): boolean {
    return this.#chunks.has(key(id))
  }

  packs(): PackInfo[] {
    return [...this.#packs.values()]
  }

  pack(name: string): PackInfo | undefined {
    return this.#packs.get(name)
  }

  /** Records a pack this process wrote. */
  addPack(info: PackInfo): void {
    this.#packs.set(info.name, info)
    for (const e of info.entries) this.#chunks.set(key(e.id), { pack: info.name, ...pick(e) })
  }

  /** Forgets packs this process deleted. */
  removePacks(names: string[]): void {
    for (const n of names) this.#packs.delete(n)
    this.#rebuild()
  }

  /** Reads the indexes of packs not seen yet and forgets packs that are gone. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined
    })
    return this.#refreshing
  }

  async #refresh(): Promise<void> {
    const listed = await this.#backend.list('packs/')
    const names = new Set(listed.map((o) => o.name))
    let gone = false
    for (const n of this.#packs.keys()) {
      if (!names.has(n)) {
        this.#packs.delete(n)
        gone = true
      }
    }
    // A pack that failed as listed then and is listed otherwise now is read again: a store that lists an
    // object still being uploaded (s3rver as published writes in place; a partial pack fails its footer) shows it
    // whole later. Real damage lists the same version again and is not read again.
    const listedAs = new Map(listed.map((o) => [o.name, versionOf(o)]))
    for (const n of this.damaged.keys()) {
      if (listedAs.get(n) === this.#damagedAs.get(n)) continue
      this.damaged.delete(n)
      this.#damagedAs.delete(n)
    }
    const fresh = listed.filter((o) => !this.#packs.has(o.name) && !this.damaged.has(o.name))
    let next = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < fresh.length) {
          const o = fresh[next++]!
          try {
            this.addPack({ ...o, entries: await this.#readIndex(o) })
          } catch (err) {
            if (!(err instanceof CairnError)) throw err
            if (err.code === 'VaultObjectMissing') continue
            this.damaged.set(o.name, err.message)
            this.#damagedAs.set(o.name, versionOf(o))
          }
        }
      }),
    )
    if (gone) this.#rebuild()
    await this.#cache?.retain('packs', names)
  }

  /** A pack's index from the cache when it holds this version of the pack, else from the store (then cached). */
  async #readIndex(o: BackendObject): Promise<PackEntry[]> {
    const cached = await this.#cache?.get('packs', o)
    if (cached) {
      try {
        return parseTrailer(cached, o.name, o.size)
      } catch {
        // Unreachable unless the cache was written wrongly: read the pack itself.
      }
    }
    const trailer = await readPackTrailer(this.#backend, o.name, o.size)
    const entries = parseTrailer(trailer, o.name, o.size)
    await this.#cache?.put('packs', o, trailer)
    return entries
  }

  #rebuild(): void {
    this.#chunks.clear()
    for (const p of this.#packs.values()) {
      for (const e of p.entries)
        if (!this.#chunks.has(key(e.id))) this.#chunks.set(key(e.id), { pack: p.name, ...pick(e) })
    }
  }
}

/** What a listing says of one version of an object. */
function versionOf(o: BackendObject): string {
  return `${o.size}/${o.modified}/${o.etag ?? ''}`
}

function pick(e: PackEntry): Omit<ChunkLocation, 'pack'> {
  return { offset: e.offset, length: e.length, rawLength: e.rawLength, kind: e.kind }
}

/** Bytes read from a pack's end at first: the footer and, in one request, the index of most packs. */
const TAIL = 16 * 1024

/** Reads and checks the index of one pack. */
export async function readPackIndex(backend: VaultBackend, name: string, size: number): Promise<PackEntry[]> {
  return parseTrailer(await readPackTrailer(backend, name, size), name, size)
}

/** A pack's trailer (index entries and footer) as stored, in one request when it fits in TAIL bytes. */
async function readPackTrailer(backend: VaultBackend, name: string, size: number): Promise<Buffer> {
  if (size < PACK_FOOTER)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: it is truncated (${size} bytes)`)
  const n = Math.min(size, TAIL)
  const tail = await backend.getRange(name, size - n, n)
  if (tail.length !== n)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: it is shorter than listed`)
  const { offset } = parsePackFooter(tail.subarray(n - PACK_FOOTER), name, size)
  if (offset >= size - n) return tail.subarray(offset - (size - n))
  const rest = await backend.getRange(name, offset, size - n - offset)
  return Buffer.concat([rest, tail])
}

/** The checked index entries of a whole pack's own trailer. */
export function packEntriesOf(data: Buffer, name: string): PackEntry[] {
  if (data.length < PACK_FOOTER)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: it is truncated (${data.length} bytes)`)
  const { offset } = parsePackFooter(data.subarray(data.length - PACK_FOOTER), name, data.length)
  return parseTrailer(data.subarray(offset), name, data.length)
}

/** The checked index entries of a trailer (as readPackTrailer reads it). */
function parseTrailer(trailer: Buffer, name: string, size: number): PackEntry[] {
  if (trailer.length < PACK_FOOTER)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: its trailer is truncated`)
  const { offset, count, sum } = parsePackFooter(trailer.subarray(trailer.length - PACK_FOOTER), name, size)
  if (trailer.length !== count * 48 + PACK_FOOTER)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: its trailer does not match its footer`)
  return parsePackIndex(trailer.subarray(0, count * 48), sum, name, offset)
}
