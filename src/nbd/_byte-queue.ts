/** Bytes received from a socket and not parsed yet: chunks are kept as they came and cut on demand. */
export class ByteQueue {
  #chunks: Buffer[] = []
  #head = 0
  #length = 0

  /** Bytes waiting. */
  get length(): number {
    return this.#length
  }

  /** Bytes waiting in the first chunk (what `take` can hand out as a view). */
  get firstLength(): number {
    return this.#chunks[this.#head]?.length ?? 0
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#length += chunk.length
  }

  /** Removes and returns the next `n` bytes (n <= length); a view when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`Cannot take ${n} bytes: only ${this.#length} are queued`)
    this.#length -= n
    const first = this.#chunks[this.#head]
    if (n === 0 || first === undefined) return Buffer.alloc(0)
    if (first.length > n) {
      this.#chunks[this.#head] = first.subarray(n)
      return first.subarray(0, n)
    }
    if (first.length === n) {
      this.#shift()
      return first
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.#chunks[this.#head] as Buffer
      const want = n - filled
      if (chunk.length <= want) {
        chunk.copy(out, filled)
        filled += chunk.length
        this.#shift()
      } else {
        chunk.copy(out, filled, 0, want)
        this.#chunks[this.#head] = chunk.subarray(want)
        filled += want
      }
    }
    return out
  }

  /** Removes the next `n` bytes (n <= length) and copies them into `target` at `at`. */
  takeInto(target: Uint8Array, at: number, n: number): void {
    if (n > this.#length) throw new RangeError(`Cannot take ${n} bytes: only ${this.#length} are queued`)
    this.#length -= n
    let filled = 0
    while (filled < n) {
      const chunk = this.#chunks[this.#head] as Buffer
      const want = n - filled
      if (chunk.length <= want) {
        target.set(chunk, at + filled)
        filled += chunk.length
        this.#shift()
      } else {
        target.set(chunk.subarray(0, want), at + filled)
        this.#chunks[this.#head] = chunk.subarray(want)
        filled += want
      }
    }
  }

  /** Drops everything queued. */
  clear(): void {
    this.#chunks = []
    this.#head = 0
    this.#length = 0
  }

  #shift(): void {
    this.#chunks[this.#head] = EMPTY
    this.#head++
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head)
      this.#head = 0
    }
  }
}

const EMPTY = Buffer.alloc(0)
