import { CairnError } from '../util/index.js'
import { ChunkDamage, type ChunkKeys, ChunkKind } from './_chunk-codec.js'
import { ChunkIndex, type ChunkLocation } from './_chunk-index.js'
import type { ChunkPool } from './_chunk-pool.js'
import type { PageStore } from './_disk-tree.js'
import { forEachLimit } from './_for-each-limit.js'
import { release } from './_memory.js'
import type { ObjectCache } from './_object-cache.js'
import { planPackReads } from './_pack-reads.js'
import { ReadBuffers } from './_read-buffers.js'
import { decodeRecord, encodeRecord } from './_record.js'
import type { Consistency, RecoveryPoint } from './types.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

/** How a manifest spells each consistency (MANI v1, docs/formats.md): the format predates the names. */
const STORED_CONSISTENCY: Record<Consistency, string> = {
  AppConsistent: 'application-consistent',
  FileSystemConsistent: 'file-system-consistent',
  CrashConsistent: 'crash-consistent',
}
const CONSISTENCY_OF_STORED = new Map<string, Consistency>(
  Object.entries(STORED_CONSISTENCY).map(([name, stored]) => [stored, name as Consistency]),
)

/** The vault's `config` record body (tag CONF, version 1). */
export interface VaultConfig {
  format: 'cairn-vault'
  id: string
  createdAt: string
  encrypted: boolean
  /** Size of the aligned chunks a full backup cuts. */
  chunkSize: number
  /** Bytes of disk one index leaf covers, and the fan-out of index nodes. */
  leafSpan: number
  fanout: number
  /** Packs are closed when they reach this size. */
  packSize: number
  /** zstd level (0: no compression). */
  compressionLevel: number
}

/** A backup in flight: the `locks/<id>` record body (tag LOCK, version 1). */
export interface LockBody {
  id: string
  startedAt: string
  updatedAt: string
  /** Recovery points whose chunks this backup reuses: prune keeps them, GC marks them. */
  bases: string[]
  /** Packs this backup wrote or is about to write: GC never deletes them while the lock lives. */
  packs: string[]
}

/** The shared state of an open vault that backup, restore and maintenance use. */
export class VaultCore {
  readonly backend: VaultBackend
  readonly config: VaultConfig
  readonly keys: ChunkKeys | null
  readonly pool: ChunkPool
  readonly index: ChunkIndex
  /** The local cache of pack indexes and manifests (object-store vaults opened with a cache folder). */
  readonly cache: ObjectCache | undefined
  /** Pack files a restore keeps open while idle (more are open while in use). */
  openPacks = 32
  /** The vault's clock for retention, soft delete and immutability (tests inject one). */
  now: () => number = Date.now
  /** Memory that pack reads land in, reused (see ReadBuffers). */
  readonly readBuffers = new ReadBuffers()
  #indexLoaded: Promise<void> | undefined
  readonly #pageCache = new Map<string, Buffer>()

  constructor(
    backend: VaultBackend,
    config: VaultConfig,
    keys: ChunkKeys | null,
    pool: ChunkPool,
    cache?: ObjectCache,
  ) {
    this.backend = backend
    this.config = config
    this.keys = keys
    this.pool = pool
    this.cache = cache
    this.index = new ChunkIndex(backend, cache)
  }

  /** Loads the chunk index once (later calls return at once). */
  loadIndex(): Promise<void> {
    this.#indexLoaded ??= this.index.refresh()
    return this.#indexLoaded
  }

  /** Reads, checks and opens one chunk; names what was being done in its errors. */
  async readChunk(id: Buffer, what: string): Promise<Buffer> {
    await this.loadIndex()
    for (let attempt = 0; ; attempt++) {
      let loc = this.index.get(id)
      if (!loc && attempt === 0) {
        await this.index.refresh()
        loc = this.index.get(id)
      }
      if (!loc) {
        const damaged = [...this.index.damaged.keys()]
        throw new CairnError(
          'VaultObjectMissing',
          `${what}: chunk ${id.toString('hex').slice(0, 12)}… is missing from the vault${damaged.length ? ` (damaged packs: ${damaged.join(', ')})` : ''}`,
        )
      }
      let blob: Buffer
      try {
        blob = await this.backend.getRange(loc.pack, loc.offset, loc.length)
      } catch (err) {
        // A concurrent GC may have repacked the chunk: look again once.
        if (err instanceof CairnError && err.code === 'VaultObjectMissing' && attempt === 0) {
          await this.index.refresh()
          continue
        }
        throw err
      }
      return this.#open(id, blob, loc, what)
    }
  }

