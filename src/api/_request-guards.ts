// What the management API checks before any route runs: the Host it is addressed as (DNS rebinding),
// where a state-changing request comes from (cross-site requests of a browser), and how big a JSON
// body may be. docs/security.md, "Listeners and limits", states these rules.
import { isIP } from 'node:net'
import type { Context, MiddlewareHandler } from 'hono'
import { CairnError } from '../util/index.js'

/** Largest request body the management API reads, except on routes that take raw bytes. */
export const MAX_JSON_BODY = 1024 * 1024

/** Strips the port of a Host header value (`name:port`, `[v6]:port`); lower case, no brackets. */
function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end === -1 ? h : h.slice(1, end)
  }
  const colon = h.indexOf(':')
  // More than one colon: a bare IPv6 address without brackets or port.
  if (colon === -1 || h.indexOf(':', colon + 1) !== -1) return h
  return h.slice(0, colon)
}

/** Names this API answers to: IP literals, `localhost` and its subdomains, and the configured names. */
export function isAllowedHost(host: string, allowed: ReadonlySet<string>): boolean {
  const name = hostName(host)
  if (name === '') return false
  // A browser only sends an IP literal when its page came from that address: no rebinding possible.
  if (isIP(name) !== 0) return true
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  return allowed.has(name.replace(/\.$/, ''))
}

/**
 * Refuses a request whose Host header names something else than this service (421 HostNotAllowed):
 * a web page whose domain was re-pointed at 127.0.0.1 (DNS rebinding) sends its own domain as Host.
 */
export function hostGuard(allowedNames: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedNames.map((n) => hostName(n)))
  return async (c, next) => {
    const host = c.req.header('host')
    if (host !== undefined && !isAllowedHost(host, allowed))
      throw new CairnError(
        'HostNotAllowed',
        `Cannot serve a request addressed to host "${host.slice(0, 100)}": not a name of this service (add it with --api-allowed-host)`,
      )
    await next()
  }
}

/**
 * Refuses state changes (every method but GET, HEAD and OPTIONS) that a browser sends from another
 * site: `Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` that is neither this service's own
 * address nor a configured name (403 CrossSiteRequest). Requests without those headers (the CLI, curl,
 * SDKs) are not browsers' and pass.
 */
export function crossSiteGuard(allowedNames: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedNames.map((n) => hostName(n)))
  return async (c, next) => {
    const method = c.req.method
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      const site = c.req.header('sec-fetch-site')?.toLowerCase()
      if (site === 'cross-site' || site === 'same-site')
        throw crossSite(c, `the browser says it comes from another site (Sec-Fetch-Site: ${site})`)
      const origin = c.req.header('origin')
      if (origin !== undefined && !originAllowed(origin, c.req.header('host'), allowed))
        throw crossSite(c, `it comes from the page origin ${JSON.stringify(origin.slice(0, 100))}`)
    }
    await next()
  }
}

function originAllowed(origin: string, host: string | undefined, allowed: ReadonlySet<string>): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false // `null` (sandboxed frames, file: pages) and anything unreadable
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
  if (host !== undefined && url.host === host.trim().toLowerCase()) return true
  return allowed.has(hostName(url.host))
}

function crossSite(c: Context, why: string): CairnError {
  return new CairnError(
    'CrossSiteRequest',
    `Cannot ${c.req.method} ${c.req.path} from a web page of another site: ${why}`,
  )
}

/**
 * Caps request bodies at `limit` bytes while they are read: a declared Content-Length over the limit
 * is refused before any byte is read, a chunked body as soon as it passes the limit (413
 * PayloadTooLarge); nothing past the limit is kept. Bodies sent as application/octet-stream are left to
 * their routes, which read them with their own limits (readBodyUpTo).
 */
export function bodyLimit(limit: number = MAX_JSON_BODY): MiddlewareHandler {
  return async (c, next) => {
    // GET and HEAD carry no body; asking for c.req.raw would build a whole Request per read.
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next()
    const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase()
    if (type === 'application/octet-stream' || c.req.raw.body === null) return next()
    const bytes = await readBodyUpTo(c, limit)
    c.req.raw = new Request(c.req.raw, { body: bytes })
    await next()
  }
}

/** Reads the request body into memory, refusing it with PayloadTooLarge once it passes `limit` bytes. */
export async function readBodyUpTo(c: Context, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = (size: string) =>
    new CairnError(
      'PayloadTooLarge',
      `Cannot accept a request body of ${size} on ${c.req.method} ${c.req.path}: the limit is ${limit} bytes`,
    )
  const declared = c.req.header('content-length')
  if (declared !== undefined && c.req.header('transfer-encoding') === undefined) {
    if (!/^\d+$/.test(declared.trim()) || Number(declared) > limit) throw tooLarge(`${declared} bytes`)
  }
  const body = c.req.raw.body
  if (body === null) return new Uint8Array(0)
  const reader = body.getReader()
  let buffer = new Uint8Array(Math.min(limit, Number(declared ?? 0) || 64 * 1024))
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    if (size + value.length > limit) {
      // The rest is left unread: the HTTP adapter discards it (or drops the connection) after the answer.
      reader.releaseLock()
      throw tooLarge(`more than ${limit} bytes`)
    }
    if (size + value.length > buffer.length) {
      const grown = new Uint8Array(Math.min(limit, Math.max(size + value.length, buffer.length * 2)))
      grown.set(buffer.subarray(0, size))
      buffer = grown
    }
    buffer.set(value, size)
    size += value.length
  }
  return buffer.subarray(0, size)
}
