// Authorization and conditions of a copy source (Copy Blob, Incremental Copy Blob, Put Page From URL).
// A source in another account needs that account's authorization: a SAS on the source URL, checked as
// a request of its own would be (read permission on that blob). A source in the destination's account
// may go without one when the destination request is signed with the account's Shared Key, as Azure
// allows; a destination authorized by a SAS reaches other blobs only through their own SAS, so a SAS
// for one blob never reads the rest of its account. Containers are never public here, so there is no
// anonymous source.
import type { DiskInfo } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import type { BlobContext } from './_blob-context.js'
import type { BlobUrl } from './_blob-url.js'
import { checkHttpConditions, headerOf } from './_headers.js'
import { isSasRequest, verifySas } from './_sas.js'
import { headerTags, matchesTags, parseTagCondition, type Tags } from './_tags.js'
import { type AzureErrorAnswer, badHeader, blobError, toAzureError } from './blob-errors.js'

/** Refuses a copy source the request is not authorized to read; `url` is the source URL as sent. */
export function authorizeCopySource(ctx: BlobContext, url: string, source: BlobUrl, shownUrl: string): void {
  const bearer = headerOf(ctx.req, 'x-ms-copy-source-authorization')
  if (bearer !== undefined)
    throw badHeader(
      'x-ms-copy-source-authorization',
      bearer.replace(/\s.*$/, ' …'),
      'Microsoft Entra tokens are not served; put a SAS on the source URL',
    )
  const query = new URL(url).searchParams
  if (isSasRequest(query)) {
    let keys: readonly string[]
    try {
      keys = ctx.store.getAccount(source.ref.account).keys
    } catch (err) {
      if (isCairnError(err) && err.code === 'AccountNotFound')
        throw blobError(
          'CannotVerifyCopySource',
          `Cannot copy from "${shownUrl}": its account does not exist`,
        )
      throw err
    }
    try {
      verifySas({
        query,
        account: source.ref.account,
        container: source.ref.container,
        blob: source.ref.disk,
        keys,
        access: { resource: 'o', any: 'r', serviceSas: true },
        exists: () => true,
        remoteAddress: ctx.req.socket.remoteAddress,
        // The source is read through its URL, so its scheme is the protocol the SAS's spr is held to.
        https: new URL(url).protocol === 'https:',
      })
    } catch (err) {
      const refused: AzureErrorAnswer = toAzureError(err, 'copy')
      throw blobError(
        'CannotVerifyCopySource',
        `Cannot copy from "${shownUrl}": the source's SAS is refused: ${refused.code}: ${refused.extra.AuthenticationErrorDetail ?? refused.extra.Reason ?? refused.message}`,
        {},
        refused.status,
      )
    }
    return
  }
  if (source.ref.account === ctx.account && ctx.auth === 'sharedKey') return
  throw blobError(
    'CannotVerifyCopySource',
    source.ref.account === ctx.account
      ? `Cannot copy from "${shownUrl}": a request authorized by a SAS copies only from sources with a SAS of their own`
      : `Cannot copy from "${shownUrl}": it is in account "${source.ref.account}", so the source URL needs a SAS of that account`,
  )
}

/**
 * The tags a Copy Blob gives its destination: those of `x-ms-tags`, or with `x-ms-copy-source-tag-option:
 * COPY` (synchronous copies only) the source's; undefined for none.
 */
export function copyTags(ctx: BlobContext, source: DiskInfo): Tags | undefined {
  const option = headerOf(ctx.req, 'x-ms-copy-source-tag-option')
  const given = headerOf(ctx.req, 'x-ms-tags')
  if (option === undefined || option === 'REPLACE') return given === undefined ? undefined : headerTags(given)
  if (option !== 'COPY') throw badHeader('x-ms-copy-source-tag-option', option, 'use COPY or REPLACE')
  if (headerOf(ctx.req, 'x-ms-requires-sync') !== 'true')
    throw badHeader(
      'x-ms-copy-source-tag-option',
      option,
      'only a synchronous copy (x-ms-requires-sync: true) takes it',
    )
  if (given !== undefined)
    throw badHeader('x-ms-tags', given, 'x-ms-copy-source-tag-option COPY takes the source tags')
  return { ...source.tags }
}

/**
 * Checks the source conditions of a copy (`x-ms-source-if-match`, `-none-match`, `-modified-since`,
 * `-unmodified-since`, `-if-tags`) and `x-ms-source-lease-id` against the source: 412
 * SourceConditionNotMet (or the lease's 412) when one fails.
 */
export function checkSourceConditions(ctx: BlobContext, info: DiskInfo): void {
  const h = (name: string) => headerOf(ctx.req, `x-ms-source-${name}`)
  const headers: Record<string, string> = {}
  for (const name of ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']) {
    const v = h(name)
    if (v !== undefined) headers[name] = v
  }
  const tags = h('if-tags')
  const leaseId = h('lease-id')
  if (leaseId !== undefined) {
    const held =
      info.snapshot === undefined && (info.lease.state === 'leased' || info.lease.state === 'breaking')
    if (!held)
      throw blobError(
        'LeaseNotPresentWithBlobOperation',
        `Cannot copy: x-ms-source-lease-id is ${leaseId} and the source has no active lease`,
      )
    if (info.lease.id !== leaseId)
      throw blobError(
        'LeaseIdMismatchWithBlobOperation',
        `Cannot copy: x-ms-source-lease-id ${leaseId} is not the source's lease`,
      )
  }
  const fail = (why: string) => blobError('SourceConditionNotMet', `Cannot copy: the source ${why}`)
  if (Object.keys(headers).length > 0) {
    try {
      checkHttpConditions({ headers } as unknown as BlobContext['req'], info, false)
    } catch (err) {
      if (isCairnError(err) && err.code === 'ConditionNotMet')
        throw fail(err.message.replace(/^Cannot serve the request: /, 'fails: '))
      throw err
    }
  }
  if (tags !== undefined && !matchesTags(parseTagCondition(tags, 'x-ms-source-if-tags'), info.tags ?? {}))
    throw fail(`tags do not satisfy x-ms-source-if-tags ${tags}`)
}
