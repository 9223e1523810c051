// Process-wide: keep freed heap memory for the next allocations (native/heap.c, glibc's mallopt).
// node:http copies every received body chunk into a fresh malloc'd buffer that only the garbage
// collector frees, tens of MiB later; with glibc's defaults the freed top of the heap goes back to the
// system at once and the next chunks fault every page in again. Kept instead, an upload through the
// blob API faults 10-30x less and costs its server 15-30 % less CPU (BENCHMARKS.md, "Blob API").
// The kept heap is also backed by transparent huge pages where the kernel offers them on request
// (madvise): memory a process touches for the first time costs a page fault per 4 KiB page, ~12 µs each
// on this VM, and a one-shot backup's buffers in flight are mostly such memory; with huge pages that is
// one fault per 2 MiB (an S3 backup of the bench image: 50,000 -> 20,000 page faults, BENCHMARKS.md).
import { heapAddon } from './heap-addon.js'

/** Freed memory at the top of the heap kept up to this size (glibc's default: 128 KiB, adjusted). */
const TRIM_THRESHOLD = 256 * 1024 * 1024
/** Extra memory asked of the system each time the heap grows (glibc's default: 128 KiB). */
const TOP_PAD = 16 * 1024 * 1024
/** The main thread's heap advised for huge pages (address space only: memory is used as touched). */
const MAIN_HUGE_HEAP = 192 * 1024 * 1024
/** A worker thread's heap advised for huge pages (glibc gives a thread's arena heaps of 64 MiB). */
export const THREAD_HUGE_HEAP = 48 * 1024 * 1024
// (native/heap.c also fixes the mmap threshold at 32 MiB: glibc stops sliding it once the trim threshold is set.)

let applied: boolean | undefined

/**
 * Keeps freed heap memory for reuse, once per process, and backs the calling thread's heap with huge
 * pages (hugeHeap). Answers whether the heap is kept: false where the addon was not built, the C
 * library is not glibc, or `CAIRN_RETAIN_HEAP=0` turns it off.
 */
export function retainFreedHeap(): boolean {
  if (applied !== undefined) return applied
  applied = false
  if (process.env.CAIRN_RETAIN_HEAP === '0') return applied
  // Not built (no C compiler): the defaults stay.
  applied = heapAddon()?.retainFreedHeap(TRIM_THRESHOLD, TOP_PAD) ?? false
  if (applied) hugeHeap(MAIN_HUGE_HEAP)
  return applied
}

/**
 * Asks for transparent huge pages for the next `bytes` of the calling thread's heap; answers the bytes
 * advised. Only where the freed heap is kept (retainFreedHeap, or a worker whose process kept it):
 * otherwise the memory advised would go back to the system at once. Nothing with `CAIRN_HUGE_HEAP=0`,
 * where the addon was not built, the C library is not glibc or the kernel has no such advice.
 */
export function hugeHeap(bytes: number): number {
  if (process.env.CAIRN_HUGE_HEAP === '0' || process.env.CAIRN_RETAIN_HEAP === '0') return 0
  return heapAddon()?.hugeHeap(bytes) ?? 0
}

/** Whether retainFreedHeap has run in this process, and with what answer (undefined: not yet). */
export function heapRetained(): boolean | undefined {
  return applied
}
