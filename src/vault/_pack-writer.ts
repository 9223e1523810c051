import type { ChunkKind } from './_chunk-codec.js'
import type { ChunkIndex } from './_chunk-index.js'
import { disown, release } from './_memory.js'
import { newPackName, PACK_FOOTER, PACK_HEADER, type PackEntry, packHeader, packTrailer } from './_pack.js'
import type { VaultBackend } from './vault-backend.js'

/**
 * Collects chunk blobs into packs of about `target` bytes and writes each with create-if-absent, up to
 * `inFlight` packs at once (object stores gain from parallel uploads; a folder writes one at a time).
 * `beforeWrite` runs before a pack is created, one call at a time in pack order (the backup lists the
 * pack in its lock there, so a concurrent GC that sees the pack also sees the lock). Pack names are
 * random, so they are listed ahead, `listAhead` at a time: the next packs start without waiting for a
 * lock write of their own (one lock write per `listAhead` packs; a name listed but never written costs
 * nothing: GC keeps what does not exist, and a resumed backup adopts only packs that do). Packs count as
 * written (`written`, `packs`, `afterWrite`) in the order they were cut, once every earlier one landed
 * too: the first `written` chunks added are in the vault. Callers wait while `inFlight` packs are
 * being written.
 */
export class PackWriter {
  readonly #backend: VaultBackend
  readonly #index: ChunkIndex
  readonly #target: (cut: number) => number
  readonly #inFlight: number
  readonly #beforeWrite: (names: string[]) => Promise<void>
  readonly #listAhead: number
  /** Names listed (or being listed) in the lock and not used yet, in order, each with its listing. */
  readonly #names: { name: string; listed: Promise<void> }[] = []
  readonly #afterWrite: (name: string) => void
  #parts: Buffer[] = []
  #entries: PackEntry[] = []
  #size = PACK_HEADER
  /** Pack writes in progress (they never reject: a failure is kept in #failure). */
  readonly #running = new Set<Promise<void>>()
  #failure: unknown
  #lockChain: Promise<void> = Promise.resolve()
  #cuts = 0
  #nextDone = 0
  readonly #landed = new Map<number, { name: string; size: number; chunks: number }>()
  readonly #written = new Set<string>()
  /** Names of the packs written. */
  readonly packs: string[] = []
  /** Bytes of the packs written. */
  bytes = 0
  /** Chunks added so far; chunks are written in the order they were added. */
  added = 0
  /** Chunks in written packs: the first `written` chunks added are in the vault. */
  written = 0

  constructor(
    backend: VaultBackend,
    index: ChunkIndex,
    options: {
      /** Bytes a pack closes at; a function is asked for each pack (by the count of packs cut before it). */
      target: number | ((cut: number) => number)
      /** Packs written at once (default 1). */
      inFlight?: number
      /** Lists pack names (the next packs', in order) where GC sees them, before those packs are created. */
      beforeWrite?: (names: string[]) => Promise<void>
      /** Pack names each beforeWrite lists (default 1: each pack its own). */
      listAhead?: number
      /** Names listed already (in the lock written before this writer): the first packs take them. */
      listed?: readonly string[]
      /** Runs once a pack is written (`written` counts its chunks). */
      afterWrite?: (name: string) => void
    },
  ) {
    this.#backend = backend
    this.#index = index
    const target = options.target
    this.#target = typeof target === 'number' ? () => target : target
    this.#inFlight = Math.max(1, options.inFlight ?? 1)
    this.#beforeWrite = options.beforeWrite ?? (async () => {})
    this.#listAhead = Math.max(1, options.listAhead ?? 1)
    for (const name of options.listed ?? []) this.#names.push({ name, listed: Promise.resolve() })
    this.#afterWrite = options.afterWrite ?? (() => {})
  }

  /** Counts the chunks of packs written earlier (a resumed backup's) as held: they are not written again. */
  adopt(ids: Iterable<Buffer>): void {
    for (const id of ids) this.#written.add(id.toString('latin1'))
  }

