// Reading the blob API's request headers (ranges, metadata, conditions) and writing its dates and ETags.
import type { IncomingMessage } from 'node:http'
import { PAGE_SIZE, type WriteConditions } from '../diskstore/index.js'
import { badHeader, blobError } from './blob-errors.js'

/** A header's value, or undefined when absent or empty. */
export function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  const s = Array.isArray(v) ? v.join(',') : v
  return s === undefined || s === '' ? undefined : s
}

/** An inclusive byte range from a `bytes=start-end` header; `end` is absent for `bytes=start-`. */
export interface RequestRange {
  start: number
  end?: number
  header: string
  value: string
}

/** The range of `x-ms-range`, else `Range`; undefined when neither is sent. */
export function requestRange(req: IncomingMessage): RequestRange | undefined {
  const name = headerOf(req, 'x-ms-range') !== undefined ? 'x-ms-range' : 'range'
  const value = headerOf(req, name)
  if (value === undefined) return undefined
  const m = /^bytes=(\d+)-(\d*)$/.exec(value.trim())
  if (!m) throw badHeader(name, value, 'expected bytes=start-end')
  const start = Number(m[1])
  const end = m[2] === '' ? undefined : Number(m[2])
  if (end !== undefined && end < start) throw badHeader(name, value, 'the end is before the start')
  return end === undefined ? { start, header: name, value } : { start, end, header: name, value }
}

/** A 512-aligned page range `[offset, offset + length)` from a range header; required. */
export function requestPageRange(req: IncomingMessage): { offset: number; length: number } {
  const r = requestRange(req)
  if (r === undefined)
    throw blobError('MissingRequiredHeader', 'A page operation needs x-ms-range or Range', {
      HeaderName: 'x-ms-range',
    })
  if (r.end === undefined) throw badHeader(r.header, r.value, 'a page range needs an end')
  if (r.start % PAGE_SIZE !== 0 || (r.end + 1) % PAGE_SIZE !== 0)
    throw badHeader(r.header, r.value, 'page ranges start on a 512-byte boundary and end one byte before one')
  return { offset: r.start, length: r.end + 1 - r.start }
}

/** Azure's limit on the metadata of a container or blob: names and values together. */
export const MAX_METADATA_BYTES = 8 * 1024

/** The `x-ms-meta-*` headers as metadata, names in the case the client sent; at most 8 KiB of them. */
export function requestMetadata(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  const raw = req.rawHeaders
  let bytes = 0
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length > 9 && name.toLowerCase().startsWith('x-ms-meta-')) {
      const key = name.slice(10)
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
        throw blobError(
          'InvalidMetadata',
          `Cannot keep metadata "${key}": a metadata name must be a C# identifier (letters, digits, _; not first a digit)`,
          { HeaderName: name },
        )
      out[key] = raw[i + 1]!
      bytes += Buffer.byteLength(key) + Buffer.byteLength(raw[i + 1]!)
    }
  }
  if (bytes > MAX_METADATA_BYTES)
    throw blobError(
      'MetadataTooLarge',
      `Cannot keep ${bytes} bytes of metadata: names and values may hold ${MAX_METADATA_BYTES} bytes`,
    )
  return out
}

/** True when the request carries any `x-ms-meta-*` header. */
export function hasMetadata(req: IncomingMessage): boolean {
  return Object.keys(req.headers).some((n) => n.startsWith('x-ms-meta-'))
}

/** Response headers for metadata. */
export function metadataHeaders(metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(metadata)) out[`x-ms-meta-${k}`] = v
  return out
}

/** A whole number from a header, or undefined when absent. */
export function integerHeader(req: IncomingMessage, name: string, min = 0): number | undefined {
  const v = headerOf(req, name)
  if (v === undefined) return undefined
  if (!/^-?\d+$/.test(v.trim())) throw badHeader(name, v, 'expected a whole number')
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min)
    throw badHeader(name, v, `expected a whole number of at least ${min}`)
  return n
}

function dateHeader(req: IncomingMessage, name: string): Date | undefined {
  const v = headerOf(req, name)
  if (v === undefined) return undefined
  const d = new Date(v)
  if (Number.isNaN(d.getTime())) throw badHeader(name, v, 'expected an HTTP date')
  return d
}

