import type { Readable } from 'node:stream'
import type { ErrorBody, Page } from '../api/index.js'
import { CairnError, isErrorCode } from '../util/index.js'
import { tokenFor } from './credentials.js'
import { HttpTransport, type TlsTrust } from './http-transport.js'

/** Default address of the management API. */
export const DEFAULT_URL = 'http://127.0.0.1:7070'

/** Items the client asks for per page when it follows a list's cursors (the API's largest page). */
export const LIST_PAGE_SIZE = 1000

/** A query string as the client sends it; undefined values are left out, a list repeats its key. */
export type Query = Record<string, string | number | boolean | string[] | undefined>

/**
 * A small client of the management API: JSON in and out, errors as CairnError with the service's code.
 * Answer and body types come from the API's own schemas (`import type` from src/api), so a field the
 * API renames fails to compile here.
 */
export class ApiClient {
  readonly baseUrl: string
  readonly #transport: HttpTransport
  readonly #pageSize: number
  readonly #token: () => string | undefined

  /**
   * `trust`: whom to trust for an https:// URL (a CA file's certificates, a pinned fingerprint);
   * `token` gives the bearer token (default: CAIRN_TOKEN, else the one `cairn login` saved for the URL).
   */
  constructor(
    baseUrl: string = DEFAULT_URL,
    options: { pageSize?: number; trust?: TlsTrust; token?: () => string | undefined } = {},
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#pageSize = options.pageSize ?? LIST_PAGE_SIZE
    this.#transport = new HttpTransport(options.trust)
    this.#token = options.token ?? (() => tokenFor(this.baseUrl))
    this.#options = options
  }

  readonly #options: { pageSize?: number; trust?: TlsTrust }

  /** A client of the same service and trust that sends another token (or none). */
  withToken(token: () => string | undefined): ApiClient {
    return new ApiClient(this.baseUrl, { ...this.#options, token })
  }

  /** The SHA-256 fingerprint of the service's certificate, once a request went over TLS. */
  get peerFingerprint(): string | undefined {
    return this.#transport.peerFingerprint
  }

  /** Closes the connections kept open for the next request. */
  close(): void {
    this.#transport.close()
  }

  /** The service URL, checked: an http(s) URL without query or fragment. */
  #url(path: string): URL {
    let base: URL
    try {
      base = new URL(this.baseUrl)
    } catch {
      throw new CairnError(
        'UsageError',
        `Cannot use --url "${this.baseUrl}": not a URL (e.g. ${DEFAULT_URL})`,
      )
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new CairnError(
        'UsageError',
        `Cannot use --url "${this.baseUrl}": the service speaks http or https, not ${base.protocol.slice(0, -1)}`,
      )
    return new URL(this.baseUrl + path)
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query })
  }

  /** POSTs `body` (typed B when the caller names the request type) and answers T. */
  post<T = unknown, B = unknown>(path: string, body?: B): Promise<T> {
    return this.request<T>('POST', path, { body })
  }

  put<T = unknown, B = unknown>(path: string, body?: B): Promise<T> {
    return this.request<T>('PUT', path, { body })
  }

  patch<T = unknown, B = unknown>(path: string, body?: B): Promise<T> {
    return this.request<T>('PATCH', path, { body })
  }

  delete<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('DELETE', path, { query })
  }

  /**
   * Every item of a list route (the `{items, nextCursor}` envelope), following its cursors page after
   * page; with `max`, stops after that many items.
   */
  async list<T>(path: string, query: Query = {}, options: { max?: number | undefined } = {}): Promise<T[]> {
    const max = options.max ?? Number.POSITIVE_INFINITY
    const items: T[] = []
    let cursor: string | undefined
    while (items.length < max) {
      const limit = Math.min(this.#pageSize, max - items.length)
      const page = await this.get<Page<T>>(path, { ...query, limit, cursor })
      // A page may hold more than asked (a disk with its snapshots stays whole): keep at most max.
      items.push(...page.items.slice(0, max - items.length))
      cursor = page.nextCursor
      if (cursor === undefined || page.items.length === 0) break
    }
    return items
  }

  /** Sends a request and returns the raw response (for binary bodies); throws CairnError on an error status. */
  async raw(
    method: string,
    path: string,
    init: {
      query?: Query
      /** A Readable is streamed (chunked); an error it raises cancels the request with that error. */
      body?: string | Uint8Array | Readable
      headers?: Record<string, string>
      signal?: AbortSignal
    } = {},
  ): Promise<Response> {
    const url = this.#url(path)
    for (const [k, v] of Object.entries(init.query ?? {}))
      if (Array.isArray(v)) for (const one of v) url.searchParams.append(k, one)
      else if (v !== undefined) url.searchParams.set(k, String(v))
    const token = this.#token()
    const headers = token === undefined ? init.headers : { ...init.headers, authorization: `Bearer ${token}` }
    let res: Response
    try {
      res = await this.#transport.send(url, {
        method,
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(headers !== undefined ? { headers } : {}),
        ...(init.signal !== undefined ? { signal: init.signal } : {}),
      })
    } catch (err) {
      throw unreachable(err, this.baseUrl)
    }
    if (!res.ok) throw await toError(res)
    return res
  }

  async request<T>(method: string, path: string, init: { query?: Query; body?: unknown } = {}): Promise<T> {
    const res = await this.raw(method, path, {
      query: init.query,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      headers: init.body === undefined ? {} : { 'content-type': 'application/json' },
    })
    if (res.status === 204) return undefined as T
    const text = await res.text()
    if (!text) return undefined as T
    try {
      return JSON.parse(text) as T
    } catch {
      throw new CairnError(
        'ServiceUnreachable',
        `Cannot use the answer of ${this.baseUrl}: it is not JSON (is --url the Cairn management API?)`,
      )
    }
  }
}

/** Certificate checks that fail for want of trust (not a broken connection). */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

/** A failed connection as the CLI reports it: what went wrong and what to do. */
function unreachable(err: unknown, baseUrl: string): CairnError {
  if (err instanceof CairnError) return err
  const e = err as NodeJS.ErrnoException & { reason?: string }
  if (e.name === 'AbortError') return new CairnError('Cancelled', 'Interrupted', { cause: err })
  if (e.code !== undefined && UNTRUSTED.has(e.code))
    return new CairnError(
      'TlsUntrusted',
      `Cannot trust the Cairn service at ${baseUrl}: ${e.reason ?? e.message} (${e.code}); give its CA with --ca FILE (CAIRN_CA) or pin its certificate with --fingerprint (the service prints it at start; cairn status shows it)`,
      { cause: err },
    )
  const why =
    e.code === 'ECONNREFUSED'
      ? 'connection refused (is `cairn serve` running?)'
      : e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/.test(e.message)
        ? 'it does not speak TLS (use an http:// URL)'
        : e.message
  return new CairnError('ServiceUnreachable', `Cannot reach the Cairn service at ${baseUrl}: ${why}`, {
    cause: err,
  })
}

async function toError(res: Response): Promise<CairnError> {
  const text = await res.text()
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>
    const code = body.error?.code
    if (isErrorCode(code)) return new CairnError(code, String(body.error?.message ?? code))
  } catch {}
  return new CairnError(
    'Internal',
    `The service answered ${res.status} ${res.statusText}: ${text.slice(0, 200)}`,
  )
}
