import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { isMainThread, MessageChannel } from 'node:worker_threads'

// V8 frees dead Buffers only once their external memory has grown by tens of MiB since the last
// collection, in every isolate (the main thread and each worker). Backups and restores move 1 MiB
// buffers through quickly, so that slack, not live data, would dominate peak memory.
//
// Buffers that die young (a chunk worker's blobs: one arrives, is opened or sealed, the result moves
// out; a restore's plaintexts: written, then dropped) are freed by a minor collection (scavenge, well
// under a millisecond), run every 4 MiB of such traffic. Measured on a 512 MiB restore: full
// collections every 16 MiB held 175 MiB peak and took 170 ms of main-thread CPU; full ones every
// 4 MiB cost 40% more CPU; minor ones every 4 MiB held 145–150 MiB and cost the least.
// Buffers that outlive several awaits are promoted, so only a full collection frees them: the main
// thread of a restore runs one every 64 MiB. The parts of a written pack and a worker's spent inputs,
// whose owner is known, are freed at once with `release` instead (full backup peak 160 -> 143 MiB, and
// no more full collections every 16 MiB on a backup's main thread).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void
const MiB = 1024 * 1024
let young = 0
let old = 0

/** Counts bytes of buffers that just became garbage after living a while; full collection every 16 MiB. */
function churn(bytes: number): void {
  old += bytes
  if (old >= 16 * MiB) {
    old = 0
    young = 0
    gc()
  }
}

/**
 * Counts bytes of buffers that just became garbage soon after they were made: minor collection every
 * 4 MiB (on the main thread also a full one every 64 MiB, for those that were promoted all the same).
 */
export function churnYoung(bytes: number): void {
  young += bytes
  if (young >= 4 * MiB) {
    young = 0
    gc({ type: 'minor' })
  }
  if (isMainThread) churn(bytes / 4)
}

/**
 * Frees the memory of buffers nobody uses any more at once, instead of at some later collection: their
 * ArrayBuffers are moved (transferred) into a message on a channel that is then closed, which drops
 * the message and its memory. Only buffers that are the sole view of their whole ArrayBuffer are freed
 * (others may share it); each must not be used afterwards: it reads as empty.
 */
export function release(buffers: readonly Uint8Array[]): void {
  const owned = new Set<ArrayBuffer>()
  for (const b of buffers) {
    if (b.byteLength > 0 && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) {
      if (!(b.buffer instanceof SharedArrayBuffer)) owned.add(b.buffer as ArrayBuffer)
    }
  }
  if (owned.size === 0) return
  const { port1, port2 } = new MessageChannel()
  port1.postMessage(null, [...owned])
  port1.close()
  port2.close()
}
