import { setTimeout as sleep } from 'node:timers/promises'
import { CairnError } from '../util/index.js'

// Retries of object-store requests: every request a backend sends is idempotent (reads, whole-object
// writes, deletes; a create carries a write id that tells its own earlier attempt apart), so any
// transient failure is tried again after a backoff with full jitter (AWS's "exponential backoff and
// jitter"): a wait drawn uniformly from [0, min(cap, base·2^attempt)].

/** How hard a backend tries one request. */
export interface RetryOptions {
  /** Attempts of one request, the first included (default 6). */
  tries?: number
  /** The first backoff's cap in ms (default 200); it doubles each attempt. */
  baseDelayMs?: number
  /** The longest backoff in ms (default 10000). */
  maxDelayMs?: number
  /** How long one attempt may take before it is abandoned and retried, in ms (default 120000). */
  timeoutMs?: number
}

/** What one failed attempt was, as the backend judged it. */
export interface AttemptFailure {
  /** True for 5xx, throttling, timeouts, dropped connections and short bodies. */
  transient: boolean
  /** The error to give the caller (a CairnError with its code) when the request is not retried. */
  error: unknown
  /** Short words for the log and the final error, e.g. `503 ServerBusy`, `ECONNRESET`. */
  why: string
}

/** Transient network failures of Node's HTTP client (and the SDKs' names for them). */
const NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
  'REQUEST_SEND_ERROR',
  'TimeoutError',
  'RequestTimeout',
  'AbortError',
])

/** The network-level reason of `err` when it is a dropped connection, refused connection or timeout. */
export function networkFailure(err: unknown): string | undefined {
  for (
    let e = err as { code?: unknown; name?: unknown; cause?: unknown; message?: unknown } | undefined,
      depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'string' && NETWORK.has(e.code)) return e.code
    if (typeof e.name === 'string' && NETWORK.has(e.name)) return e.name
    if (
      typeof e.message === 'string' &&
      /socket hang up|aborted|premature close|other side closed/i.test(e.message)
    )
      return 'connection dropped'
  }
  return undefined
}

/** A response body that ended before the length the server announced: read again. */
export class ShortBody extends Error {}

/**
 * Runs `attempt` until it succeeds, fails in a way `classify` calls permanent, or `tries` are spent;
 * each attempt gets its own timeout signal. Spent tries end in `ObjectStoreUnavailable` naming `what`
 * and the last reason.
 */
export async function withRetries<T>(
  what: string,
  options: RetryOptions,
  attempt: (signal: AbortSignal, n: number) => Promise<T>,
  classify: (err: unknown) => AttemptFailure,
): Promise<T> {
  const tries = Math.max(1, options.tries ?? 6)
  const base = options.baseDelayMs ?? 200
  const cap = options.maxDelayMs ?? 10_000
  const timeout = options.timeoutMs ?? 120_000
  for (let n = 0; ; n++) {
    const signal = AbortSignal.timeout(timeout)
    let failure: AttemptFailure
    try {
      return await attempt(signal, n)
    } catch (err) {
      failure = signal.aborted
        ? { transient: true, error: err, why: `no answer within ${timeout} ms` }
        : classify(err)
    }
    if (!failure.transient) throw failure.error
    if (n + 1 >= tries)
      throw new CairnError(
        'ObjectStoreUnavailable',
        `${what}: the object store failed ${tries} attempts (last: ${failure.why})`,
        { cause: failure.error },
      )
    await sleep(Math.random() * Math.min(cap, base * 2 ** n))
  }
}
