/** A bounded queue between one producer and several consumers. */
export class AsyncQueue<T> {
  readonly #items: T[] = []
  readonly #limit: number
  #closed = false
  #takers: ((v: T | undefined) => void)[] = []
  #putters: (() => void)[] = []

  constructor(limit: number) {
    this.#limit = limit
  }

  /** Adds an item; waits while the queue is full. */
  async push(item: T): Promise<void> {
    while (this.#items.length >= this.#limit && !this.#closed) {
      await new Promise<void>((r) => this.#putters.push(r))
    }
    if (this.#closed) return
    const taker = this.#takers.shift()
    if (taker) taker(item)
    else this.#items.push(item)
  }

  /** The next item, or undefined once the queue is closed and empty. */
  async next(): Promise<T | undefined> {
    const item = this.#items.shift()
    if (item !== undefined) {
      this.#putters.shift()?.()
      return item
    }
    if (this.#closed) return undefined
    return new Promise<T | undefined>((r) => this.#takers.push(r))
  }

  /** No more items: waiting consumers get undefined; with `drop`, queued items are discarded. */
  close(drop = false): void {
    this.#closed = true
    if (drop) this.#items.length = 0
    for (const t of this.#takers.splice(0)) t(undefined)
    for (const p of this.#putters.splice(0)) p()
  }
}
