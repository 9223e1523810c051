// Worker thread body: hashes, compresses, encrypts and opens chunks off the main thread.
import { parentPort, workerData } from 'node:worker_threads'
import { ChunkDamage, type ChunkKeys, type ChunkKind, chunkId, openChunk, sealChunk } from './_chunk-codec.js'

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
  op: 'seal' | 'hash' | 'open'
  data: Uint8Array
  kind?: ChunkKind
  id?: Uint8Array
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
const own = (b: Buffer): ArrayBuffer[] =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.byteLength >= 8192
    ? [b.buffer as ArrayBuffer]
    : []

parentPort?.on('message', async (m: ChunkRequest) => {
  try {
    const data = asBuffer(m.data)
    if (m.op === 'hash') {
      parentPort?.postMessage({ seq: m.seq, id: chunkId(data, keys) })
    } else if (m.op === 'seal') {
      const { id, blob } = await sealChunk(data, m.kind ?? 0, keys, init.level)
      parentPort?.postMessage({ seq: m.seq, id, blob }, own(blob))
    } else {
      const { plain, kind } = await openChunk(data, asBuffer(m.id ?? new Uint8Array()), keys)
      parentPort?.postMessage({ seq: m.seq, plain, kind }, own(plain))
    }
  } catch (err) {
    parentPort?.postMessage({
      seq: m.seq,
      error: err instanceof Error ? err.message : String(err),
      damage: err instanceof ChunkDamage,
    })
  }
})
