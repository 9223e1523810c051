// Request options the blob API does not serve. The rule of the whole API: an option that is not
// served is refused with a clear Azure error, never ignored (a client that asked for an encryption
// scope, an immutability policy or a tier must not believe it got one). The options the API serves are
// read by the operations themselves; this is the list of those it knows and refuses.
import type { BlobContext } from './_blob-context.js'
import { headerOf } from './_headers.js'
import { blobError } from './blob-errors.js'

/** Headers refused on every operation, with why. */
const UNSERVED_HEADERS: Record<string, string> = {
  'x-ms-encryption-key': 'customer-provided encryption keys are not served',
  'x-ms-encryption-key-sha256': 'customer-provided encryption keys are not served',
  'x-ms-encryption-algorithm': 'customer-provided encryption keys are not served',
  'x-ms-source-encryption-key': 'customer-provided encryption keys are not served',
  'x-ms-source-encryption-key-sha256': 'customer-provided encryption keys are not served',
  'x-ms-source-encryption-algorithm': 'customer-provided encryption keys are not served',
  'x-ms-encryption-scope': 'encryption scopes are not served',
  'x-ms-default-encryption-scope': 'encryption scopes are not served',
  'x-ms-deny-encryption-scope-override': 'encryption scopes are not served',
  'x-ms-immutability-policy-until-date': 'immutability policies are not served',
  'x-ms-immutability-policy-mode': 'immutability policies are not served',
  'x-ms-legal-hold': 'legal holds are not served',
  'x-ms-rehydrate-priority': 'access tiers are not served',
  'x-ms-expiry-option': 'blob expiry is not served',
  'x-ms-expiry-time': 'blob expiry is not served',
}

/** Query parameters refused on every operation, with why. */
const UNSERVED_QUERY: Record<string, string> = {
  versionid: 'blob versions are not served',
  deletetype: 'soft delete is not served; deletes are permanent',
}

/** Values of `include` a listing accepts: what it serves, and what exists nowhere here (so none listed). */
const LIST_INCLUDES: Record<'containers' | 'blobs', Set<string>> = {
  containers: new Set(['metadata', 'deleted', 'system']),
  blobs: new Set([
    'snapshots',
    'metadata',
    'tags',
    'copy',
    'deleted',
    'deletedwithversions',
    'uncommittedblobs',
    'versions',
    'immutabilitypolicy',
    'legalhold',
    'permissions',
  ]),
}

/** Throws Azure's error for the first option of the request that the API does not serve. */
export function refuseUnservedOptions(ctx: BlobContext): void {
  const headers = ctx.req.headers
  if (headerOf(ctx.req, 'x-ms-access-tier') !== undefined)
    throw blobError(
      'BlobAccessTierNotSupportedForAccountType',
      `Cannot set access tier ${headerOf(ctx.req, 'x-ms-access-tier')}: Cairn's accounts are standard accounts, whose page blobs have no tier`,
      { HeaderName: 'x-ms-access-tier' },
    )
  for (const name of Object.keys(headers)) {
    const why = UNSERVED_HEADERS[name]
    if (why !== undefined && headerOf(ctx.req, name) !== undefined)
      throw blobError('UnsupportedHeader', `Cannot accept header ${name}: ${why}`, { HeaderName: name })
  }
  for (const [name, value] of ctx.query) {
    const why = UNSERVED_QUERY[name.toLowerCase()]
    if (why !== undefined && value !== '')
      throw blobError('UnsupportedQueryParameter', `Cannot accept query parameter ${name}: ${why}`, {
        QueryParameterName: name,
      })
  }
  const include = ctx.query.get('include')
  if (include !== null && ctx.query.get('comp') === 'list') {
    const allowed = LIST_INCLUDES[ctx.container === '' ? 'containers' : 'blobs']
    for (const v of include.split(',')) {
      const item = v.trim().toLowerCase()
      if (item !== '' && !allowed.has(item))
        throw blobError(
          'InvalidQueryParameterValue',
          `Cannot list with include=${v.trim()}: use ${[...allowed].join(', ')}`,
          { QueryParameterName: 'include', QueryParameterValue: include },
        )
    }
  }
}