/**
 * A GUID in any form .NET reads (hyphenated `8-4-4-4-12`, 32 hex digits, in `{…}` or `(…)`), as the
 * lowercase hyphenated form Azure answers with; undefined when it is not a GUID.
 */
export function canonicalGuid(value: string): string | undefined {
  const m =
    /^\{([0-9a-f-]{36})\}$/i.exec(value) ??
    /^\(([0-9a-f-]{36})\)$/i.exec(value) ??
    /^([0-9a-f-]{36})$/i.exec(value)
  const hex =
    m !== null
      ? /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(m[1]!)
        ? m[1]!.replaceAll('-', '')
        : undefined
      : /^[0-9a-f]{32}$/i.test(value)
        ? value
        : undefined
  if (hex === undefined) return undefined
  const h = hex.toLowerCase()
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/**
 * `x-ms-lease-id`, a GUID in any of its forms made the form leases are kept in; a value that is not a
 * GUID is passed on as it is (it matches no lease the blob API gives out).
 */
export function leaseIdHeader(req: IncomingMessage): string | undefined {
  const v = headerOf(req, 'x-ms-lease-id')
  return v === undefined ? undefined : (canonicalGuid(v) ?? v)
}

/** The lease and sequence-number conditions the disk store checks itself. */
export function storeConditions(req: IncomingMessage): WriteConditions {
  const c: WriteConditions = {}
  const leaseId = leaseIdHeader(req)
  if (leaseId !== undefined) c.leaseId = leaseId
  const le = integerHeader(req, 'x-ms-if-sequence-number-le')
  if (le !== undefined) c.ifSequenceNumberLessThanOrEqual = le
  const lt = integerHeader(req, 'x-ms-if-sequence-number-lt')
  if (lt !== undefined) c.ifSequenceNumberLessThan = lt
  const eq = integerHeader(req, 'x-ms-if-sequence-number-eq')
  if (eq !== undefined) c.ifSequenceNumberEqual = eq
  return c
}

/** The lease condition alone (for the later steps of a request that makes several mutations). */
export function leaseCondition(req: IncomingMessage): WriteConditions {
  const leaseId = leaseIdHeader(req)
  return leaseId === undefined ? {} : { leaseId }
}

/** Seconds-precision time of an ISO date, for HTTP date comparisons. */
function seconds(iso: string): number {
  return Math.floor(new Date(iso).getTime() / 1000)
}

function etagMatches(list: string, etag: string): boolean {
  const bare = unquote(etag)
  return list.split(',').some((t) => {
    const s = t.trim()
    return s === '*' || unquote(s) === bare
  })
}

/**
 * Checks If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since against a resource.
 * Returns 304 when a read should answer Not Modified; throws ConditionNotMet when a condition fails.
 */
export function checkHttpConditions(
  req: IncomingMessage,
  resource: { etag: string; lastModified: string } | undefined,
  read: boolean,
): 304 | undefined {
  const ifMatch = headerOf(req, 'if-match')
  const ifNoneMatch = headerOf(req, 'if-none-match')
  const since = dateHeader(req, 'if-modified-since')
  const unmodified = dateHeader(req, 'if-unmodified-since')
  const failed = (what: string) => blobError('ConditionNotMet', `Cannot serve the request: ${what}`)
  if (resource === undefined) {
    if (ifMatch !== undefined) throw failed('If-Match is set and the resource does not exist')
    return undefined
  }
  if (ifMatch !== undefined && !etagMatches(ifMatch, resource.etag))
    throw failed('If-Match does not match the ETag')
  if (unmodified !== undefined && seconds(resource.lastModified) > unmodified.getTime() / 1000)
    throw failed('the resource changed after If-Unmodified-Since')
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, resource.etag)) {
    if (read) return 304
    throw failed('If-None-Match matches the ETag')
  }
  if (since !== undefined && seconds(resource.lastModified) <= since.getTime() / 1000) {
    if (read) return 304
    throw failed('the resource did not change after If-Modified-Since')
  }
  return undefined
}

/** An ETag in quotes, as Azure sends it. */
export function quoteEtag(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`
}

function unquote(etag: string): string {
  const s = etag.startsWith('W/') ? etag.slice(2) : etag
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s
}

/** An RFC 1123 date (`Sun, 22 Nov 2026 19:37:17 GMT`) from an ISO timestamp. */
export function httpDate(iso: string): string {
  return new Date(iso).toUTCString()
}