  /**
   * Reads, checks and opens several chunks with as few reads as their packs allow: the blobs of one
   * pack that lie close together come in one ranged read (see planPackReads), `inFlight` reads at once.
   * Answers the plaintexts in the order of `ids`; `what(i)` names what chunk i was read for, in errors.
   */
  async readChunks(
    ids: readonly Buffer[],
    what: (i: number) => string,
    options: { inFlight?: number } = {},
  ): Promise<Buffer[]> {
    await this.loadIndex()
    const out: Buffer[] = new Array(ids.length)
    const first = new Map<string, number>()
    const wanted: number[] = []
    const locs: ChunkLocation[] = []
    const alone: number[] = []
    ids.forEach((id, i) => {
      const k = id.toString('latin1')
      if (first.has(k)) return
      first.set(k, i)
      const loc = this.index.get(id)
      if (loc) {
        wanted.push(i)
        locs.push(loc)
      } else alone.push(i)
    })
    // Chunks the index does not know yet are read one by one: readChunk refreshes it or says which is missing.
    for (const i of alone) out[i] = await this.readChunk(ids[i]!, what(i))
    const plan = planPackReads(locs)
    await forEachLimit(plan, options.inFlight ?? 2, async (read) => {
      let data: Buffer
      try {
        data = await this.backend.getRange(read.pack, read.offset, read.length)
      } catch (err) {
        if (!(err instanceof CairnError && err.code === 'VaultObjectMissing')) throw err
        // A concurrent GC repacked these chunks: each is looked up again.
        for (const c of read.chunks)
          out[wanted[c.at]!] = await this.readChunk(ids[wanted[c.at]!]!, what(wanted[c.at]!))
        return
      }
      // Each blob gets its own memory, so that it moves to a worker without copying the whole read.
      const blobs = read.chunks.map((c) => {
        const blob = Buffer.allocUnsafeSlow(Math.max(0, Math.min(c.length, data.length - c.offset)))
        data.copy(blob, 0, c.offset, c.offset + blob.length)
        return blob
      })
      release([data])
      await Promise.all(
        read.chunks.map(async (c, n) => {
          const i = wanted[c.at]!
          out[i] = await this.#open(ids[i]!, blobs[n]!, locs[c.at]!, what(i))
        }),
      )
    })
    ids.forEach((id, i) => {
      out[i] ??= out[first.get(id.toString('latin1'))!]!
    })
    return out
  }

  /**
   * The blobs of several chunks (each once in `ids`), unchecked, read as readChunks reads them (a pack's
   * run at a time). Each blob is a view of its read's memory (`memory`: one buffer per read, taken from
   * `readBuffers`), so that the reads move to a worker whole, without a copy per blob; give the memory
   * back to `readBuffers` once done. A chunk the index does not know, or a pack gone (a concurrent GC
   * repacked it), makes it look again once; then a missing chunk is VaultObjectMissing naming `what(i)`.
   */
  async fetchBlobs(
    ids: readonly Buffer[],
    what: (i: number) => string,
  ): Promise<{ blobs: { blob: Buffer; loc: ChunkLocation }[]; memory: ArrayBuffer[] }> {
    for (let attempt = 0; ; attempt++) {
      await this.loadIndex()
      const locs = ids.map((id) => this.index.get(id))
      const unknown = locs.indexOf(undefined)
      if (unknown >= 0) {
        if (attempt === 0) {
          await this.index.refresh()
          continue
        }
        const damaged = [...this.index.damaged.keys()]
        throw new CairnError(
          'VaultObjectMissing',
          `${what(unknown)}: chunk ${ids[unknown]!.toString('hex').slice(0, 12)}… is missing from the vault${damaged.length ? ` (damaged packs: ${damaged.join(', ')})` : ''}`,
        )
      }
      const found = locs as ChunkLocation[]
      const blobs: { blob: Buffer; loc: ChunkLocation }[] = new Array(ids.length)
      const memory: ArrayBuffer[] = []
      try {
        await forEachLimit(planPackReads(found), 2, async (read) => {
          const data = await this.readInto(read.pack, read.offset, read.length)
          memory.push(data.buffer as ArrayBuffer)
          for (const c of read.chunks) {
            const end = Math.min(c.offset + c.length, data.length)
            blobs[c.at] = { blob: data.subarray(Math.min(c.offset, end), end), loc: found[c.at]! }
          }
        })
        return { blobs, memory }
      } catch (err) {
        for (const m of memory) this.readBuffers.give(m)
        if (attempt === 0 && err instanceof CairnError && err.code === 'VaultObjectMissing') {
          await this.index.refresh()
          continue
        }
        throw err
      }
    }
  }

  /** A range of an object read into memory from `readBuffers` (a view of memory of its own). */
  async readInto(name: string, offset: number, length: number): Promise<Buffer> {
    const into = this.readBuffers.take(length)
    let data: Buffer
    try {
      data = await this.backend.getRange(name, offset, length, into)
    } catch (err) {
      this.readBuffers.give(into.buffer as ArrayBuffer)
      throw err
    }
    if (data.buffer === into.buffer && data.byteOffset === 0) return data
    // A backend that answered a buffer of its own: its bytes go where asked.
    const n = data.copy(into)
    release([data])
    return into.subarray(0, n)
  }

