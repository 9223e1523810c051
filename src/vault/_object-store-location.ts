import { CairnError } from '../util/index.js'
import type { RetryOptions } from './_object-store-retry.js'

// Object-store vault locations and where their settings come from. A location names the place and
// the non-secret ways to reach it (`?endpoint=`, `?region=`, `?path-style=`); secrets come only from the
// service's configuration or the SDKs' standard environment variables, never from the location, which
// is stored in the catalog and shown in answers and logs.

/** Azure Blob Storage settings (each falls back to its environment variable). */
export interface AzureBlobOptions {
  /** AZURE_STORAGE_CONNECTION_STRING; its AccountName must be the location's account. */
  connectionString?: string
  /** AZURE_STORAGE_KEY (or AZURE_STORAGE_ACCESS_KEY): the account's shared key. */
  accountKey?: string
  /** AZURE_STORAGE_SAS_TOKEN: a SAS token for the container or account. */
  sasToken?: string
  /** The blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1` (default `https://ACCOUNT.blob.core.windows.net`). */
  endpoint?: string
}

/** S3 settings (each falls back to the AWS SDK's environment variable). */
export interface S3Options {
  /** AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; default AWS's own. */
  endpoint?: string
  /** AWS_REGION or AWS_DEFAULT_REGION; default `us-east-1`. */
  region?: string
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need. */
  pathStyle?: boolean
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
  accessKeyId?: string
  secretAccessKey?: string
  sessionToken?: string
}

/** How the object-store backends reach their stores. */
export interface ObjectStoreOptions {
  azure?: AzureBlobOptions
  s3?: S3Options
  retry?: RetryOptions
  /** Requests in flight at once per backend (default 16). */
  maxSockets?: number
  /** Where the environment variables are read (default `process.env`). */
  env?: Record<string, string | undefined>
}

/** A parsed `azblob://ACCOUNT/CONTAINER/PREFIX` location. */
export interface AzureLocation {
  account: string
  container: string
  /** Object-name prefix without leading or trailing `/` ('' for the container's root). */
  prefix: string
  /** From `?endpoint=`, when given. */
  endpoint?: string
  /** The location as stored and shown. */
  canonical: string
}

/** A parsed `s3://BUCKET/PREFIX` location. */
export interface S3Location {
  bucket: string
  prefix: string
  endpoint?: string
  region?: string
  pathStyle?: boolean
  canonical: string
}

const ACCOUNT = /^[a-z0-9]{3,24}$/
const CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/
const BUCKET = /^(?=.{3,63}$)[a-z0-9][a-z0-9.-]*[a-z0-9]$/

/** The location with its query and any user part hidden, for messages about a malformed one. */
export function redactLocation(location: string): string {
  return location.replace(/^([a-z0-9+.-]+:\/\/)[^/@?]*@/i, '$1…@').replace(/\?.*$/s, '?…')
}

function refuse(location: string, why: string): CairnError {
  return new CairnError(
    'UnsupportedVaultLocation',
    `Cannot use vault location "${redactLocation(location)}": ${why}`,
  )
}

/** Splits `scheme://host/path?query`, refusing user parts, fragments and unknown query keys. */
function split(
  location: string,
  scheme: string,
  allowed: readonly string[],
): { host: string; parts: string[]; query: Map<string, string> } {
  const m = /^[a-z0-9]+:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/is.exec(location)
  if (!m) throw refuse(location, `it is not a ${scheme}:// URL`)
  const [, host = '', path = '', search = '', hash] = m
  if (host.includes('@') || host.includes(':'))
    throw refuse(
      location,
      'credentials never go in a location (it is stored and shown); give them in the service configuration or the environment',
    )
  if (hash) throw refuse(location, 'a location has no #fragment')
  const query = new Map<string, string>()
  for (const [k, v] of new URLSearchParams(search)) {
    if (!allowed.includes(k))
      throw refuse(
        location,
        `"${k}" is not a location parameter (${allowed.map((a) => `?${a}=`).join(', ')} are; secrets such as keys and SAS tokens go in the service configuration or the environment)`,
      )
    query.set(k, v)
  }
  const parts = path.split('/').filter((p) => p !== '')
  for (const p of parts)
    if (p === '.' || p === '..' || p.includes('\0')) throw refuse(location, 'its path has a "." or ".." part')
  return { host, parts, query }
}

function checkEndpoint(location: string, endpoint: string | undefined): void {
  if (endpoint === undefined) return
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw refuse(location, 'its endpoint is not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw refuse(location, 'its endpoint is not an http:// or https:// URL')
  if (url.username || url.password || url.search)
    throw refuse(location, 'its endpoint carries credentials or a query; give secrets in the configuration')
}

function canonical(base: string, prefix: string, query: [string, string | undefined][]): string {
  const q = new URLSearchParams()
  for (const [k, v] of query) if (v !== undefined) q.set(k, v)
  const s = q.toString()
  return `${base}${prefix ? `/${prefix}` : ''}${s ? `?${s}` : ''}`
}

/** Parses `azblob://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL]`. */
export function parseAzureLocation(location: string): AzureLocation {
  const { host, parts, query } = split(location, 'azblob', ['endpoint'])
  const account = host
  if (!ACCOUNT.test(account))
    throw refuse(location, `"${account}" is not a storage account name (3–24 lowercase letters and digits)`)
  const [container, ...rest] = parts
  if (container === undefined)
    throw refuse(location, 'it names no container: azblob://ACCOUNT/CONTAINER/PREFIX')
  if (!CONTAINER.test(container))
    throw refuse(
      location,
      `"${container}" is not a container name (3–63 lowercase letters, digits and single hyphens)`,
    )
  const prefix = rest.join('/')
  const endpoint = query.get('endpoint')
  checkEndpoint(location, endpoint)
  return {
    account,
    container,
    prefix,
    ...(endpoint !== undefined ? { endpoint } : {}),
    canonical: canonical(`azblob://${account}/${container}`, prefix, [['endpoint', endpoint]]),
  }
}

/** Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true]`. */
export function parseS3Location(location: string): S3Location {
  const { host, parts, query } = split(location, 's3', ['endpoint', 'region', 'path-style'])
  const bucket = host
  if (!BUCKET.test(bucket))
    throw refuse(
      location,
      `"${bucket}" is not a bucket name (3–63 lowercase letters, digits, dots and hyphens)`,
    )
  const prefix = parts.join('/')
  const endpoint = query.get('endpoint')
  checkEndpoint(location, endpoint)
  const region = query.get('region')
  if (region !== undefined && !/^[a-z0-9-]{1,40}$/.test(region))
    throw refuse(location, `"${region}" is not a region name`)
  const ps = query.get('path-style')
  if (ps !== undefined && ps !== 'true' && ps !== 'false')
    throw refuse(location, '?path-style= is true or false')
  return {
    bucket,
    prefix,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(region !== undefined ? { region } : {}),
    ...(ps !== undefined ? { pathStyle: ps === 'true' } : {}),
    canonical: canonical(`s3://${bucket}`, prefix, [
      ['endpoint', endpoint],
      ['region', region],
      ['path-style', ps],
    ]),
  }
}

/** The first of `values` that is a non-empty string. */
export function firstSet(...values: (string | undefined)[]): string | undefined {
  return values.find((v) => v !== undefined && v !== '')
}

/** The object key of `name` under `prefix`. */
export function keyOf(prefix: string, name: string): string {
  return prefix ? `${prefix}/${name}` : name
}
