import type { ChunkKind } from './_chunk-codec.js'
import type { ChunkIndex } from './_chunk-index.js'
import { release } from './_memory.js'
import { newPackName, PACK_FOOTER, PACK_HEADER, type PackEntry, packHeader, packTrailer } from './_pack.js'
import type { VaultBackend } from './vault-backend.js'

/**
 * Collects chunk blobs into packs of about `target` bytes and writes each with create-if-absent.
 * `beforeWrite` runs before a pack is created (the backup lists the pack in its lock there, so a
 * concurrent GC that sees the pack also sees the lock). Callers wait while a pack is written.
 */
export class PackWriter {
  readonly #backend: VaultBackend
  readonly #index: ChunkIndex
  readonly #target: number
  readonly #beforeWrite: (name: string) => Promise<void>
  readonly #afterWrite: (name: string) => void
  #parts: Buffer[] = []
  #entries: PackEntry[] = []
  #size = PACK_HEADER
  #chain: Promise<void> = Promise.resolve()
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
      target: number
      beforeWrite?: (name: string) => Promise<void>
      /** Runs once a pack is written (`written` counts its chunks). */
      afterWrite?: (name: string) => void
    },
  ) {
    this.#backend = backend
    this.#index = index
    this.#target = options.target
    this.#beforeWrite = options.beforeWrite ?? (async () => {})
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

  /** Adds a chunk blob (whole or in parts); resolves once buffered (and, when a pack filled up, written). */
  async add(id: Buffer, blob: Buffer | Buffer[], rawLength: number, kind: ChunkKind): Promise<void> {
    const k = id.toString('latin1')
    if (this.#written.has(k)) return
    this.#written.add(k)
    this.added++
    const parts = Array.isArray(blob) ? blob : [blob]
    const length = parts.reduce((n, p) => n + p.length, 0)
    this.#entries.push({ id, offset: this.#size, length, rawLength, kind })
    this.#parts.push(...parts)
    this.#size += length
    if (this.#size + this.#entries.length * 48 + PACK_FOOTER >= this.#target) await this.#cut()
  }

  /** Waits for pack writes in progress, ignoring their outcome (used on the way out of a failure). */
  async settle(): Promise<void> {
    await this.#chain.catch(() => {})
  }

  /** Writes what is buffered. */
  async flush(): Promise<void> {
    await this.#cut()
  }

  #cut(): Promise<void> {
    if (this.#entries.length > 0) {
      const parts = this.#parts
      const entries = this.#entries
      const size = this.#size
      this.#parts = []
      this.#entries = []
      this.#size = PACK_HEADER
      this.#chain = this.#chain.then(() => this.#write(parts, entries, size))
    }
    return this.#chain
  }

  async #write(parts: Buffer[], entries: PackEntry[], indexOffset: number): Promise<void> {
    const name = newPackName()
    await this.#beforeWrite(name)
    const trailer = packTrailer(entries, indexOffset)
    await this.#backend.create(name, [packHeader(), ...parts, trailer])
    const size = indexOffset + trailer.length
    this.#index.addPack({ name, size, modified: Date.now(), entries })
    this.packs.push(name)
    this.bytes += size
    this.written += entries.length
    this.#afterWrite(name)
    // The parts came from the chunk workers and only this writer holds them: free them now.
    release(parts)
  }
}
