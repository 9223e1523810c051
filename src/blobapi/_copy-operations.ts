// Copy Blob and Incremental Copy Blob within the service. Both finish before they answer: the disk store
// copies without moving data (`copyDisk`), so the copy status is `success` at once.
import { randomUUID } from 'node:crypto'
import type { CopyInfo, DiskInfo, DiskRef } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import { type Answer, type BlobContext, diskRef, queryOf } from './_blob-context.js'
import {
  findDisk,
  isIncrementalCopy,
  refuseIncrementalCopy,
  refuseSnapshotWrite,
} from './_blob-operations.js'
import { NotABlobUrl, parseBlobUrl, withoutSas } from './_blob-url.js'
import { authorizeCopySource, checkSourceConditions, copyTags } from './_copy-source-auth.js'
import {
  checkHttpConditions,
  hasMetadata,
  headerOf,
  httpDate,
  leaseIdHeader,
  quoteEtag,
  requestMetadata,
} from './_headers.js'
import { badHeader, blobError } from './blob-errors.js'

/** A copy source: a blob of this service, or one of its snapshots. */
export interface CopySource {
  ref: DiskRef
  snapshot?: string
}

/** A copy source found in the store: where it is, its properties, and its URL as properties show it. */
export interface ResolvedCopySource extends CopySource {
  info: DiskInfo
  /** The URL without SAS parameters, as `x-ms-copy-source` of the destination shows it. */
  shownUrl: string
}

/** Parses a copy source URL of this service (path or host style, `?snapshot=S`); existence unchecked. */
export function parseCopySource(ctx: BlobContext, url: string): CopySource {
  try {
    return parseBlobUrl(ctx.store, url)
  } catch (err) {
    if (!(err instanceof NotABlobUrl)) throw err
    if (err.foreign) throw blobError('CannotVerifyCopySource', `Cannot copy from ${err.message}`)
    throw blobError('InvalidSourceBlobUrl', `Cannot copy from "${url}": ${err.message}`)
  }
}

/**
 * The one place a copy source (`x-ms-copy-source` of Copy Blob and Incremental Copy Blob) is resolved:
 * parsed, authorized (a SAS of the source's account, or the destination account's own Shared Key),
 * found in the store, its source conditions checked, and its URL made fit to show.
 */
export function resolveCopySource(ctx: BlobContext, url: string): ResolvedCopySource {
  const source = parseCopySource(ctx, url)
  const shownUrl = withoutSas(url)
  authorizeCopySource(ctx, url, source, shownUrl)
  let info: DiskInfo
  try {
    info = ctx.store.getDisk(source.ref, source.snapshot)
  } catch (err) {
    if (
      isCairnError(err) &&
      ['AccountNotFound', 'ContainerNotFound', 'DiskNotFound', 'SnapshotNotFound'].includes(err.code)
    )
      throw blobError('CannotVerifyCopySource', `Cannot copy from "${shownUrl}": ${err.message}`)
    throw err
  }
  checkSourceConditions(ctx, info)
  return { ...source, info, shownUrl }
}

/** Checks the destination's lease the way a blob write does (copyDisk takes no conditions). */
function checkDestinationLease(ctx: BlobContext, d: DiskInfo | undefined): void {
  const leaseId = leaseIdHeader(ctx.req)
  const held = d !== undefined && (d.lease.state === 'leased' || d.lease.state === 'breaking')
  if (held && leaseId === undefined)
    throw blobError(
      'LeaseIdMissing',
      `Cannot copy onto blob "${ctx.blob}": it is leased and no lease id was given`,
    )
  if (held && leaseId !== d.lease.id)
    throw blobError(
      'LeaseIdMismatchWithBlobOperation',
      `Cannot copy onto blob "${ctx.blob}": the lease id does not match`,
    )
  if (!held && leaseId !== undefined)
    throw blobError(
      'LeaseNotPresentWithBlobOperation',
      `Cannot copy onto blob "${ctx.blob}": it has no active lease`,
    )
}

function copyFrom(s: CopySource): CopySource {
  return s.snapshot === undefined ? { ref: s.ref } : { ref: s.ref, snapshot: s.snapshot }
}

function copyInfo(url: string, size: number, destinationSnapshot?: string): CopyInfo {
  const info: CopyInfo = {
    id: randomUUID(),
    source: url,
    status: 'success',
    progress: `${size}/${size}`,
    completedOn: new Date().toISOString(),
  }
  if (destinationSnapshot !== undefined) info.destinationSnapshot = destinationSnapshot
  return info
}

