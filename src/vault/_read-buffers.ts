// Memory that object-store reads land in, kept for the next read. A restore from an object store reads
// its packs in runs of up to 32 MiB; fresh memory for each run costs a page fault per 4 KiB page the
// socket's bytes are copied into (measured: 128 MiB received over TLS cost 0.6 s of CPU into reused
// memory, 1.0 s into fresh buffers). A run's buffer moves to the worker that opens its blobs, which
// sends it back when the leaf is written; it then waits here for the next read.

const MiB = 1024 * 1024

/** Buffers of reads, reused; at most `limit` bytes are kept idle. */
export class ReadBuffers {
  readonly #free: ArrayBuffer[] = []
  #idle = 0
  readonly #limit: number

  constructor(limit = 64 * MiB) {
    this.#limit = limit
  }

  /** A buffer of `length` bytes (a view of memory of its own, at least that long). */
  take(length: number): Buffer {
    let best = -1
    for (let i = 0; i < this.#free.length; i++) {
      const n = this.#free[i]!.byteLength
      if (n >= length && (best < 0 || n < this.#free[best]!.byteLength)) best = i
    }
    if (best >= 0) {
      const [ab] = this.#free.splice(best, 1)
      this.#idle -= ab!.byteLength
      return Buffer.from(ab!, 0, length)
    }
    // Whole MiBs, so that a buffer fits the next read of about the same size.
    return Buffer.allocUnsafeSlow(Math.ceil(Math.max(length, 1) / MiB) * MiB).subarray(0, length)
  }

  /** Keeps the memory of a buffer nobody uses any more for a later read (dropped beyond the limit). */
  give(memory: ArrayBuffer): void {
    if (memory.byteLength === 0 || this.#idle + memory.byteLength > this.#limit) return
    this.#free.push(memory)
    this.#idle += memory.byteLength
  }
}

/**
 * Copies a body's bytes `skip…skip + length` into `into` as they arrive (no buffer per chunk kept, no
 * concatenation); answers the bytes received and the bytes kept.
 */
export async function collectInto(
  body: NodeJS.ReadableStream | undefined,
  into: Buffer,
  skip: number,
  length: number,
): Promise<{ received: number; kept: number }> {
  let received = 0
  if (body) {
    for await (const c of body as AsyncIterable<Buffer>) {
      const from = Math.max(0, skip - received)
      const to = Math.min(c.length, skip + length - received)
      if (to > from) c.copy(into, received + from - skip, from, to)
      received += c.length
    }
  }
  return { received, kept: Math.max(0, Math.min(length, received - skip)) }
}
