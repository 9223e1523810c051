import { CairnError } from '../util/index.js'
import { checkObjectName } from './_object-name.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

interface StoredObject {
  data: Buffer
  modified: number
}

/** Named stores of `memory://NAME` locations: every backend opened on one name sees the same objects. */
const named = new Map<string, Map<string, StoredObject>>()

/**
 * A vault backend in this process's memory, for tests: the same promises as a folder or an object
 * store (copies in and out, atomic replace, create-if-absent), no durability. Backends opened on one
 * name share their objects until `MemoryVaultBackend.drop(name)` or the process ends.
 */
export class MemoryVaultBackend implements VaultBackend {
  readonly kind = 'memory'
  readonly location: string
  readonly #objects: Map<string, StoredObject>

  /** A backend on the store `name` (made on first use). */
  constructor(name: string) {
    this.location = `memory://${name}`
    let objects = named.get(name)
    if (!objects) {
      objects = new Map()
      named.set(name, objects)
    }
    this.#objects = objects
  }

  /** Forgets the objects of the store `name`. */
  static drop(name: string): void {
    named.delete(name)
  }

  async list(prefix: string): Promise<BackendObject[]> {
    await tick()
    const out: BackendObject[] = []
    for (const [name, o] of this.#objects) {
      if (name.startsWith(prefix)) out.push({ name, size: o.data.length, modified: o.modified })
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async get(name: string): Promise<Buffer> {
    const o = await this.#need(name)
    return Buffer.from(o.data)
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    const o = await this.#need(name)
    return Buffer.from(o.data.subarray(offset, offset + length))
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    checkObjectName(name)
    const copy = concat(data)
    await tick()
    this.#objects.set(name, { data: copy, modified: Date.now() })
  }

  async create(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<boolean> {
    checkObjectName(name)
    const copy = concat(data)
    await tick()
    if (this.#objects.has(name)) return false
    this.#objects.set(name, { data: copy, modified: Date.now() })
    return true
  }

  async delete(name: string): Promise<void> {
    checkObjectName(name)
    await tick()
    this.#objects.delete(name)
  }

  async #need(name: string): Promise<StoredObject> {
    checkObjectName(name)
    await tick()
    const o = this.#objects.get(name)
    if (!o) {
      throw new CairnError(
        'VaultObjectMissing',
        `Cannot read "${name}": it is missing from the vault at ${this.location}`,
      )
    }
    return o
  }
}

/** One copy of the parts, so a caller reusing its buffers cannot change a stored object. */
function concat(data: Uint8Array | readonly Uint8Array[]): Buffer {
  return data instanceof Uint8Array ? Buffer.from(data) : Buffer.concat(data)
}

/** Yields to the event loop like real I/O would, so concurrent callers interleave. */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