/** PUT /account/container/blob with x-ms-copy-source (Copy Blob, also with x-ms-requires-sync). */
export async function copyBlob(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const type = headerOf(ctx.req, 'x-ms-blob-type')
  if (type !== undefined)
    throw badHeader(
      'x-ms-blob-type',
      type,
      'Put Blob From URL makes block blobs, which this service does not hold',
    )
  const source = resolveCopySource(ctx, headerOf(ctx.req, 'x-ms-copy-source')!)
  const ref = diskRef(ctx)
  const existing = findDisk(ctx.store, ref)
  checkHttpConditions(ctx.req, existing, false)
  if (existing !== undefined) refuseIncrementalCopy(existing, 'copy onto')
  checkDestinationLease(ctx, existing)
  const tags = copyTags(ctx, source.info)
  await ctx.store.copyDisk(copyFrom(source), ref, {
    overwrite: true,
    ...(tags !== undefined ? { tags } : {}),
    ...(hasMetadata(ctx.req) ? { metadata: requestMetadata(ctx.req) } : {}),
  })
  const info = copyInfo(source.shownUrl, source.info.size)
  await ctx.store.setCopyInfo(ref, info)
  const d = ctx.store.getDisk(ref)
  return {
    status: 202,
    headers: {
      ETag: quoteEtag(d.etag),
      'Last-Modified': httpDate(d.lastModified),
      'x-ms-copy-id': info.id,
      'x-ms-copy-status': info.status,
    },
  }
}

/**
 * PUT /account/container/blob?comp=incrementalcopy with x-ms-copy-source naming a snapshot.
 * The first copy makes the destination a copy of the source snapshot; later copies of newer snapshots of
 * the same source bring it up to date. Within one store that is a metadata-only `copyDisk`: the pages
 * that did not change stay shared, so only the differences take new room. Each copy ends with a snapshot
 * of the destination, reported as `x-ms-copy-destination-snapshot`. The destination is known as an
 * incremental copy by its copy record (a `destinationSnapshot`), which the blob API alone writes.
 */
export async function incrementalCopy(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const url = headerOf(ctx.req, 'x-ms-copy-source')
  if (url === undefined)
    throw blobError('MissingRequiredHeader', 'Incremental Copy Blob needs x-ms-copy-source', {
      HeaderName: 'x-ms-copy-source',
    })
  const source = resolveCopySource(ctx, url)
  if (source.snapshot === undefined)
    throw blobError(
      'IncrementalCopySourceMustBeSnapshot',
      `Cannot copy incrementally from "${source.shownUrl}": it names no snapshot`,
    )
  const ref = diskRef(ctx)
  const existing = findDisk(ctx.store, ref)
  checkHttpConditions(ctx.req, existing, false)
  if (existing !== undefined) {
    if (!isIncrementalCopy(existing))
      throw blobError(
        'InvalidBlobType',
        `Cannot copy incrementally onto blob "${ctx.blob}": it is not an incremental copy`,
      )
    const previous = existing.copy === undefined ? undefined : parseCopySource(ctx, existing.copy.source)
    if (
      previous !== undefined &&
      (previous.ref.account !== source.ref.account ||
        previous.ref.container !== source.ref.container ||
        previous.ref.disk !== source.ref.disk)
    )
      throw blobError(
        'IncrementalCopyBlobMismatch',
        `Cannot copy "${source.shownUrl}" into blob "${ctx.blob}": its earlier copies came from ${existing.copy!.source}`,
      )
    if (previous?.snapshot !== undefined && source.snapshot < previous.snapshot)
      throw blobError(
        'IncrementalCopyOfEarlierVersionSnapshotNotAllowed',
        `Cannot copy snapshot ${source.snapshot} into blob "${ctx.blob}": snapshot ${previous.snapshot} is already there`,
      )
  }
  checkDestinationLease(ctx, existing)
  // Copy, snapshot and copy record are applied synchronously one after the other (each store mutation
  // applies when called), so no request sees the destination between them; then wait for durability.
  const copied = ctx.store.copyDisk(copyFrom(source), ref, {
    overwrite: true,
    metadata: source.info.metadata,
  })
  const snapped = ctx.store.snapshot(ref)
  const snap = ctx.store.listSnapshots(ref).at(-1)!
  const info = copyInfo(source.shownUrl, source.info.size, snap.snapshot)
  const recorded = ctx.store.setCopyInfo(ref, info)
  await Promise.all([copied, snapped, recorded])
  const d = ctx.store.getDisk(ref)
  return {
    status: 202,
    headers: {
      ETag: quoteEtag(d.etag),
      'Last-Modified': httpDate(d.lastModified),
      'x-ms-copy-id': info.id,
      'x-ms-copy-status': info.status,
      'x-ms-copy-destination-snapshot': snap.snapshot,
    },
  }
}

/** PUT /account/container/blob?comp=copy&copyid=ID with x-ms-copy-action: abort */
export function abortCopy(ctx: BlobContext): Answer {
  const action = headerOf(ctx.req, 'x-ms-copy-action')
  if (action !== 'abort') throw badHeader('x-ms-copy-action', action ?? '', 'use abort')
  const d = ctx.store.getDisk(diskRef(ctx))
  const id = queryOf(ctx, 'copyid')
  throw blobError(
    'NoPendingCopyOperation',
    `Cannot abort copy ${id ?? ''} into blob "${d.ref.disk}": copies within Cairn finish before they are answered`,
  )
}