  /** True when this writer already holds (or wrote) the chunk. */
  holds(id: Buffer): boolean {
    return this.#written.has(id.toString('latin1'))
  }

  /** Adds a chunk blob (whole or in parts); resolves once buffered (and, when a pack filled up, started). */
  async add(id: Buffer, blob: Buffer | Buffer[], rawLength: number, kind: ChunkKind): Promise<void> {
    const k = id.toString('latin1')
    if (this.#written.has(k)) return
    this.#written.add(k)
    this.added++
    const parts = Array.isArray(blob) ? blob : [blob]
    const length = parts.reduce((n, p) => n + p.length, 0)
    this.#entries.push({ id, offset: this.#size, length, rawLength, kind })
    this.#parts.push(...parts)
    // Freed by this writer once written (#write): V8 need not collect for them meanwhile.
    disown(parts)
    this.#size += length
    if (this.#size + this.#entries.length * 48 + PACK_FOOTER >= this.#target(this.#cuts))
      await this.#cut(this.#inFlight)
  }

  /** Waits for pack writes in progress, ignoring their outcome (used on the way out of a failure). */
  async settle(): Promise<void> {
    await Promise.all([...this.#running])
  }

  /** Writes what is buffered and waits for every pack write. */
  async flush(): Promise<void> {
    await this.#cut(1)
  }

  /** Starts writing what is buffered, then waits until fewer than `below` writes are in progress. */
  async #cut(below: number): Promise<void> {
    if (this.#failure === undefined && this.#entries.length > 0) {
      const parts = this.#parts
      const entries = this.#entries
      const size = this.#size
      this.#parts = []
      this.#entries = []
      this.#size = PACK_HEADER
      const seq = this.#cuts++
      // Never more than inFlight writes: a pack cut while they run waits for its turn.
      while (this.#running.size >= this.#inFlight && this.#failure === undefined)
        await Promise.race(this.#running)
      if (this.#failure !== undefined) throw this.#failure
      const p: Promise<void> = this.#write(seq, parts, entries, size).then(
        () => {
          this.#running.delete(p)
        },
        (err) => {
          this.#running.delete(p)
          this.#failure ??= err
        },
      )
      this.#running.add(p)
    }
    while (this.#running.size >= below && this.#failure === undefined) await Promise.race(this.#running)
    if (this.#failure !== undefined) throw this.#failure
  }

  /** The next listed pack name, listing a new batch when none is left. */
  #nextName(): { name: string; listed: Promise<void> } {
    if (this.#names.length === 0) {
      const names = Array.from({ length: this.#listAhead }, () => newPackName())
      // Lock updates one at a time and in order: the last one written names every pack in flight.
      const listed = this.#lockChain.then(() => this.#beforeWrite(names))
      this.#lockChain = listed.catch(() => {})
      for (const name of names) this.#names.push({ name, listed })
    }
    return this.#names.shift()!
  }

  async #write(seq: number, parts: Buffer[], entries: PackEntry[], indexOffset: number): Promise<void> {
    // Taken before any await, so names go to packs in the order they were listed.
    const { name, listed } = this.#nextName()
    await listed
    const trailer = packTrailer(entries, indexOffset)
    // A pack's name is 128 random bits, new to the store: no probe before the (conditional) write.
    await this.#backend.create(name, [packHeader(), ...parts, trailer], { fresh: true })
    const size = indexOffset + trailer.length
    this.#index.addPack({ name, size, modified: Date.now(), entries })
    // The parts came from the chunk workers and only this writer holds them: free them now.
    release(parts)
    this.#landed.set(seq, { name, size, chunks: entries.length })
    for (let next = this.#landed.get(this.#nextDone); next; next = this.#landed.get(this.#nextDone)) {
      this.#landed.delete(this.#nextDone++)
      this.packs.push(next.name)
      this.bytes += next.size
      this.written += next.chunks
      this.#afterWrite(next.name)
    }
  }
}
