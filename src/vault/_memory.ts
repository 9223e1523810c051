import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// V8 frees dead Buffers only once their external memory has grown by tens of MiB since the last
// collection, in every isolate (the main thread and each worker). Backups and restores move 1 MiB
// buffers through quickly, so that slack, not live data, would dominate peak memory. The isolates here
// have tiny heaps, so a full collection every 16 MiB of chunk traffic costs well under a millisecond.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void
let since = 0

/** Counts bytes of buffers that just became garbage; collects every 16 MiB. */
export function churn(bytes: number): void {
  since += bytes
  if (since >= 16 * 1024 * 1024) {
    since = 0
    collect()
  }
}
