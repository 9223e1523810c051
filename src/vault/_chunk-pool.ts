import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { ChunkDamage, type ChunkKeys, type ChunkKind } from './_chunk-codec.js'
import type { ChunkRequest } from './_chunk-worker.js'

interface Pending {
  resolve(v: Reply): void
  reject(e: Error): void
}
interface Reply {
  id?: Uint8Array
  blob?: Uint8Array
  plain?: Uint8Array
  kind?: ChunkKind
  error?: string
  damage?: boolean
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

/** A small pool of worker threads that seal, hash and open chunks. */
export class ChunkPool {
  readonly #workers: { worker: Worker; pending: Map<number, Pending> }[] = []
  #seq = 0
  #next = 0

  constructor(
    keys: ChunkKeys | null,
    level: number,
    size = Math.max(1, Math.min(4, availableParallelism())),
  ) {
    const url = new URL('./_chunk-worker.js', import.meta.url)
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, {
        workerData: { dataKey: keys?.dataKey ?? null, idKey: keys?.idKey ?? null, level },
      })
      const pending = new Map<number, Pending>()
      worker.on('message', (m: Reply & { seq: number }) => {
        const p = pending.get(m.seq)
        pending.delete(m.seq)
        p?.resolve(m)
      })
      worker.on('error', (err) => {
        for (const p of pending.values()) p.reject(err)
        pending.clear()
      })
      worker.unref()
      this.#workers.push({ worker, pending })
    }
  }

  /** Hashes, compresses and encrypts a chunk. */
  async seal(data: Buffer, kind: ChunkKind): Promise<{ id: Buffer; blob: Buffer }> {
    const r = await this.#call({ op: 'seal', data, kind })
    return { id: asBuffer(r.id!), blob: asBuffer(r.blob!) }
  }

  /** The id a chunk would have. */
  async hash(data: Buffer): Promise<Buffer> {
    return asBuffer((await this.#call({ op: 'hash', data })).id!)
  }

  /** Opens and checks a chunk blob; throws ChunkDamage when it is bad. */
  async open(blob: Buffer, id: Buffer): Promise<{ plain: Buffer; kind: ChunkKind }> {
    const r = await this.#call({ op: 'open', data: blob, id })
    return { plain: asBuffer(r.plain!), kind: r.kind! }
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.worker.terminate()))
    this.#workers.length = 0
  }

  #call(req: Omit<ChunkRequest, 'seq'>): Promise<Reply> {
    let best = this.#workers[this.#next % this.#workers.length]!
    this.#next++
    for (const w of this.#workers) if (w.pending.size < best.pending.size) best = w
    const seq = ++this.#seq
    return new Promise<Reply>((resolve, reject) => {
      best.pending.set(seq, {
        resolve: (r) => {
          if (r.error !== undefined) reject(r.damage ? new ChunkDamage(r.error) : new Error(r.error))
          else resolve(r)
        },
        reject,
      })
      best.worker.ref()
      best.worker.postMessage({ ...req, seq })
    }).finally(() => {
      if (best.pending.size === 0) best.worker.unref()
    })
  }
}
