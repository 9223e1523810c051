/**
 * Payload buffers kept for reuse, by size. A fresh large Buffer comes from the allocator as pages the
 * kernel has to fault in and clear (and, in a VM, often the host too); the socket read into it then
 * costs several times the copy itself, and the external memory drives extra garbage collections.
 * Reusing the buffers of finished requests keeps their pages resident. At most `capacity` bytes are
 * kept; a buffer given back when the pool is full empties it first, so that sizes no longer asked
 * for do not hold the room.
 *
 * A buffer may be given back only once nothing refers to it any more (the store has written it and
 * no read is served from it).
 */
export class BufferPool {
  readonly #capacity: number
  readonly #free = new Map<number, Buffer[]>()
  #kept = 0

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  /** Bytes held for reuse. */
  get kept(): number {
    return this.#kept
  }

  /** A buffer of exactly `size` bytes with undefined contents. */
  take(size: number): Buffer {
    const list = this.#free.get(size)
    const reused = list?.pop()
    if (reused === undefined) return Buffer.allocUnsafeSlow(size)
    this.#kept -= size
    return reused
  }

  /** Hands a buffer from `take` back for reuse. */
  give(buffer: Buffer): void {
    const size = buffer.length
    if (size > this.#capacity) return
    if (this.#kept + size > this.#capacity) {
      // The sizes in use changed (or more is in flight than is kept): start over with this one.
      this.#free.clear()
      this.#kept = 0
    }
    let list = this.#free.get(size)
    if (list === undefined) {
      list = []
      this.#free.set(size, list)
    }
    list.push(buffer)
    this.#kept += size
  }
}
