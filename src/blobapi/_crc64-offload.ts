// The CRC64 every Put Page answers with. With the native addon it is summed inline (a 4 MiB body
// costs ~0.5 ms, less than a hand-off to another thread). With the WebAssembly fallback (~3 ms per
// 4 MiB) it is computed off the event loop: a body in shared memory (the reused page buffers, every
// body of 64 KiB or more) is read in place by one worker thread while the store writes it. Small
// bodies, and every body should the worker fail, are summed inline.
import { Worker } from 'node:worker_threads'
import { crc64, crc64Implementation } from './_crc64.js'

/**
 * True when large bodies are summed on the worker, which needs them in shared memory. Otherwise the page
 * buffers must not be shared: V8 copies into a SharedArrayBuffer with a word-by-word relaxed-atomic
 * loop, which cost the upload about 0.4 s/GiB of the request thread receiving bodies into them.
 */
export const crc64WantsSharedBodies = crc64Implementation === 'wasm'

/** Bodies shorter than this are summed inline: posting them costs more than it saves. */
const OFFLOAD_MIN = 64 * 1024

let worker: Worker | undefined
let failed = false
let nextSeq = 0
const pending = new Map<number, { resolve: (crc: string) => void; data: Uint8Array }>()

function start(): Worker | undefined {
  if (failed) return undefined
  if (worker !== undefined) return worker
  try {
    const w = new Worker(new URL('./_crc64-worker.js', import.meta.url))
    w.on('message', (m: { seq: number; crc: string }) => {
      const p = pending.get(m.seq)
      pending.delete(m.seq)
      p?.resolve(m.crc)
    })
    // A worker that dies: what it was doing is summed inline, and so is everything after.
    const die = () => {
      failed = true
      worker = undefined
      for (const p of pending.values()) p.resolve(crc64(p.data).toString('base64'))
      pending.clear()
    }
    w.on('error', die)
    w.on('exit', die)
    w.unref()
    worker = w
    return w
  } catch {
    failed = true
    return undefined
  }
}

/** Azure's CRC64 of `data` in base64, as `x-ms-content-crc64` carries it. */
export function crc64Of(data: Uint8Array): Promise<string> {
  const memory = data.buffer
  const w =
    crc64WantsSharedBodies && data.length >= OFFLOAD_MIN && memory instanceof SharedArrayBuffer
      ? start()
      : undefined
  if (w === undefined) return Promise.resolve(crc64(data).toString('base64'))
  return new Promise((resolve) => {
    const seq = nextSeq++
    pending.set(seq, { resolve, data })
    w.postMessage({ seq, memory, offset: data.byteOffset, length: data.length })
  })
}
