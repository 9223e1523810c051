// Whole packs for a replica (geo-replication of a GRS vault, docs/replication.md): the packs a missed
// point's backup wrote on the primary hold chunks the secondary lacks, and the replica is the same
// vault (same id, same key), so such a pack travels as it is instead of chunk by chunk. It arrives in
// one reused buffer, its header, footer and index are checked, every blob in it is checked against its
// id (CRC-32 and the re-hashed plaintext, by the chunk workers, reading the buffer in place), then it
// is named in the copy's lock and written under its own name in one sequential write. Nothing is
// repacked and nothing is copied into fresh memory per byte. The copy's walk of the point's trees runs
// afterwards as before: it finds these chunks held and brings whatever else the point names, so a
// point still commits only once every chunk it needs is on the replica.
import { alignedBuffer, CairnError } from '../util/index.js'
import { ChunkDamage } from './_chunk-codec.js'
import type { VaultCore } from './_core.js'
import { forEachLimit } from './_for-each-limit.js'
import {
  checkPackHeader,
  PACK_FOOTER,
  PACK_HEADER,
  type PackEntry,
  parsePackFooter,
  parsePackIndex,
} from './_pack.js'

/** Packs fetched, checked and written at once. */
const PACKS_AT_ONCE = 3
/** A pack larger than this travels chunk by chunk. */
const MAX_WHOLE = 64 * 1024 * 1024
/** Buffers are sized in whole MiB. */
const ROUND = 1024 * 1024

/** A pack the replica received whole. */
export interface WholePack {
  name: string
  size: number
  entries: PackEntry[]
}

/** How the copy engine lets whole packs in. */
export interface WholePackSink {
  /** True when the target holds the chunk for sure (or is about to, from this copy). */
  held(id: Buffer): boolean
  /** Names packs in the copy's target lock (before they are written). */
  lock(names: readonly string[]): Promise<void>
  /**
   * Writes the pack (create-if-absent; counted as the copy's bytes written). Not read back: the bytes
   * written are the ones just checked, in the same memory, as a backup writes the packs it made.
   */
  create(name: string, data: Buffer): Promise<boolean>
  signal?: AbortSignal | undefined
}

/** Copies whole packs from a replica's source to its target, through a few reused buffers. */
export class WholePackCopier {
  readonly #src: VaultCore
  readonly #dst: VaultCore
  readonly #sink: WholePackSink
  readonly #free: Buffer[] = []
  /** Sizes of the source's packs as last listed. */
  #sizes = new Map<string, number>()
  /** Names of the packs this copier wrote (their index pages are read on the target, not the source). */
  readonly written = new Set<string>()

  constructor(src: VaultCore, dst: VaultCore, sink: WholePackSink) {
    this.#src = src
    this.#dst = dst
    this.#sink = sink
  }

  /**
   * Copies those of `names` (a point's packs on the source) whose every chunk the target lacks; the
   * others are left to the chunk-by-chunk copy. Answers the packs written, in no particular order.
   */
  async copy(names: readonly string[]): Promise<WholePack[]> {
    // The sizes come from one listing of the source's packs (its whole index need not be loaded).
    if (names.some((n) => !this.#sizes.has(n)))
      this.#sizes = new Map((await this.#src.backend.list('packs/')).map((o) => [o.name, o.size]))
    const wanted = names.filter((name) => {
      const size = this.#sizes.get(name)
      if (size === undefined || size > MAX_WHOLE || size < PACK_HEADER + PACK_FOOTER) return false
      if (this.#dst.index.pack(name) || this.written.has(name)) return false
      // Where the source's index is known, a pack with a chunk the target holds is not fetched.
      return this.#src.index.pack(name)?.entries.every((e) => !this.#sink.held(e.id)) ?? true
    })
    const out: WholePack[] = []
    // One lock write names them all before the first is written (a name whose pack is never written
    // is harmless: it keeps nothing).
    if (wanted.length > 0) await this.#sink.lock(wanted)
    await forEachLimit(wanted, PACKS_AT_ONCE, async (name) => {
      this.#sink.signal?.throwIfAborted()
      const size = this.#sizes.get(name)!
      const buf = this.#take(size)
      try {
        let pack = await this.#src.backend.getRange(name, 0, size, buf)
        // A backend that answered in memory of its own: into the shared buffer, which the workers
        // read in place (a buffer of its own would move to the first of them).
        if (pack.buffer !== buf.buffer && pack.length <= buf.length) {
          buf.set(pack)
          pack = buf.subarray(0, pack.length)
        }
        if (pack.length !== size)
          throw new CairnError(
            'VaultCorrupt',
            `Cannot copy: pack ${name} came with ${pack.length} of its ${size} bytes`,
          )
        const entries = await this.#check(name, pack)
        // A pack with a chunk the target holds (or another pack brought meanwhile) is left to the
        // chunk-by-chunk copy: no chunk is held twice.
        if (entries.length === 0 || entries.some((e) => this.#sink.held(e.id))) return
        this.written.add(name)
        await this.#sink.create(name, pack)
        this.#dst.index.addPack({ name, size, modified: Date.now(), entries })
        out.push({ name, size, entries })
      } finally {
        this.#give(buf)
      }
    })
    return out
  }

  /** Checks a pack's frame and every blob in it; answers its index entries. */
  async #check(name: string, pack: Buffer): Promise<PackEntry[]> {
    checkPackHeader(pack.subarray(0, PACK_HEADER), name)
    const { offset, count, sum } = parsePackFooter(
      pack.subarray(pack.length - PACK_FOOTER),
      name,
      pack.length,
    )
    const entries = parsePackIndex(pack.subarray(offset, offset + count * 48), sum, name, offset)
    // Two halves, one per chunk worker; the workers read the shared buffer in place.
    const half = Math.ceil(entries.length / 2)
    const parts = [entries.slice(0, half), entries.slice(half)].filter((p) => p.length > 0)
    await Promise.all(
      parts.map(async (part) => {
        try {
          await this.#src.pool.checkMany(
            pack,
            part.map((e) => ({ offset: e.offset, length: e.length, id: e.id })),
          )
        } catch (err) {
          if (err instanceof ChunkDamage && err.chunk !== undefined) {
            const e = part[err.chunk]!
            throw new ChunkDamage(
              `chunk ${e.id.toString('hex').slice(0, 12)}… in ${name} of the source is damaged: ${err.message}`,
            )
          }
          throw err
        }
      }),
    )
    return entries
  }

  /**
   * Page-aligned, shared memory: the workers read it without a copy, the pack is written from it
   * without staging. (Not on huge pages: posting a view of such memory to a worker cost ~10× more.)
   */
  #take(size: number): Buffer {
    const i = this.#free.findIndex((b) => b.length >= size)
    if (i >= 0) return this.#free.splice(i, 1)[0]!
    return alignedBuffer(Math.ceil(size / ROUND) * ROUND, { shared: true })
  }

  #give(buf: Buffer): void {
    this.#free.push(buf)
    this.#free.sort((a, b) => a.length - b.length)
    if (this.#free.length > PACKS_AT_ONCE) this.#free.shift()
  }
}
