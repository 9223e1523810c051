// The native heap addon (native/heap.c, built by `npm run build`), loaded once: glibc's mallopt for
// retainFreedHeap, madvise for huge-page buffers and heaps, V8's count of external memory. Undefined where it was not built (no C compiler).
import { nativeAddon } from './native-addon.js'

export interface HeapAddon {
  retainFreedHeap(trimBytes: number, topPadBytes: number): boolean
  /** Advises huge pages for the whole 2 MiB pages in `b`; the offset of the first, or -1. */
  hugePages(b: Uint8Array): number
  /** Advises huge pages for the next `bytes` of the calling thread's malloc arena; the bytes advised. */
  hugeHeap(bytes: number): number
  /** Adds `delta` to V8's count of this thread's external memory; answers the count. */
  adjustExternalMemory(delta: number): number
}

let addon: HeapAddon | null | undefined

export function heapAddon(): HeapAddon | undefined {
  if (addon === undefined) {
    addon = nativeAddon<HeapAddon>('heap') ?? null
  }
  return addon ?? undefined
}

/**
 * Adds `delta` bytes to V8's count of the calling thread's memory outside its heap and answers the
 * count; undefined (nothing done) where the addon was not built.
 */
export function adjustExternalMemory(delta: number): number | undefined {
  return heapAddon()?.adjustExternalMemory(delta)
}
