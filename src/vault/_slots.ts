// Slots: a counting semaphore — at most `n` holders at once, the rest wait in order.

export class Slots {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(n: number) {
    this.#free = n
  }

  /** Resolves once a slot is held (at once while one is free). */
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--
      return
    }
    await new Promise<void>((r) => this.#waiting.push(r))
  }

  /** Gives a slot back: to the first waiter, if any. */
  give(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free++
  }
}
