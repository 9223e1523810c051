// Shared access signatures: account SAS and service SAS (container, blob, blob snapshot) signed with an
// account key, checked as Azure checks them: the string-to-sign of the SAS's signed version, then the
// time window, the source IP, the protocol, the signed service and resource types, and the permissions
// the operation needs. Stored access policies (`si`), user delegation SAS (`skoid`…), encryption scopes
// (`ses`) and directory SAS (`sr=d`) are not served and are refused, never ignored.
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { CairnError } from '../util/index.js'
import { type AzureErrorCode, blobError } from './blob-errors.js'

/** What an operation needs of a SAS. */
export interface Access {
  /** The resource type an account SAS must name: service, container or object. */
  resource: 's' | 'c' | 'o'
  /** Permission letters, any one of which allows the operation. */
  any: string
  /** False where a service SAS (container or blob) cannot authorize the operation at all. */
  serviceSas: boolean
  /** Permission letters needed instead of `any` when the target blob already exists (overwrite). */
  existing?: string
}

/** What a verified SAS grants beyond the operation: Get Blob's response header overrides. */
export interface SasGrant {
  kind: 'account' | 'service'
  /** `rscc`, `rscd`, `rsce`, `rscl`, `rsct`: Cache-Control … Content-Type to answer with. */
  overrides: Record<string, string>
}

/** The request a SAS is checked against. */
export interface SasRequest {
  query: URLSearchParams
  account: string
  container: string
  blob: string
  keys: readonly string[]
  access: Access
  /** True when the target blob exists (for `existing`). */
  exists: () => boolean
  remoteAddress: string | undefined
  https: boolean
  now?: number
}

/** The oldest signed version served (account SAS exists from it on). */
const OLDEST_VERSION = '2015-04-05'

const OVERRIDES: [string, string][] = [
  ['rscc', 'Cache-Control'],
  ['rscd', 'Content-Disposition'],
  ['rsce', 'Content-Encoding'],
  ['rscl', 'Content-Language'],
  ['rsct', 'Content-Type'],
]

/** Query parameters that make a request a SAS request. */
export function isSasRequest(query: URLSearchParams): boolean {
  return query.has('sig')
}

function failed(detail: string): CairnError {
  return blobError('AuthenticationFailed', `Cannot authenticate the SAS: ${detail}`, {
    AuthenticationErrorDetail: detail,
  })
}

function denied(code: AzureErrorCode, why: string, extra: Record<string, string> = {}): CairnError {
  return blobError(code, `Cannot authorize the request with its SAS: ${why}`, extra)
}

function q(query: URLSearchParams, name: string): string {
  return query.get(name) ?? ''
}

/** An ISO 8601 UTC time of a SAS (`2026-12-06`, `…T12:00Z`, `…T12:00:00Z`, `…T12:00:00.1234567Z`). */
function sasTime(name: string, value: string): number {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?Z)?$/.test(value))
    throw failed(`${name} "${value}" is not an ISO 8601 UTC time`)
  const t = Date.parse(value.replace(/(\.\d{3})\d+Z$/, '$1Z'))
  if (Number.isNaN(t)) throw failed(`${name} "${value}" is not an ISO 8601 UTC time`)
  return t
}

function httpTime(ms: number): string {
  return new Date(ms).toUTCString()
}

/** An IPv4 address as a number, or undefined. */
function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (m === null) return undefined
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) return undefined
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!
}

function checkIp(sip: string, remote: string | undefined): void {
  const [fromText, toText = fromText] = sip.split('-') as [string, string?]
  const from = ipv4(fromText)
  const to = ipv4(toText ?? fromText)
  if (from === undefined || to === undefined) throw failed(`sip "${sip}" is not an IPv4 address or range`)
  const client = remote?.replace(/^::ffff:/, '') ?? ''
  const at = ipv4(client)
  if (at === undefined || at < from || at > to)
    throw denied('AuthorizationSourceIPMismatch', `the client ${client} is outside ${sip}`, {
      SourceIP: client,
    })
}

/** The HMAC-SHA256 of a string-to-sign with a base64 key, as base64. */
function hmac(text: string, key: string): string {
  return createHmac('sha256', Buffer.from(key, 'base64')).update(text, 'utf8').digest('base64')
}

function matchesAKey(text: string, sig: string, keys: readonly string[]): boolean {
  const given = Buffer.from(sig, 'base64')
  let ok = false
  for (const key of keys) {
    const expected = Buffer.from(hmac(text, key), 'base64')
    if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true
  }
  return ok
}

/** The string-to-sign of an account SAS of signed version `sv`. */
export function accountStringToSign(account: string, query: URLSearchParams): string {
  const sv = q(query, 'sv')
  const fields = [
    account,
    q(query, 'sp'),
    q(query, 'ss'),
    q(query, 'srt'),
    q(query, 'st'),
    q(query, 'se'),
    q(query, 'sip'),
    q(query, 'spr'),
    sv,
  ]
  if (sv >= '2020-12-06') fields.push(q(query, 'ses'))
  return `${fields.join('\n')}\n`
}

