// Worker thread body: hashes, compresses, encrypts and opens chunks off the main thread.
import { parentPort, workerData } from 'node:worker_threads'
import { ChunkDamage, type ChunkKeys, type ChunkKind, chunkId, openChunk, sealChunk } from './_chunk-codec.js'
import { churnYoung, release } from './_memory.js'

interface Init {
  dataKey: Uint8Array | null
  idKey: Uint8Array | null
  level: number
}

const init = workerData as Init
const keys: ChunkKeys | null =
  init.dataKey && init.idKey ? { dataKey: Buffer.from(init.dataKey), idKey: Buffer.from(init.idKey) } : null

/** A request to the worker. */
export interface ChunkRequest {
  seq: number
  op: 'seal' | 'sealMany' | 'hash' | 'open'
  data: Uint8Array
  /** sealMany: the chunks and their kinds (`data` is then empty). */
  items?: Uint8Array[]
  kinds?: ChunkKind[]
  kind?: ChunkKind
  id?: Uint8Array
  rehash?: boolean
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
const own = (b: Buffer): ArrayBuffer[] =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.byteLength >= 8192
    ? [b.buffer as ArrayBuffer]
    : []

parentPort?.on('message', (m: ChunkRequest) => {
  try {
    const data = asBuffer(m.data)
    churnYoung(data.length)
    if (m.op === 'sealMany') {
      // Small chunks (changed 4 KiB runs) come in batches: one message each way for many of them.
      const items = m.items ?? []
      const sealed = items.map((d, i) => sealChunk(asBuffer(d), m.kinds?.[i] ?? 0, keys, init.level))
      const many = sealed.map(({ id, parts }) => ({
        id: new Uint8Array(id),
        parts: parts.map((p) => (own(p).length ? p : new Uint8Array(p))),
      }))
      parentPort?.postMessage(
        { seq: m.seq, many },
        many.flatMap((x) => x.parts.flatMap((p) => own(p as Buffer))),
      )
      // Inputs that did not move back out as parts are garbage now.
      release(items)
    } else if (m.op === 'hash') {
      parentPort?.postMessage({ seq: m.seq, id: new Uint8Array(chunkId(data, keys)) })
      release([data])
    } else if (m.op === 'seal') {
      const { id, parts } = sealChunk(data, m.kind ?? 0, keys, init.level)
      // Small parts may sit in Node's shared pool: send exact copies, never the pool itself.
      const out = parts.map((p) => (own(p).length ? p : new Uint8Array(p)))
      parentPort?.postMessage(
        { seq: m.seq, id: new Uint8Array(id), parts: out },
        out.flatMap((p) => own(p as Buffer)),
      )
      release([data])
    } else {
      const { plain, kind } = openChunk(data, asBuffer(m.id ?? new Uint8Array()), keys, {
        rehash: m.rehash !== false,
      })
      const out = own(plain).length ? plain : new Uint8Array(plain)
      parentPort?.postMessage({ seq: m.seq, plain: out, kind }, own(out as Buffer))
      release([data])
    }
  } catch (err) {
    parentPort?.postMessage({
      seq: m.seq,
      error: err instanceof Error ? err.message : String(err),
      damage: err instanceof ChunkDamage,
    })
  }
})
