import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { CairnError, heapRetained, THREAD_HUGE_HEAP } from '../util/index.js'
import { ChunkDamage, type ChunkKeys, type ChunkKind } from './_chunk-codec.js'
import type { ChunkRequest, ChunkWorkerInit } from './_chunk-worker.js'

interface Pending {
  resolve(v: Reply): void
  reject(e: Error): void
}
interface Reply {
  id?: Uint8Array
  parts?: Uint8Array[]
  many?: { id: Uint8Array; parts: Uint8Array[] }[]
  plain?: Uint8Array
  kind?: ChunkKind
  error?: string
  damage?: boolean
  kept?: number[]
  written?: number
  chunk?: number
  /** restoreLeaf with giveBack: the memory of the blobs it was given, moved back. */
  spent?: ArrayBuffer[]
  /** hash, seal with `pagesKey`: the digests of the data's 4 KiB pages. */
  pages?: Uint8Array
  /** hash with `back`: the data, moved back. */
  data?: Uint8Array
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
/** The buffer's memory, when the buffer is its sole view (so it can move to a worker). */
const owned = (b: Buffer): ArrayBuffer[] =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)
    ? [b.buffer as ArrayBuffer]
    : []

/** A sealed chunk: its id and its blob as parts. */
export interface Sealed {
  id: Buffer
  parts: Buffer[]
  length: number
  /** The digests of the chunk's 4 KiB pages, when asked for. */
  pages?: Buffer
}

/** Chunks up to this size are sealed in batches. */
const SMALL = 64 * 1024

function sealed(id: Uint8Array, parts: Uint8Array[]): Sealed {
  const ps = parts.map(asBuffer)
  return { id: asBuffer(id), parts: ps, length: ps.reduce((n, p) => n + p.length, 0) }
}

const WORKER_URL = new URL('./_chunk-worker.js', import.meta.url)

/** Workers of a pool by default: the cores, at most 4. */
export function defaultChunkWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()))
}

