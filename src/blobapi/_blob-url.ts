// Blob URLs that name a blob of this service, as clients send them in x-ms-copy-source and
// x-ms-previous-snapshot-url: path style (`http://host:port/account/container/blob`) or host style
// (`https://account.blob.core.windows.net/container/blob`, what `az storage blob copy start
// --source-container` builds), with an optional `?snapshot=`.
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'

/** A blob of this service, or one of its snapshots, named by a URL. */
export interface BlobUrl {
  ref: DiskRef
  snapshot?: string
}

/** Why a URL names no blob of this service (the caller turns it into its operation's Azure error). */
export class NotABlobUrl extends Error {
  /** True for a well-formed URL of an account this service does not hold; false for a malformed one. */
  readonly foreign: boolean
  constructor(message: string, foreign = false) {
    super(message)
    this.foreign = foreign
  }
}

/** The query parameters of a shared access signature: never kept or shown (`x-ms-copy-source`). */
const SAS_PARAMETERS = new Set([
  'sv',
  'ss',
  'srt',
  'sp',
  'se',
  'st',
  'spr',
  'sip',
  'sig',
  'sr',
  'si',
  'sdd',
  'ses',
  'skoid',
  'sktid',
  'skt',
  'ske',
  'sks',
  'skv',
  'saoid',
  'suoid',
  'scid',
  'sduoid',
  'rscc',
  'rscd',
  'rsce',
  'rscl',
  'rsct',
])

/** `url` without its SAS query parameters (sig and the rest), as a copy source is shown. */
export function withoutSas(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url
  }
  const keep = [...u.searchParams].filter(([k]) => !SAS_PARAMETERS.has(k.toLowerCase()))
  u.search = new URLSearchParams(keep).toString()
  return u.toString()
}

function accountExists(store: DiskStore, name: string): boolean {
  try {
    store.getAccount(name)
    return true
  } catch (err) {
    if (isCairnError(err) && err.code === 'AccountNotFound') return false
    throw err
  }
}

/**
 * The blob a URL names. A host `ACCOUNT.blob.…` is host style and must name an account of this service;
 * every other URL is read path style. Whether the blob exists is not checked.
 */
export function parseBlobUrl(store: DiskStore, url: string): BlobUrl {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new NotABlobUrl(`"${url}" is not an absolute URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new NotABlobUrl(`"${url}" is not an http or https URL`)
  let parts: string[]
  try {
    parts = u.pathname
      .split('/')
      .slice(1)
      .map((p) => decodeURIComponent(p))
  } catch {
    throw new NotABlobUrl(`the path of "${url}" has bad percent-encoding`)
  }
  const labels = u.hostname.split('.')
  const hostAccount = labels.length >= 3 && labels[1] === 'blob' ? labels[0]! : undefined
  if (hostAccount !== undefined) {
    if (!accountExists(store, hostAccount))
      throw new NotABlobUrl(
        `"${url}" names account "${hostAccount}", which is not an account of this service`,
        true,
      )
    parts = [hostAccount, ...parts]
  }
  if (parts.length < 3 || parts.slice(0, 3).some((p) => p === ''))
    throw new NotABlobUrl(`the path of "${url}" is not /account/container/blob`)
  const [account, container, ...blob] = parts
  const ref = { account: account!, container: container!, disk: blob.join('/') }
  const snapshot = u.searchParams.get('snapshot')
  return snapshot === null || snapshot === '' ? { ref } : { ref, snapshot }
}
