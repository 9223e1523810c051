import { CairnError } from '../util/index.js'
import type { ChunkKind } from './_chunk-codec.js'
import { PACK_FOOTER, type PackEntry, parsePackFooter, parsePackIndex } from './_pack.js'
import type { VaultBackend } from './vault-backend.js'

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

/** Which pack holds each chunk, built from the pack indexes (trailers) and kept in memory. */
export class ChunkIndex {
  readonly #backend: VaultBackend
  readonly #chunks = new Map<string, ChunkLocation>()
  readonly #packs = new Map<string, PackInfo>()
  /** Packs whose index cannot be read, with the reason. */
  readonly damaged = new Map<string, string>()
  #refreshing: Promise<void> | undefined

  constructor(backend: VaultBackend) {
    this.#backend = backend
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
    for (const n of this.damaged.keys()) if (!names.has(n)) this.damaged.delete(n)
    const fresh = listed.filter((o) => !this.#packs.has(o.name) && !this.damaged.has(o.name))
    let next = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < fresh.length) {
          const o = fresh[next++]!
          try {
            this.addPack({ ...o, entries: await readPackIndex(this.#backend, o.name, o.size) })
          } catch (err) {
            if (!(err instanceof CairnError)) throw err
            if (err.code === 'VaultObjectMissing') continue
            this.damaged.set(o.name, err.message)
          }
        }
      }),
    )
    if (gone) this.#rebuild()
  }

  #rebuild(): void {
    this.#chunks.clear()
    for (const p of this.#packs.values()) {
      for (const e of p.entries)
        if (!this.#chunks.has(key(e.id))) this.#chunks.set(key(e.id), { pack: p.name, ...pick(e) })
    }
  }
}

function pick(e: PackEntry): Omit<ChunkLocation, 'pack'> {
  return { offset: e.offset, length: e.length, rawLength: e.rawLength, kind: e.kind }
}

/** Reads and checks the index of one pack. */
export async function readPackIndex(backend: VaultBackend, name: string, size: number): Promise<PackEntry[]> {
  if (size < PACK_FOOTER)
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: it is truncated (${size} bytes)`)
  const footer = await backend.getRange(name, size - PACK_FOOTER, PACK_FOOTER)
  const { offset, count, sum } = parsePackFooter(footer, name, size)
  const index = count === 0 ? Buffer.alloc(0) : await backend.getRange(name, offset, count * 48)
  return parsePackIndex(index, sum, name, offset)
}
