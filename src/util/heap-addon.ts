// The native heap addon (native/heap.c, built by `npm run build`), loaded once: glibc's mallopt for
// retainFreedHeap, madvise for huge-page buffers. Undefined where it was not built (no C compiler).
import { createRequire } from 'node:module'

export interface HeapAddon {
  retainFreedHeap(trimBytes: number, topPadBytes: number): boolean
  /** Advises huge pages for the whole 2 MiB pages in `b`; the offset of the first, or -1. */
  hugePages(b: Uint8Array): number
}

let addon: HeapAddon | null | undefined

export function heapAddon(): HeapAddon | undefined {
  if (addon === undefined) {
    try {
      // dist/src/util/ → native/build/ at the package root.
      addon = createRequire(import.meta.url)('../../../native/build/heap.node') as HeapAddon
    } catch {
      addon = null
    }
  }
  return addon ?? undefined
}
