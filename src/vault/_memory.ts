import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { isMainThread } from 'node:worker_threads'

// V8 frees dead Buffers only once their external memory has grown by tens of MiB since the last
// collection, in every isolate (the main thread and each worker). Backups and restores move 1 MiB
// buffers through quickly, so that slack, not live data, would dominate peak memory.
//
// A chunk worker's buffers die young (a blob arrives, is opened or sealed, the result moves out), so a
// minor collection (scavenge, well under a millisecond) frees them; it runs every 4 MiB of traffic.
// Measured on a 512 MiB restore: full collections every 16 MiB held 175 MiB peak; full ones every
// 4 MiB cost 40% more CPU; minor ones every 4 MiB held 150 MiB and cost no CPU worth measuring.
// On the main thread buffers outlive awaits (pack parts wait for their pack) and are promoted, so only
// a full collection frees them; it runs every 16 MiB (minor ones there measured worse).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void
const every = (isMainThread ? 16 : 4) * 1024 * 1024
const collect = isMainThread ? () => gc() : () => gc({ type: 'minor' })
let since = 0

/** Counts bytes of buffers that just became garbage; collects every few MiB (see above). */
export function churn(bytes: number): void {
  since += bytes
  if (since >= every) {
    since = 0
    collect()
  }
}