/** A small pool of worker threads that seal, hash and open chunks. */
export class ChunkPool {
  readonly #workers: { worker: Worker; pending: Map<number, Pending>; dead?: Error }[] = []
  #seq = 0
  #next = 0
  /** Small seals waiting to go to a worker together. */
  #small: {
    data: Buffer
    kind: ChunkKind
    transfer: boolean
    resolve: (r: Sealed) => void
    reject: (e: unknown) => void
  }[] = []
  #smallBytes = 0
  #smallScheduled = false

  constructor(keys: ChunkKeys | null, level: number, size = defaultChunkWorkers()) {
    const init: ChunkWorkerInit = {
      dataKey: keys?.dataKey ?? null,
      idKey: keys?.idKey ?? null,
      level,
      hugeHeap: heapRetained() ? THREAD_HUGE_HEAP : 0,
    }
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_URL, { workerData: init })
      const pending = new Map<number, Pending>()
      const slot: { worker: Worker; pending: Map<number, Pending>; dead?: Error } = { worker, pending }
      worker.on('message', (m: Reply & { seq: number }) => {
        const p = pending.get(m.seq)
        pending.delete(m.seq)
        p?.resolve(m)
      })
      // A worker that dies fails what it was doing; later calls go to the others.
      const die = (err: Error) => {
        slot.dead ??= err
        for (const p of pending.values()) p.reject(err)
        pending.clear()
      }
      worker.on('error', die)
      worker.on('exit', (code) => die(new Error(`a chunk worker exited with code ${code}`)))
      worker.unref()
      this.#workers.push(slot)
    }
  }

  /**
   * Hashes, compresses and encrypts a chunk; returns its id and blob parts. With `transfer`, `data`
   * moves to the worker (no copy) and must not be used afterwards.
   */
  async seal(
    data: Buffer,
    kind: ChunkKind,
    transfer = false,
    options: { pagesKey?: Uint8Array } = {},
  ): Promise<Sealed> {
    if (data.length <= SMALL && !options.pagesKey) {
      return new Promise<Sealed>((resolve, reject) => {
        this.#small.push({ data, kind, transfer, resolve, reject })
        this.#smallBytes += data.length
        if (this.#small.length >= 32 || this.#smallBytes >= 256 * 1024) this.#sendSmall()
        else if (!this.#smallScheduled) {
          this.#smallScheduled = true
          setImmediate(() => {
            this.#smallScheduled = false
            this.#sendSmall()
          })
        }
      })
    }
    const r = await this.#call(
      { op: 'seal', data, kind, ...(options.pagesKey ? { pagesKey: options.pagesKey } : {}) },
      transfer ? owned(data) : [],
    )
    const out = sealed(r.id!, r.parts!)
    if (r.pages) out.pages = asBuffer(r.pages)
    return out
  }

  #sendSmall(): void {
    const batch = this.#small.splice(0)
    this.#smallBytes = 0
    if (batch.length === 0) return
    this.#call(
      {
        op: 'sealMany',
        data: new Uint8Array(0),
        items: batch.map((b) => b.data),
        kinds: batch.map((b) => b.kind),
      },
      batch.flatMap((b) => (b.transfer ? owned(b.data) : [])),
    ).then(
      (r) => {
        batch.forEach((b, i) => {
          const x = r.many?.[i]
          if (x) b.resolve(sealed(x.id, x.parts))
          else b.reject(new Error('a chunk worker answered a batch short'))
        })
      },
      (err) => {
        for (const b of batch) b.reject(err)
      },
    )
  }

  /**
   * Reads runs of an open file in a worker, drops those that are all zeros and seals the others side by
   * side as one chunk. Returns the indexes of the runs kept (in order) and the chunk, null when none was.
   */
  async readSeal(
    fd: number,
    runs: { start: number; end: number }[],
    kind: ChunkKind,
  ): Promise<{ sealed: Sealed | null; kept: number[] }> {
    const r = await this.#call({
      op: 'readSeal',
      data: new Uint8Array(0),
      fd,
      starts: runs.map((x) => x.start),
      lengths: runs.map((x) => x.end - x.start),
      kind,
    })
    const kept = r.kept ?? []
    return { sealed: kept.length > 0 ? sealed(r.id!, r.parts!) : null, kept }
  }

  /** The id a chunk would have. */
  async hash(data: Buffer): Promise<Buffer> {
    return asBuffer((await this.#call({ op: 'hash', data })).id!)
  }

  /**
   * The id a chunk would have, with the digests of its 4 KiB pages under `pagesKey` when given. The data moves to the
   * worker and back (no copy each way, which cost more of this thread than the hashing saved): use the
   * `data` answered, never the buffer given.
   */
  async hashMoving(
    data: Buffer,
    pagesKey: Uint8Array | undefined,
  ): Promise<{ id: Buffer; pages?: Buffer; data: Buffer }> {
    const transfer = owned(data)
    const r = await this.#call(
      {
        op: 'hash',
        data,
        ...(pagesKey ? { pagesKey } : {}),
        ...(transfer.length ? { back: true } : {}),
      },
      transfer,
    )
    return {
      id: asBuffer(r.id!),
      ...(r.pages ? { pages: asBuffer(r.pages) } : {}),
      data: r.data ? asBuffer(r.data) : data,
    }
  }

  /** Opens and checks a chunk blob (which moves to the worker when it can); throws ChunkDamage when it is bad. */
  async open(
    blob: Buffer,
    id: Buffer,
    options: { rehash?: boolean } = {},
  ): Promise<{ plain: Buffer; kind: ChunkKind }> {
    const r = await this.#call(
      { op: 'open', data: blob, id: new Uint8Array(id), rehash: options.rehash !== false },
      owned(blob),
    )
    return { plain: asBuffer(r.plain!), kind: r.kind! }
  }

  /**
   * Checks chunk blobs that lie side by side in one buffer (each opened and re-hashed) in one worker
   * call; the buffer moves to the worker and back when it is the sole view of its memory (no copy).
   * Answers the buffer to use from now on (the one given may be emptied by the move); throws
   * ChunkDamage with `chunk` (the index of the bad blob).
   */
  async checkMany(buffer: Buffer, blobs: { offset: number; length: number; id: Buffer }[]): Promise<Buffer> {
    const r = await this.#call(
      {
        op: 'checkMany',
        data: buffer,
        starts: blobs.map((b) => b.offset),
        lengths: blobs.map((b) => b.length),
        ids: blobs.map((b) => new Uint8Array(b.id)),
      },
      owned(buffer),
    )
    return asBuffer(r.plain!)
  }

  /**
   * Has a worker restore one leaf: read its chunks from their open pack files, open them and write the
   * extents (sorted; `chunk` indexes `chunks`) to the target's descriptors. Returns the bytes written;
   * throws ChunkDamage, with `chunk` set, when a blob is bad.
   */
  async restoreLeaf(
    job: {
      /** Where each blob is in an open pack file, or the blob itself (it moves to the worker). */
      chunks: { id: Buffer; fd: number; position: number; length: number; blob?: Buffer }[]
      extents: { start: number; length: number; chunkOffset: number; chunk: number }[]
      out: { fd: number; direct: number | null }
    },
    /**
     * The memory the blobs are views of, when they share it (a pack read's): it moves to the worker
     * whole and comes back through `returned` once the leaf is written.
     */
    shared?: { memory: ArrayBuffer[]; returned: (memory: ArrayBuffer) => void },
  ): Promise<number> {
    const r = await this.#call(
      {
        op: 'restoreLeaf',
        data: new Uint8Array(0),
        chunks: job.chunks.map((c) => ({ ...c, id: new Uint8Array(c.id) })),
        out: job.out,
        starts: job.extents.map((e) => e.start),
        lengths: job.extents.map((e) => e.length),
        offsets: job.extents.map((e) => e.chunkOffset),
        which: job.extents.map((e) => e.chunk),
        ...(shared ? { giveBack: true } : {}),
      },
      shared ? [...new Set(shared.memory)] : job.chunks.flatMap((c) => (c.blob ? owned(c.blob) : [])),
    )
    for (const m of r.spent ?? []) shared?.returned(m)
    return r.written ?? 0
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.worker.terminate()))
    this.#workers.length = 0
  }

  #call(req: Omit<ChunkRequest, 'seq'>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const live = this.#workers.filter((w) => !w.dead)
    if (live.length === 0) {
      return Promise.reject(
        new CairnError(
          'Internal',
          `Cannot hash, compress or encrypt: every chunk worker has stopped (${this.#workers[0]?.dead?.message ?? 'closed'})`,
        ),
      )
    }
    let best = live[this.#next % live.length]!
    this.#next++
    for (const w of live) if (w.pending.size < best.pending.size) best = w
    const seq = ++this.#seq
    return new Promise<Reply>((resolve, reject) => {
      best.pending.set(seq, {
        resolve: (r) => {
          if (r.error === undefined) resolve(r)
          else if (!r.damage) reject(new Error(r.error))
          else {
            const damage = new ChunkDamage(r.error)
            if (r.chunk !== undefined) damage.chunk = r.chunk
            reject(damage)
          }
        },
        reject,
      })
      best.worker.ref()
      best.worker.postMessage({ ...req, seq }, transfer)
    }).finally(() => {
      if (best.pending.size === 0) best.worker.unref()
    })
  }
}
