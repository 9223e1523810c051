import { CairnError, isErrorCode } from '../util/index.js'
import { tokenFor } from './credentials.js'

/** Default address of the management API. */
export const DEFAULT_URL = 'http://127.0.0.1:7070'

/** A small client of the management API: JSON in and out, errors as CairnError with the service's code. */
export class ApiClient {
  readonly baseUrl: string
  readonly #token: () => string | undefined

  /** `token` gives the bearer token (default: CAIRN_TOKEN, else the one `cairn login` saved for the URL). */
  constructor(baseUrl: string = DEFAULT_URL, options: { token?: () => string | undefined } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#token = options.token ?? (() => tokenFor(this.baseUrl))
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

  get<T>(path: string, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    return this.request<T>('GET', path, { query })
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, { body })
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body })
  }

  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body })
  }

  delete<T>(path: string, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    return this.request<T>('DELETE', path, { query })
  }

  /** Sends a request and returns the raw response (for binary bodies); throws CairnError on an error status. */
  async raw(
    method: string,
    path: string,
    init: {
      query?: Record<string, string | number | boolean | undefined>
      body?: RequestInit['body']
      headers?: Record<string, string>
      signal?: AbortSignal
    } = {},
  ): Promise<Response> {
    const url = this.#url(path)
    for (const [k, v] of Object.entries(init.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v))
    const token = this.#token()
    const headers = token === undefined ? init.headers : { ...init.headers, authorization: `Bearer ${token}` }
    let res: Response
    try {
      res = await fetch(url, {
        method,
        body: init.body,
        headers,
        signal: init.signal,
        // biome-ignore lint/suspicious/noExplicitAny: undici option for streamed bodies
        ...({ duplex: 'half' } as any),
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      const why =
        cause?.code === 'ECONNREFUSED'
          ? 'connection refused (is `cairn serve` running?)'
          : (cause?.message ?? (err as Error).message)
      throw new CairnError(
        'ServiceUnreachable',
        `Cannot reach the Cairn service at ${this.baseUrl}: ${why}`,
        { cause: err },
      )
    }
    if (!res.ok) throw await toError(res)
    return res
  }

  async request<T>(
    method: string,
    path: string,
    init: { query?: Record<string, string | number | boolean | undefined>; body?: unknown } = {},
  ): Promise<T> {
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

async function toError(res: Response): Promise<CairnError> {
  const text = await res.text()
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }
    const code = body.error?.code
    if (isErrorCode(code)) return new CairnError(code, String(body.error?.message ?? code))
  } catch {}
  return new CairnError(
    'Internal',
    `The service answered ${res.status} ${res.statusText}: ${text.slice(0, 200)}`,
  )
}
