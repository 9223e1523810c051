// Shared Key authorization: the string-to-sign of current service versions (2015-02-21 and later) and
// its check against an account's keys. Path-style requests (http://host:port/account/container/blob) are
// signed by the SDK with the account name both as the resource prefix and in the path
// (`/devstoreaccount1/devstoreaccount1/c/b`); the Azure rules give `/devstoreaccount1/c/b`. Both are
// accepted, as are both ways of treating query parameters without a value (the SDK drops them).
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { compareHeader } from './_compare-header.js'

/** What of a request the signature covers. */
export interface SignedRequest {
  method: string
  headers: IncomingHttpHeaders
  /** The path as sent, percent-encoded, starting with `/account`. */
  rawPath: string
  /** The query string as sent, without `?`. */
  rawQuery: string
}

const SIGNED_HEADERS = [
  'content-encoding',
  'content-language',
  'content-length',
  'content-md5',
  'content-type',
  'date',
  'if-modified-since',
  'if-match',
  'if-none-match',
  'if-unmodified-since',
  'range',
] as const

function header(headers: IncomingHttpHeaders, name: string): string {
  const v = headers[name]
  if (v === undefined) return ''
  return Array.isArray(v) ? v.join(',') : v
}

function canonicalHeaders(headers: IncomingHttpHeaders): string {
  return Object.keys(headers)
    .filter((n) => n.startsWith('x-ms-'))
    .sort(compareHeader)
    .map((n) => `${n}:${header(headers, n).trimStart()}\n`)
    .join('')
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

function canonicalQuery(rawQuery: string, dropEmpty: boolean): string {
  const params = new Map<string, string[]>()
  for (const part of rawQuery.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = decode(eq < 0 ? part : part.slice(0, eq)).toLowerCase()
    const value = eq < 0 ? '' : decode(part.slice(eq + 1))
    if (dropEmpty && value === '') continue
    params.set(name, [...(params.get(name) ?? []), value])
  }
  return [...params.keys()]
    .sort()
    .map((n) => `\n${n}:${params.get(n)!.sort().join(',')}`)
    .join('')
}

/** The Shared Key string-to-sign of `req` for `account`, one per accepted resource and query form. */
export function stringsToSign(req: SignedRequest, account: string): string[] {
  const fixed = SIGNED_HEADERS.map((n) => {
    const v = header(req.headers, n)
    return n === 'content-length' && v === '0' ? '' : v
  })
  const head = `${req.method.toUpperCase()}\n${fixed.join('\n')}\n${canonicalHeaders(req.headers)}`
  const withoutAccount = req.rawPath.slice(account.length + 1) || '/'
  const resources = [`/${account}${req.rawPath}`, `/${account}${withoutAccount}`]
  const queries = new Set([canonicalQuery(req.rawQuery, true), canonicalQuery(req.rawQuery, false)])
  return resources.flatMap((r) => [...queries].map((q) => head + r + q))
}

/** The base64 HMAC-SHA256 signature of `text` with a base64 account key. */
export function sign(text: string, key: string): string {
  return createHmac('sha256', Buffer.from(key, 'base64')).update(text, 'utf8').digest('base64')
}

/** Parses `SharedKey account:signature`; undefined when the header has another shape. */
export function parseAuthorization(value: string): { account: string; signature: string } | undefined {
  const m = /^SharedKey ([^:\s]+):(\S+)$/.exec(value.trim())
  return m ? { account: m[1]!, signature: m[2]! } : undefined
}

/** True when `signature` signs `req` for `account` with one of `keys`. */
export function verifySharedKey(
  req: SignedRequest,
  account: string,
  signature: string,
  keys: readonly string[],
): boolean {
  const given = Buffer.from(signature, 'base64')
  const texts = stringsToSign(req, account)
  let ok = false
  for (const key of keys) {
    for (const text of texts) {
      const expected = Buffer.from(sign(text, key), 'base64')
      if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true
    }
  }
  return ok
}
