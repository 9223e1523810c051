import { setTimeout as sleep } from 'node:timers/promises'
import { CairnError } from '../util/index.js'

/** Options of LoginLimiter; the delays are documented in docs/security.md, "Sign-in". */
export interface LoginLimiterOptions {
  /** Multiplies every delay: 1 in service, a small number in tests (`--login-delay-scale`). */
  scale?: number
  now?: () => number
  /** Waits out a delay (a test records the delays instead of waiting); default: a timer. */
  sleep?: (ms: number) => Promise<void>
}

/** Failed attempts of one key (a client address or a user name) that pass without any delay. */
const FREE_FAILURES = 3
const BASE_DELAY_MS = 250
const MAX_DELAY_MS = 30_000
/** A key whose last failure is this old starts again from nothing. */
const FORGET_MS = 15 * 60_000
/** Attempts that may wait on one key at once; more are refused at once (429 LoginThrottled). */
const MAX_WAITING = 16
/** Keys remembered at most (the oldest are forgotten first). */
const MAX_KEYS = 10_000

interface Entry {
  failures: number
  lastFailure: number
  waiting: number
  tail: Promise<void>
}

/**
 * Slows sign-ins down per client address and per user name: after three failures each attempt on a
 * key waits 250 ms, doubling with every further failure up to 30 s, and attempts on one key run one at
 * a time, so parallel guessing gains nothing. A success clears the user's count (not the address's).
 */
export class LoginLimiter {
  readonly #scale: number
  readonly #now: () => number
  readonly #sleep: (ms: number) => Promise<void>
  readonly #entries = new Map<string, Entry>()

  constructor(options: LoginLimiterOptions = {}) {
    this.#scale = options.scale ?? 1
    this.#now = options.now ?? Date.now
    this.#sleep = options.sleep ?? ((ms) => sleep(ms))
  }

  /** The delay before the next attempt of a key that has failed `failures` times, in ms. */
  static delayMs(failures: number, scale = 1): number {
    if (failures < FREE_FAILURES) return 0
    return Math.min(BASE_DELAY_MS * 2 ** (failures - FREE_FAILURES), MAX_DELAY_MS) * scale
  }

  /**
   * Runs one sign-in attempt for the client and user keys, after the delay their failures call for;
   * `attempt` answers whether it succeeded. Refuses with LoginThrottled when too many attempts wait.
   */
  async run<T>(keys: { client: string; user: string }, attempt: () => Promise<{ ok: boolean; value: T }>) {
    const names = [`client:${keys.client}`, `user:${keys.user.toLowerCase()}`].sort()
    const releases: (() => void)[] = []
    try {
      for (const name of names) releases.push(await this.#acquire(name))
      const wait = Math.max(...names.map((n) => this.#delayOf(n)))
      if (wait > 0) await this.#sleep(wait)
      const result = await attempt()
      const now = this.#now()
      for (const name of names) {
        const e = this.#entry(name)
        if (!result.ok) {
          e.failures++
          e.lastFailure = now
        } else if (name.startsWith('user:')) e.failures = 0
      }
      return result.value
    } finally {
      for (const release of releases.reverse()) release()
    }
  }

  /** Failures counted now for a key (0 once forgotten). */
  #delayOf(name: string): number {
    const e = this.#entry(name)
    if (e.failures > 0 && this.#now() - e.lastFailure > FORGET_MS) e.failures = 0
    return LoginLimiter.delayMs(e.failures, this.#scale)
  }

  #entry(name: string): Entry {
    let e = this.#entries.get(name)
    if (e === undefined) {
      if (this.#entries.size >= MAX_KEYS) {
        for (const [k, v] of this.#entries) {
          if (v.waiting === 0) {
            this.#entries.delete(k)
            break
          }
        }
      }
      e = { failures: 0, lastFailure: 0, waiting: 0, tail: Promise.resolve() }
      this.#entries.set(name, e)
    }
    return e
  }

  /** Waits for the attempts queued on a key before this one; answers the release of the key. */
  async #acquire(name: string): Promise<() => void> {
    const e = this.#entry(name)
    if (e.waiting >= MAX_WAITING)
      throw new CairnError(
        'LoginThrottled',
        'Cannot sign in now: too many sign-in attempts are waiting; try again later',
      )
    e.waiting++
    const before = e.tail
    let release!: () => void
    e.tail = new Promise<void>((r) => {
      release = () => {
        e.waiting--
        r()
      }
    })
    await before
    return release
  }
}
