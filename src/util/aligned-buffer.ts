// Page-aligned memory for direct I/O (O_DIRECT needs the memory, the file offset and the length
// aligned to the device's logical block). A WebAssembly memory is mapped in whole pages, so its buffer
// starts on a page boundary; `isAligned` recognises such buffers (and aligned views of them) so that a
// writer can hand them to the device without staging them first.
import { heapAddon } from './heap-addon.js'

/** Alignment of direct I/O: the largest logical block size in use (4 KiB sectors). */
export const ALIGN = 4096

// The one WebAssembly API used here (its types come with the DOM library, which this project leaves out).
declare const WebAssembly: {
  Memory: new (descriptor: {
    initial: number
    maximum: number
    shared?: boolean
  }) => {
    buffer: ArrayBuffer | SharedArrayBuffer
  }
}

/** The ArrayBuffers `alignedBuffer` made. */
const aligned = new WeakSet<ArrayBufferLike>()

/** Bytes of a transparent huge page (x86-64, arm64 with 4 KiB pages). */
const HUGE_PAGE = 2 * 1024 * 1024

/**
 * Page-aligned memory of at least `bytes` (a multiple of 64 KiB): fit for direct reads and writes.
 * `shared`: a SharedArrayBuffer, which worker threads can read without a copy.
 * `hugePages`: for long-lived, reused buffers of whole 2 MiB pages: backed by transparent huge pages
 * where the kernel allows it (native/heap.c), so the first touch of a 4 MiB buffer costs 2 page faults
 * instead of 1,024 (each costs tens of microseconds on a virtual machine). 2 MiB more address space is
 * reserved, never touched.
 */
export function alignedBuffer(
  bytes: number,
  options: { shared?: boolean; hugePages?: boolean } = {},
): Buffer {
  // 64 KiB wasm pages; the memory itself starts on a page boundary.
  const pages = Math.max(1, Math.ceil(bytes / 65536))
  const huge = options.hugePages === true && (pages * 65536) % HUGE_PAGE === 0 ? heapAddon() : undefined
  const extra = huge === undefined ? 0 : HUGE_PAGE / 65536
  const memory = new WebAssembly.Memory({
    initial: pages + extra,
    maximum: pages + extra,
    shared: options.shared ?? false,
  }).buffer
  aligned.add(memory)
  const all = Buffer.from(memory)
  if (huge === undefined) return all
  // A view starting on a 2 MiB boundary of the address space (always a page boundary of the memory).
  const offset = huge.hugePages(all)
  const from = offset < 0 ? 0 : offset
  return all.subarray(from, from + pages * 65536)
}

/** True when `b` starts on an ALIGN boundary of memory from `alignedBuffer`. */
export function isAligned(b: Uint8Array): boolean {
  return b.byteOffset % ALIGN === 0 && aligned.has(b.buffer)
}
