// Process-wide: keep freed heap memory for the next allocations (native/heap.c, glibc's mallopt).
// node:http copies every received body chunk into a fresh malloc'd buffer that only the garbage
// collector frees, tens of MiB later; with glibc's defaults the freed top of the heap goes back to the
// system at once and the next chunks fault every page in again. Kept instead, an upload through the
// blob API faults 10-30x less and costs its server 15-30 % less CPU (BENCHMARKS.md, "Blob API").
import { heapAddon } from './heap-addon.js'

/** Freed memory at the top of the heap kept up to this size (glibc's default: 128 KiB, adjusted). */
const TRIM_THRESHOLD = 256 * 1024 * 1024
/** Extra memory asked of the system each time the heap grows (glibc's default: 128 KiB). */
const TOP_PAD = 16 * 1024 * 1024
// (native/heap.c also fixes the mmap threshold at 32 MiB: glibc stops sliding it once the trim threshold is set.)

let applied: boolean | undefined

/**
 * Keeps freed heap memory for reuse, once per process. Answers whether it is in effect: false where
 * the addon was not built, the C library is not glibc, or `CAIRN_RETAIN_HEAP=0` turns it off.
 */
export function retainFreedHeap(): boolean {
  if (applied !== undefined) return applied
  applied = false
  if (process.env.CAIRN_RETAIN_HEAP === '0') return applied
  // Not built (no C compiler): the defaults stay.
  applied = heapAddon()?.retainFreedHeap(TRIM_THRESHOLD, TOP_PAD) ?? false
  return applied
}

/** Whether retainFreedHeap has run in this process, and with what answer (undefined: not yet). */
export function heapRetained(): boolean | undefined {
  return applied
}
