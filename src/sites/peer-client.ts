import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { CairnError, isErrorCode } from '../util/index.js'

// The one way a Cairn site talks to its paired site: the peer's management API over HTTP(S) with the
// site token (a token of the Site Peer role made on the peer), the peer's CA when it is not a public
// one, bounded timeouts, retries with exponential backoff on network failures and 5xx answers, and a
// health state the pair registry persists and `cairn pair list` shows (docs/replication.md).

/** The state of the link to a peer, from the last request. */
export type PeerState = 'Unknown' | 'Healthy' | 'Unreachable' | 'Unauthorized' | 'CertificateRejected'

/** What the last requests to a peer showed. */
export interface PeerHealth {
  state: PeerState
  /** Last successful answer (ms since the epoch). */
  lastContactAt?: number
  /** The last failure, as `CODE: message`. */
  lastError?: string
  /** Failed attempts in a row (0 after a success). */
  failures: number
}

/** How to reach a peer. */
export interface PeerClientOptions {
  /** The peer's management API, `https://host:port` (http only on loopback, for tests). */
  url: string
  /** The site token the peer issued (role Site Peer). */
  token: string
  /** PEM of the CA (or the self-signed certificate) that signs the peer's certificate; default: the system's. */
  ca?: string
  /** Per attempt: no answer headers within this many ms fails the attempt (default 15 s). */
  timeoutMs?: number
  /** Attempts per request for network failures and 5xx answers (default 4). */
  attempts?: number
  /** First backoff (default 200 ms), doubled each retry up to `maxBackoffMs` (default 5 s), with jitter. */
  backoffMs?: number
  maxBackoffMs?: number
  /** Told whenever the health changes state or records a contact. */
  onHealth?: (health: PeerHealth) => void
}

/** One request to the peer. */
export interface PeerRequest {
  /** JSON body (sent as application/json). */
  json?: unknown
  /** Raw body (application/octet-stream). */
  body?: Buffer | readonly Buffer[]
  headers?: Record<string, string>
  signal?: AbortSignal
  /** Retry network failures and 5xx answers (default true: every replication request is idempotent). */
  retry?: boolean
  /** Per-attempt timeout for this request (default the client's). */
  timeoutMs?: number
  /**
   * A 2xx answer's body is copied into this buffer as it arrives (no buffer per read kept, no joining
   * copy); the answer's `body` is the view of it that was filled. A longer body fails the request.
   */
  into?: Buffer
}

/** A peer's answer (2xx only: other statuses throw). */
export interface PeerResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
])

/** A client of one paired site's API. */
export class PeerClient {
  readonly url: string
  readonly #token: string
  readonly #o: PeerClientOptions
  readonly #agent: HttpAgent | HttpsAgent
  readonly #https: boolean
  #health: PeerHealth = { state: 'Unknown', failures: 0 }
  /** Bytes of request and answer bodies sent and received (the replication bench reads them). */
  readonly traffic = { bytesOut: 0, bytesIn: 0 }

  constructor(options: PeerClientOptions) {
    let u: URL
    try {
      u = new URL(options.url)
    } catch {
      throw new CairnError('InvalidRequest', `Cannot pair with "${options.url}": it is not a URL`)
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new CairnError('InvalidRequest', `Cannot pair with "${options.url}": use an https:// URL`)
    if (u.protocol === 'http:' && !isLoopback(u.hostname))
      throw new CairnError(
        'InvalidRequest',
        `Cannot pair with "${options.url}": plain http is allowed on loopback only; use https://`,
      )
    this.url = `${u.protocol}//${u.host}`
    this.#token = options.token
    this.#o = options
    this.#https = u.protocol === 'https:'
    this.#agent = this.#https
      ? new HttpsAgent({ keepAlive: true, maxSockets: 8, ...(options.ca ? { ca: options.ca } : {}) })
      : new HttpAgent({ keepAlive: true, maxSockets: 8 })
  }

  /** The link's health as the last requests left it. */
  get health(): PeerHealth {
    return { ...this.#health }
  }

  /** Sends a request and answers the JSON body. */
  async json<T>(method: string, path: string, req: PeerRequest = {}): Promise<T> {
    const res = await this.request(method, path, req)
    return (res.body.length === 0 ? undefined : JSON.parse(res.body.toString('utf8'))) as T
  }

  /**
   * Sends a request, retrying network failures and 5xx answers with backoff; a 4xx answer throws the
   * peer's error code at once (401 → PairAuthFailed), an untrusted certificate PairCertificateRejected,
   * and failures past the last attempt PairUnreachable.
   */
  async request(method: string, path: string, req: PeerRequest = {}): Promise<PeerResponse> {
    const attempts = req.retry === false ? 1 : Math.max(1, this.#o.attempts ?? 4)
    let delay = this.#o.backoffMs ?? 200
    let last: CairnError | undefined
    for (let attempt = 1; attempt <= attempts; attempt++) {
      req.signal?.throwIfAborted()
      try {
        const res = await this.#once(method, path, req)
        this.#record({ state: 'Healthy', lastContactAt: Date.now(), failures: 0 })
        return res
      } catch (err) {
        const e = this.#classify(err)
        if (e.retry) {
          last = e.error
          this.#record({
            ...this.#health,
            state: 'Unreachable',
            lastError: `${e.error.code}: ${e.error.message}`,
            failures: this.#health.failures + 1,
          })
          if (attempt < attempts) {
            await sleep(delay * (0.75 + Math.random() * 0.5), req.signal)
            delay = Math.min(delay * 2, this.#o.maxBackoffMs ?? 5000)
          }
          continue
        }
        if (e.state)
          this.#record({
            ...this.#health,
            state: e.state,
            lastError: `${e.error.code}: ${e.error.message}`,
            failures: this.#health.failures + 1,
          })
        else this.#record({ state: 'Healthy', lastContactAt: Date.now(), failures: 0 })
        throw e.error
      }
    }
    throw new CairnError(
      'PairUnreachable',
      `Cannot reach the paired site ${this.url} after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last?.message ?? 'no answer'}`,
    )
  }