/** The string-to-sign of a service SAS (container, blob or snapshot) of signed version `sv`. */
export function serviceStringToSign(
  query: URLSearchParams,
  resource: { account: string; container: string; blob: string },
): string {
  const sv = q(query, 'sv')
  const sr = q(query, 'sr')
  const canonical =
    sr === 'c'
      ? `/blob/${resource.account}/${resource.container}`
      : `/blob/${resource.account}/${resource.container}/${resource.blob}`
  const fields = [q(query, 'sp'), q(query, 'st'), q(query, 'se'), canonical, q(query, 'si'), q(query, 'sip')]
  fields.push(q(query, 'spr'), sv)
  if (sv >= '2018-11-09') fields.push(sr, sr === 'bs' ? q(query, 'snapshot') : '')
  if (sv >= '2020-12-06') fields.push(q(query, 'ses'))
  for (const [name] of OVERRIDES) fields.push(q(query, name))
  return fields.join('\n')
}

function checkPermissions(sp: string, need: string, what: string): void {
  if (![...need].some((p) => sp.includes(p)))
    throw denied(
      'AuthorizationPermissionMismatch',
      `${what} needs permission ${[...need].join(' or ')}; the SAS grants "${sp}"`,
    )
}

/**
 * Checks the SAS of a request; answers what it grants, or throws Azure's 403 (AuthenticationFailed for a
 * malformed, tampered, expired or not-yet-valid SAS; AuthorizationPermissionMismatch, …ResourceTypeMismatch,
 * …ServiceMismatch, …SourceIPMismatch or …ProtocolMismatch for one that does not cover the request).
 */
export function verifySas(r: SasRequest): SasGrant {
  const { query } = r
  const sv = q(query, 'sv')
  const sig = q(query, 'sig')
  if (sv === '') throw failed('sv is mandatory. Cannot be empty')
  if (!/^\d{4}-\d{2}-\d{2}$/.test(sv)) throw failed(`sv "${sv}" is not a service version`)
  if (sv < OLDEST_VERSION)
    throw failed(`signed version ${sv} is older than ${OLDEST_VERSION}, the oldest this service checks`)
  if (query.has('skoid') || query.has('sktid'))
    throw failed('a user delegation SAS needs Microsoft Entra ID, which this service does not serve')
  if (q(query, 'si') !== '')
    throw failed(
      `stored access policy "${q(query, 'si')}" does not exist: containers hold no access policies`,
    )
  if (q(query, 'ses') !== '')
    throw failed(`encryption scope "${q(query, 'ses')}" does not exist: encryption scopes are not served`)
  const sp = q(query, 'sp')
  const se = q(query, 'se')
  if (sp === '') throw failed('sp is mandatory. Cannot be empty')
  if (se === '') throw failed('se is mandatory. Cannot be empty')
  const account = query.has('ss') || query.has('srt')
  const sr = q(query, 'sr')
  if (!account && !['b', 'c', 'bs'].includes(sr))
    throw failed(sr === '' ? 'sr is mandatory. Cannot be empty' : `signed resource "${sr}" is not c, b or bs`)
  const text = account
    ? accountStringToSign(r.account, query)
    : serviceStringToSign(query, { account: r.account, container: r.container, blob: r.blob })
  if (!matchesAKey(text, sig, r.keys))
    throw failed(`Signature did not match. String to sign used was ${text}`)

  const now = r.now ?? Date.now()
  const expiry = sasTime('se', se)
  const start = q(query, 'st') === '' ? undefined : sasTime('st', q(query, 'st'))
  if (start !== undefined && expiry <= start)
    throw failed(
      `Signed expiry time [${httpTime(expiry)}] must be after signed start time [${httpTime(start)}]`,
    )
  if (now >= expiry || (start !== undefined && now < start))
    throw failed(
      `Signature not valid in the specified time frame: Start [${start === undefined ? '' : httpTime(start)}] - Expiry [${httpTime(expiry)}] - Current [${httpTime(now)}]`,
    )
  const sip = q(query, 'sip')
  if (sip !== '') checkIp(sip, r.remoteAddress)
  const spr = q(query, 'spr')
  if (spr !== '' && spr !== 'https' && spr !== 'https,http')
    throw failed(`spr "${spr}" is not https or https,http`)
  if (spr === 'https' && !r.https)
    throw denied('AuthorizationProtocolMismatch', 'the SAS allows https only and the request came over http')

  const what = `this ${r.access.resource === 's' ? 'service' : r.access.resource === 'c' ? 'container' : 'blob'} operation`
  if (account) {
    if (!q(query, 'ss').includes('b'))
      throw denied('AuthorizationServiceMismatch', `the SAS names services "${q(query, 'ss')}", not b (blob)`)
    if (!q(query, 'srt').includes(r.access.resource))
      throw denied(
        'AuthorizationResourceTypeMismatch',
        `${what} needs resource type ${r.access.resource}; the SAS names "${q(query, 'srt')}"`,
      )
  } else {
    const fits =
      r.access.serviceSas && (r.access.resource === 'o' || (r.access.resource === 'c' && sr === 'c'))
    if (!fits)
      throw denied(
        'AuthorizationResourceTypeMismatch',
        `a service SAS of resource "${sr}" cannot authorize ${what}`,
      )
  }
  checkPermissions(sp, r.access.any, what)
  if (r.access.existing !== undefined && r.exists())
    checkPermissions(sp, r.access.existing, `${what} on an existing blob`)

  const overrides: Record<string, string> = {}
  if (!account)
    for (const [name, header] of OVERRIDES) if (q(query, name) !== '') overrides[header] = q(query, name)
  return { kind: account ? 'account' : 'service', overrides }
}
