// Page-aligned memory for direct I/O (O_DIRECT needs the memory, the file offset and the length
// aligned to the device's logical block). A WebAssembly memory is mapped in whole pages, so its buffer
// starts on a page boundary; `isAligned` recognises such buffers (and aligned views of them) so that a
// writer can hand them to the device without staging them first.

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

/**
 * Page-aligned memory of at least `bytes` (a multiple of 64 KiB): fit for direct reads and writes.
 * `shared`: a SharedArrayBuffer, which worker threads can read without a copy.
 */
export function alignedBuffer(bytes: number, options: { shared?: boolean } = {}): Buffer {
  // 64 KiB wasm pages; the memory itself starts on a page boundary.
  const pages = Math.max(1, Math.ceil(bytes / 65536))
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: options.shared ?? false })
    .buffer
  aligned.add(memory)
  return Buffer.from(memory)
}

/** True when `b` starts on an ALIGN boundary of memory from `alignedBuffer`. */
export function isAligned(b: Uint8Array): boolean {
  return b.byteOffset % ALIGN === 0 && aligned.has(b.buffer)
}