  /** Closes idle connections. */
  close(): void {
    this.#agent.destroy()
  }

  #record(h: PeerHealth): void {
    this.#health = h
    this.#o.onHealth?.({ ...h })
  }

  #classify(err: unknown): { error: CairnError; retry: boolean; state?: PeerState } {
    if (err instanceof PeerAnswer) {
      const { status, code, message } = err
      if (status === 401)
        return {
          error: new CairnError(
            'PairAuthFailed',
            `The paired site ${this.url} refused the site token: ${message}`,
          ),
          retry: false,
          state: 'Unauthorized',
        }
      if (status === 403 && (code === 'Forbidden' || code === 'Unauthorized'))
        return {
          error: new CairnError(
            'PairAuthFailed',
            `The paired site ${this.url} refused the site token: ${message} (make it with role "Site Peer")`,
          ),
          retry: false,
          state: 'Unauthorized',
        }
      if (status >= 500 && status !== 501)
        return {
          error: new CairnError(
            'PairUnreachable',
            `The paired site ${this.url} answered ${status} ${code}: ${message}`,
          ),
          retry: code !== 'ReplicationRefused',
        }
      return {
        error: new CairnError(
          isErrorCode(code) ? code : 'Internal',
          `The paired site ${this.url} answered: ${message}`,
        ),
        retry: false,
      }
    }
    const e = err as NodeJS.ErrnoException
    if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR')
      return {
        error: new CairnError('Cancelled', 'The request to the paired site was cancelled'),
        retry: false,
      }
    if (e?.code && TLS_CODES.has(e.code))
      return {
        error: new CairnError(
          'PairCertificateRejected',
          `Cannot trust the certificate of the paired site ${this.url}: ${e.code} (${e.message}); give the CA that signs it with --ca`,
        ),
        retry: false,
        state: 'CertificateRejected',
      }
    return {
      error: new CairnError(
        'PairUnreachable',
        `Cannot reach the paired site ${this.url}: ${e?.code ?? e?.message ?? e}`,
      ),
      retry: true,
    }
  }

  #once(method: string, path: string, req: PeerRequest): Promise<PeerResponse> {
    const send = this.#https ? httpsRequest : httpRequest
    const headers: Record<string, string | number> = {
      authorization: `Bearer ${this.#token}`,
      accept: 'application/json',
      ...req.headers,
    }
    let parts: readonly Buffer[] = []
    if (req.json !== undefined) {
      parts = [Buffer.from(JSON.stringify(req.json))]
      headers['content-type'] = 'application/json'
    } else if (req.body !== undefined) {
      parts = Buffer.isBuffer(req.body) ? [req.body] : (req.body as readonly Buffer[])
      headers['content-type'] = 'application/octet-stream'
    }
    const length = parts.reduce((n, p) => n + p.length, 0)
    if (method !== 'GET' && method !== 'HEAD') headers['content-length'] = length
    this.traffic.bytesOut += length
    const timeout = req.timeoutMs ?? this.#o.timeoutMs ?? 15_000
    return new Promise<PeerResponse>((resolve, reject) => {
      const r = send(
        `${this.url}${path}`,
        { method, headers, agent: this.#agent, ...(req.signal ? { signal: req.signal } : {}) },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0
          const chunks: Buffer[] = []
          const into = status >= 200 && status < 300 ? req.into : undefined
          let filled = 0
          if (into)
            res.on('data', (d: Buffer) => {
              if (filled + d.length > into.length) {
                res.destroy(new Error(`the answer is longer than the ${into.length} bytes expected`))
                return
              }
              d.copy(into, filled)
              filled += d.length
            })
          else res.on('data', (d: Buffer) => chunks.push(d))
          res.on('error', reject)
          res.on('end', () => {
            clearTimeout(timer)
            const body = into ? into.subarray(0, filled) : Buffer.concat(chunks)
            this.traffic.bytesIn += body.length
            if (status >= 200 && status < 300) return resolve({ status, headers: res.headers, body })
            let code = 'Internal'
            let message = `HTTP ${status}`
            try {
              const parsed = JSON.parse(body.toString('utf8')) as {
                error?: { code?: string; message?: string }
              }
              code = parsed.error?.code ?? code
              message = parsed.error?.message ?? message
            } catch {}
            reject(new PeerAnswer(status, code, message))
          })
        },
      )
      // Bounded: no answer within the timeout fails the attempt (and the retry loop tries again).
      const timer = setTimeout(() => {
        r.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'ETIMEDOUT' }))
      }, timeout)
      r.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      for (const p of parts) r.write(p)
      r.end()
    })
  }
}

/** A non-2xx answer of the peer. */
class PeerAnswer extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host)
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t)
        reject(new CairnError('Cancelled', 'The request to the paired site was cancelled'))
      },
      { once: true },
    )
  })
}