  /** Checks and opens a blob read from `loc`; damage is VaultCorrupt naming the chunk, its pack and `what`. */
  async #open(id: Buffer, blob: Buffer, loc: ChunkLocation, what: string): Promise<Buffer> {
    try {
      if (blob.length !== loc.length)
        throw new ChunkDamage(`its blob is truncated (${blob.length} of ${loc.length} bytes)`)
      // Reads trust an encrypted blob's GCM tag; verify re-hashes everything.
      return (await this.pool.open(blob, id, { rehash: false })).plain
    } catch (err) {
      if (err instanceof ChunkDamage) {
        throw new CairnError(
          'VaultCorrupt',
          `${what}: chunk ${id.toString('hex').slice(0, 12)}… in ${loc.pack} is damaged: ${err.message}`,
        )
      }
      throw err
    }
  }

  /** Tree pages, read through a small cache; new pages go through `write`. */
  pageStore(write?: (page: Buffer) => Promise<Buffer>, what = 'Cannot read the index'): PageStore {
    return {
      load: async (id) => {
        const k = id.toString('latin1')
        const hit = this.#pageCache.get(k)
        if (hit) return hit
        const page = await this.readChunk(id, `${what}: index page`)
        if (this.#pageCache.size > 4096) this.#pageCache.clear()
        this.#pageCache.set(k, page)
        return page
      },
      store: async (page) => {
        if (!write) throw new Error('read-only page store')
        return write(page)
      },
    }
  }

  /** The record key for encrypted records (manifests), or undefined. */
  get recordKey(): Buffer | undefined {
    return this.keys?.dataKey
  }

  async recoveryPointIds(): Promise<string[]> {
    return (await this.recoveryPointObjects()).map((o) => o.name.slice(3))
  }

  /** The manifests' objects as the store lists them now, by id. */
  async recoveryPointObjects(): Promise<BackendObject[]> {
    const listed = await this.backend.list('rp/')
    await this.cache?.retain(
      'manifests',
      listed.map((o) => o.name),
    )
    return listed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /**
   * Reads a recovery point's manifest. Given its object from a listing just taken (`listed`), a vault
   * with a cache reads it from there when the cache holds that very version, and caches what it fetches.
   */
  async readManifest(id: string, listed?: BackendObject): Promise<RecoveryPoint> {
    const what = `recovery point "${id}"`
    const cache = listed?.name === `rp/${id}` ? this.cache : undefined
    const cached = listed && (await cache?.get('manifests', listed))
    if (cached && listed) {
      try {
        return this.#decodeManifest(cached, what)
      } catch {
        // Unreachable unless the cache was written wrongly: read the store's manifest.
      }
    }
    let data: Buffer
    try {
      data = await this.backend.get(`rp/${id}`)
    } catch (err) {
      if (err instanceof CairnError && err.code === 'VaultObjectMissing') {
        throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${id}" in the vault`)
      }
      throw err
    }
    const rp = this.#decodeManifest(data, what)
    // Cached only when the bytes fetched are the version listed (a replaced object is not).
    if (cache && listed && data.length === listed.size) await cache.put('manifests', listed, data)
    return rp
  }

  #decodeManifest(data: Buffer, what: string): RecoveryPoint {
    const rp = decodeRecord(data, 'MANI', what, this.recordKey).body as RecoveryPoint
    return { ...rp, consistency: CONSISTENCY_OF_STORED.get(rp.consistency) ?? rp.consistency }
  }

  /** A manifest record as `rp/<id>` holds it. */
  encodeManifest(rp: RecoveryPoint): Buffer {
    const stored = { ...rp, consistency: STORED_CONSISTENCY[rp.consistency] ?? rp.consistency }
    return encodeRecord('MANI', 1, stored, this.recordKey)
  }

  async writeManifest(rp: RecoveryPoint): Promise<void> {
    const ok = await this.backend.create(`rp/${rp.id}`, this.encodeManifest(rp))
    if (!ok) throw new CairnError('Internal', `Cannot commit recovery point "${rp.id}": the id is taken`)
  }

  async readLocks(): Promise<LockBody[]> {
    const out: LockBody[] = []
    for (const o of await this.backend.list('locks/')) {
      try {
        out.push(decodeRecord(await this.backend.get(o.name), 'LOCK', o.name).body as LockBody)
      } catch (err) {
        if (err instanceof CairnError && err.code === 'VaultObjectMissing') continue
        throw err
      }
    }
    return out
  }

  async writeLock(lock: LockBody): Promise<void> {
    await this.backend.put(`locks/${lock.id}`, encodeRecord('LOCK', 1, lock))
  }

  async deleteLock(id: string): Promise<void> {
    await this.backend.delete(`locks/${id}`)
  }
}

export { ChunkKind }
