import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { isMainThread, MessageChannel } from 'node:worker_threads'
import { adjustExternalMemory } from '../util/index.js'

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

/** The ArrayBuffer that `b` is the sole view of (its whole memory), if it is; else undefined. */
function wholeBuffer(b: Uint8Array): ArrayBuffer | undefined {
  if (b.byteLength === 0 || b.byteOffset !== 0 || b.byteLength !== b.buffer.byteLength) return
  if (b.buffer instanceof SharedArrayBuffer) return
  return b.buffer as ArrayBuffer
}

// V8 counts the memory of every ArrayBuffer a thread holds and starts a full collection each time that
// count grows 64 MiB past its value at the last one. An object-store backup holds its packs in flight
// (~100 MiB at times, the folder vault's ~10 MiB), which no collection can free, since they are in use,
// and which the pack writer frees itself (`release`) once written: an S3 or Azure backup of the bench
// image ran 10-12 full collections on its main thread for them, the folder vault none. Memory given to
// `disown` is taken out of V8's count while held; `release` puts it back just before freeing it, and a
// buffer dropped without `release` (a failed write, an abandoned backup) is put back once V8 collects
// it (the registry below), so the count never drifts.
const disowned = new FinalizationRegistry<number>((bytes) => {
  adjustExternalMemory(bytes)
})

/**
 * Takes buffers that their owner will free with `release` out of V8's count of external memory (only
 * those that are the sole view of their whole ArrayBuffer, the only ones `release` frees), so that
 * holding them sets off no collection. Does nothing where the native heap addon was not built.
 */
export function disown(buffers: readonly Uint8Array[]): void {
  // No addon: nothing is taken out, so nothing is to be put back.
  if (adjustExternalMemory(0) === undefined) return
  let bytes = 0
  for (const b of buffers) {
    const ab = wholeBuffer(b)
    // Each ArrayBuffer once (one already out stays registered once): else it would go back twice.
    if (!ab || disowned.unregister(ab)) {
      if (ab) disowned.register(ab, ab.byteLength, ab)
      continue
    }
    disowned.register(ab, ab.byteLength, ab)
    bytes += ab.byteLength
  }
  if (bytes > 0) adjustExternalMemory(-bytes)
}

/**
 * Frees the memory of buffers nobody uses any more at once, instead of at some later collection: their
 * ArrayBuffers are moved (transferred) into a message on a channel that is then closed, which drops
 * the message and its memory. Only buffers that are the sole view of their whole ArrayBuffer are freed
 * (others may share it); each must not be used afterwards: it reads as empty. Memory that `disown`
 * took out of V8's count goes back into it first (V8 takes it out again as the buffer is freed).
 */
export function release(buffers: readonly Uint8Array[]): void {
  const owned = new Set<ArrayBuffer>()
  for (const b of buffers) {
    const ab = wholeBuffer(b)
    if (ab) owned.add(ab)
  }
  if (owned.size === 0) return
  let back = 0
  for (const ab of owned) if (disowned.unregister(ab)) back += ab.byteLength
  if (back > 0) adjustExternalMemory(back)
  const { port1, port2 } = new MessageChannel()
  port1.postMessage(null, [...owned])
  port1.close()
  port2.close()
}
