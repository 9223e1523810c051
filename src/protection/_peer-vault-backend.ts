import type { PeerClient } from '../sites/index.js'
import { CairnError } from '../util/index.js'
import type { BackendObject, ObjectRange, VaultBackend } from '../vault/index.js'

// The primary's copy of a GRS vault as the secondary sees it over the pair: a vault backend whose
// reads are requests to the primary's replication routes (docs/replication.md). It writes nothing but
// the copy's lock (`locks/…`), which keeps the points being copied from prune and GC on the primary.

const BASE = '/api/v1/replication/vaults'

/** A read-only vault backend on the paired site's copy of a vault. */
export class PeerVaultBackend implements VaultBackend {
  readonly kind = 'peer'
  readonly location: string
  readonly #client: PeerClient
  readonly #path: string
  readonly #signal: AbortSignal | undefined

  constructor(client: PeerClient, vault: string, signal?: AbortSignal) {
    this.#client = client
    this.#path = `${BASE}/${encodeURIComponent(vault)}`
    this.location = `${client.url}${this.#path}`
    this.#signal = signal
  }

  async list(prefix: string): Promise<BackendObject[]> {
    return this.#client.json<BackendObject[]>(
      'GET',
      `${this.#path}/objects?prefix=${encodeURIComponent(prefix)}`,
      {
        ...(this.#signal ? { signal: this.#signal } : {}),
      },
    )
  }

  async get(name: string): Promise<Buffer> {
    return this.#read(name)
  }

  /** A range; with `into` (at least `length` bytes) the answer lands there as it arrives. */
  async getRange(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.#read(
      name,
      offset,
      length,
      into && into.length >= length ? into.subarray(0, length) : undefined,
    )
  }

  /** Many ranges in one request (the copy engine batches its chunk reads through this). */
  async getRanges(ranges: readonly ObjectRange[]): Promise<Buffer[]> {
    const res = await this.#client.request('POST', `${this.#path}/ranges`, {
      json: { ranges },
      timeoutMs: 60_000,
      ...(this.#signal ? { signal: this.#signal } : {}),
    })
    const total = ranges.reduce((n, r) => n + r.length, 0)
    if (res.body.length !== total)
      throw new CairnError(
        'VaultCorrupt',
        `Cannot replicate: ${ranges.length} ranges came back with ${res.body.length} of ${total} bytes`,
      )
    const out: Buffer[] = []
    let at = 0
    for (const r of ranges) {
      out.push(res.body.subarray(at, at + r.length))
      at += r.length
    }
    return out
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const lock = lockName(name)
    const body = Buffer.concat(Array.isArray(data) ? (data as Uint8Array[]) : [data as Uint8Array])
    await this.#client.request('PUT', `${this.#path}/locks/${encodeURIComponent(lock)}`, {
      json: { data: body.toString('base64') },
      ...(this.#signal ? { signal: this.#signal } : {}),
    })
  }

  async create(name: string): Promise<boolean> {
    throw readOnly(name)
  }

  async delete(name: string): Promise<void> {
    const lock = lockName(name)
    await this.#client.request('DELETE', `${this.#path}/locks/${encodeURIComponent(lock)}`)
  }

  async #read(name: string, offset?: number, length?: number, into?: Buffer): Promise<Buffer> {
    const q = new URLSearchParams({ name })
    if (offset !== undefined) q.set('offset', String(offset))
    if (length !== undefined) q.set('length', String(length))
    const res = await this.#client.request('GET', `${this.#path}/object?${q}`, {
      timeoutMs: 60_000,
      ...(into ? { into } : {}),
      ...(this.#signal ? { signal: this.#signal } : {}),
    })
    if (length !== undefined && res.body.length !== length)
      throw new CairnError(
        'VaultCorrupt',
        `Cannot replicate: ${name} at ${offset} came back with ${res.body.length} of ${length} bytes`,
      )
    return res.body
  }
}

function lockName(name: string): string {
  const m = /^locks\/([A-Za-z0-9._-]{1,128})$/.exec(name)
  if (!m) throw readOnly(name)
  return m[1]!
}

function readOnly(name: string): CairnError {
  return new CairnError(
    'ReplicationRefused',
    `Cannot write ${name} to the paired site's vault: replication only reads it`,
  )
}
