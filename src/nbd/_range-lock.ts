interface Held {
  start: number
  end: number
  done: Promise<void>
}

/**
 * Byte ranges of one disk held by read-modify-write updates. A holder reads the edge pages, merges
 * and writes back; no other write may touch those pages in between, or its bytes would be lost.
 * The check for a free range and what follows it run in one synchronous step, so nothing can slip in.
 */
export class RangeLock {
  readonly #held = new Set<Held>()

  /** A promise to wait on when a held range overlaps `[start, end)`; undefined when the range is free. */
  blocker(start: number, end: number): Promise<void> | undefined {
    for (const h of this.#held) if (h.start < end && start < h.end) return h.done
    return undefined
  }

  /** Runs `fn` as soon as `[start, end)` is free, in the same step as the check. */
  async whenFree<T>(start: number, end: number, fn: () => T | Promise<T>): Promise<T> {
    for (let b = this.blocker(start, end); b !== undefined; b = this.blocker(start, end)) await b
    return fn()
  }

  /** Waits until `[start, end)` is free, then holds it; call the returned function to let go. */
  async acquire(start: number, end: number): Promise<() => void> {
    for (let b = this.blocker(start, end); b !== undefined; b = this.blocker(start, end)) await b
    let release!: () => void
    const held: Held = { start, end, done: new Promise<void>((r) => (release = r)) }
    this.#held.add(held)
    return () => {
      this.#held.delete(held)
      release()
    }
  }
}
