/** Time as the scheduler sees it: the real one, or a manual one for tests and simulations. */
export interface Clock {
  now(): number
  /** Calls fn after ms (of this clock's time); answers a handle for clearTimer. */
  setTimer(fn: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
}

/** The machine's clock. Long timers are capped so a distant run is re-checked daily. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 86_400_000))
    t.unref?.()
    return t
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
}

interface Timer {
  at: number
  seq: number
  fn: () => void
}

/** Lets promise chains started by timers run before time moves on. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A clock that moves only when told: `advance` fires due timers in order, letting their work settle. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  #timers = new Set<Timer>()

  constructor(start: number) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimer(fn: () => void, ms: number): unknown {
    const t: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn }
    this.#timers.add(t)
    return t
  }

  clearTimer(handle: unknown): void {
    this.#timers.delete(handle as Timer)
  }

  /** Moves time forward to `to`, firing every timer due on the way at its own time. */
  async advanceTo(to: number): Promise<void> {
    await settle()
    for (;;) {
      let next: Timer | undefined
      for (const t of this.#timers) {
        if (t.at <= to && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
      }
      if (!next) break
      this.#timers.delete(next)
      if (next.at > this.#now) this.#now = next.at
      next.fn()
      // Work started by a timer may itself await several times.
      for (let i = 0; i < 4; i++) await settle()
    }
    if (to > this.#now) this.#now = to
    await settle()
  }

  /** Moves time forward by ms. */
  advance(ms: number): Promise<void> {
    return this.advanceTo(this.#now + ms)
  }
}
