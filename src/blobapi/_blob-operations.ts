// Blob-level operations on page blobs: Put Blob, Get Blob, properties, metadata, leases, snapshots, delete.
import { createHash } from 'node:crypto'
import {
  type ContentProperties,
  type DiskInfo,
  type DiskRef,
  type DiskStore,
  type LeaseAction,
  MAX_DISK_SIZE,
  MAX_WRITE_SIZE,
  PAGE_SIZE,
  type WriteResult,
} from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import {
  type Answer,
  type BlobContext,
  diskRef,
  givePageBuffer,
  PAGE_BUFFER,
  queryOf,
  takePageBuffer,
} from './_blob-context.js'
import { withoutSas } from './_blob-url.js'
import { crc64 } from './_crc64.js'
import {
  canonicalGuid,
  checkHttpConditions,
  hasMetadata,
  headerOf,
  httpDate,
  integerHeader,
  leaseCondition,
  leaseIdHeader,
  metadataHeaders,
  quoteEtag,
  requestMetadata,
  requestRange,
  storeConditions,
} from './_headers.js'
import { headerTags } from './_tags.js'
import { badHeader, badQuery, blobError } from './blob-errors.js'

/** How many bytes Get Blob reads from the store at a time. */
const READ_CHUNK = 4 * 1024 * 1024
const MAX_SEQUENCE_NUMBER = 2 ** 53 - 1

/** The disk, or undefined when it does not exist (a missing container still throws). */
export function findDisk(store: DiskStore, ref: DiskRef): DiskInfo | undefined {
  try {
    return store.getDisk(ref)
  } catch (err) {
    if (isCairnError(err) && err.code === 'DiskNotFound') return undefined
    throw err
  }
}

/** True for the destination of Incremental Copy Blob: its copy record names a destination snapshot. */
export function isIncrementalCopy(d: DiskInfo): boolean {
  return d.snapshot === undefined && (d.incrementalCopy === true || d.copy?.destinationSnapshot !== undefined)
}

/** Refuses writes to a blob made by Incremental Copy Blob, as Azure does. */
export function refuseIncrementalCopy(d: DiskInfo, what: string): void {
  if (isIncrementalCopy(d))
    throw blobError(
      'OperationNotAllowedOnIncrementalCopyBlob',
      `Cannot ${what} blob "${d.ref.disk}": it is the destination of incremental copies and changes only through them`,
    )
}

/** Refuses a `snapshot` query parameter on an operation that changes a blob. */
export function refuseSnapshotWrite(ctx: BlobContext): void {
  const snapshot = queryOf(ctx, 'snapshot')
  if (snapshot !== undefined) throw badQuery('snapshot', snapshot, 'snapshots are read-only')
}

/**
 * Checks the HTTP conditions of a write, and answers a lease id sent to a blob without a lease the way
 * Azure does (the store reports it as a mismatch).
 */
export function checkWrite(ctx: BlobContext, d: DiskInfo | undefined): void {
  checkHttpConditions(ctx.req, d, false)
  const leaseId = leaseIdHeader(ctx.req)
  if (d !== undefined && leaseId !== undefined && d.lease.state !== 'leased' && d.lease.state !== 'breaking')
    throw blobError(
      'LeaseNotPresentWithBlobOperation',
      `Cannot change blob "${d.ref.disk}" under lease ${leaseId}: it has no active lease`,
    )
}

/** Headers of a mutation's answer. */
export function writeHeaders(w: WriteResult): Record<string, string | number> {
  return {
    ETag: quoteEtag(w.etag),
    'Last-Modified': httpDate(w.lastModified),
    'x-ms-blob-sequence-number': w.sequenceNumber,
  }
}

/** The properties headers of a blob or snapshot (Get Blob, Get Blob Properties). */
export function blobHeaders(d: DiskInfo): Record<string, string | number | undefined> {
  const h: Record<string, string | number | undefined> = {
    ETag: quoteEtag(d.etag),
    'Last-Modified': httpDate(d.lastModified),
    'x-ms-creation-time': httpDate(d.createdOn),
    'x-ms-blob-type': 'PageBlob',
    'x-ms-blob-sequence-number': d.sequenceNumber,
    'Content-Type': d.content.contentType ?? 'application/octet-stream',
    'Content-Encoding': d.content.contentEncoding,
    'Content-Language': d.content.contentLanguage,
    'Content-Disposition': d.content.contentDisposition,
    'Cache-Control': d.content.cacheControl,
    'Accept-Ranges': 'bytes',
    'x-ms-server-encrypted': 'false',
    ...metadataHeaders(d.metadata),
  }
  if (d.snapshot === undefined) {
    h['x-ms-lease-status'] = d.lease.status
    h['x-ms-lease-state'] = d.lease.state
    if (d.lease.state === 'leased' && d.lease.duration !== undefined)
      h['x-ms-lease-duration'] = d.lease.duration
  }
  if (d.copy !== undefined) {
    h['x-ms-copy-id'] = d.copy.id
    h['x-ms-copy-source'] = withoutSas(d.copy.source)
    h['x-ms-copy-status'] = d.copy.status
    h['x-ms-copy-progress'] = d.copy.progress
    if (d.copy.completedOn !== undefined) h['x-ms-copy-completion-time'] = httpDate(d.copy.completedOn)
    if (d.copy.statusDescription !== undefined) h['x-ms-copy-status-description'] = d.copy.statusDescription
    if (d.copy.destinationSnapshot !== undefined)
      h['x-ms-copy-destination-snapshot'] = d.copy.destinationSnapshot
  }
  if (isIncrementalCopy(d)) h['x-ms-incremental-copy'] = 'true'
  if (d.tags !== undefined) h['x-ms-tag-count'] = Object.keys(d.tags).length
  return h
}

function pageAlignedSize(ctx: BlobContext, name: string, required: boolean): number | undefined {
  const size = integerHeader(ctx.req, name)
  if (size === undefined) {
    if (required)
      throw blobError('MissingRequiredHeader', `Put Blob of a page blob needs ${name}`, { HeaderName: name })
    return undefined
  }
  if (size % PAGE_SIZE !== 0) throw badHeader(name, String(size), 'a page blob size is a multiple of 512')
  if (size > MAX_DISK_SIZE) throw badHeader(name, String(size), 'a page blob holds at most 8 TiB')
  return size
}

const CONTENT_HEADERS: [keyof ContentProperties, string][] = [
  ['contentType', 'x-ms-blob-content-type'],
  ['contentEncoding', 'x-ms-blob-content-encoding'],
  ['contentLanguage', 'x-ms-blob-content-language'],
  ['contentMD5', 'x-ms-blob-content-md5'],
  ['contentDisposition', 'x-ms-blob-content-disposition'],
  ['cacheControl', 'x-ms-blob-cache-control'],
]

function requestContent(ctx: BlobContext): ContentProperties | undefined {
  const out: ContentProperties = {}
  let any = false
  for (const [key, name] of CONTENT_HEADERS) {
    const v = headerOf(ctx.req, name)
    if (v !== undefined) {
      out[key] = v
      any = true
    }
  }
  return any ? out : undefined
}

/** PUT /account/container/blob with x-ms-blob-type: PageBlob */
export async function putBlob(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const type = headerOf(ctx.req, 'x-ms-blob-type')
  if (type === undefined)
    throw blobError('MissingRequiredHeader', 'Put Blob needs x-ms-blob-type', {
      HeaderName: 'x-ms-blob-type',
    })
  if (type !== 'PageBlob') throw badHeader('x-ms-blob-type', type, 'Cairn stores page blobs only')
  const length = headerOf(ctx.req, 'content-length') ?? '0'
  if (length !== '0')
    throw badHeader(
      'Content-Length',
      length,
      'Put Blob of a page blob carries no body; write pages with Put Page',
    )
  const size = pageAlignedSize(ctx, 'x-ms-blob-content-length', true)!
  const sequenceNumber = integerHeader(ctx.req, 'x-ms-blob-sequence-number')
  if (sequenceNumber !== undefined && sequenceNumber > MAX_SEQUENCE_NUMBER)
    throw badHeader('x-ms-blob-sequence-number', String(sequenceNumber), 'too large')
  const ref = diskRef(ctx)
  const existing = findDisk(ctx.store, ref)
  if (existing !== undefined && headerOf(ctx.req, 'if-none-match') === '*')
    throw blobError('BlobAlreadyExists', `Cannot create blob "${ctx.blob}": it exists and If-None-Match is *`)
  checkWrite(ctx, existing)
  if (existing !== undefined) refuseIncrementalCopy(existing, 'overwrite')
  const tags = headerOf(ctx.req, 'x-ms-tags')
  const d = await ctx.store.createDisk(ref, {
    size,
    ...(tags !== undefined ? { tags: headerTags(tags) } : {}),
    metadata: requestMetadata(ctx.req),
    content: requestContent(ctx) ?? {},
    overwrite: true,
    conditions: storeConditions(ctx.req),
    ...(sequenceNumber !== undefined ? { sequenceNumber } : {}),
  })
  return {
    status: 201,
    headers: {
      ETag: quoteEtag(d.etag),
      'Last-Modified': httpDate(d.lastModified),
      'x-ms-request-server-encrypted': 'false',
    },
  }
}

/**
 * The bytes `start` to `end` of a blob as a Get Blob body: one buffer read at once when they fit in one
 * read (the answer then goes out in a single write), else read a chunk at a time as the client takes them.
 */
async function body(
  ctx: BlobContext,
  start: number,
  end: number,
  snapshot: string | undefined,
): Promise<Buffer | AsyncIterable<Buffer>> {
  const ref = diskRef(ctx)
  const options = snapshot === undefined ? {} : { snapshot }
  if (end - start <= READ_CHUNK) return ctx.store.read(ref, start, end - start, options)
  return (async function* () {
    for (let at = start; at < end; at += READ_CHUNK)
      yield await ctx.store.read(ref, at, Math.min(READ_CHUNK, end - at), options)
  })()
}

/** Azure refuses `If-None-Match: *` on a read of a blob that exists: it can never be met. */
function refuseUnsatisfiable(ctx: BlobContext): void {
  const v = headerOf(ctx.req, 'if-none-match')
  if (v?.split(',').some((t) => t.trim() === '*'))
    throw blobError(
      'UnsatisfiableCondition',
      `Cannot read blob "${ctx.blob}" with If-None-Match: *: it exists, so the condition can never hold`,
    )
}

/** Which checksum of the range a Get Blob asks for (`x-ms-range-get-content-md5` or `…-crc64`), if any. */
function rangeChecksum(ctx: BlobContext, ranged: boolean): string | undefined {
  const asked = ['x-ms-range-get-content-md5', 'x-ms-range-get-content-crc64'].filter((name) => {
    const v = headerOf(ctx.req, name)
    if (v !== undefined && v !== 'true' && v !== 'false') throw badHeader(name, v, 'use true or false')
    return v === 'true'
  })
  if (asked.length > 1)
    throw blobError(
      'BothCrc64AndMd5HeaderPresent',
      'Cannot read the range: ask for x-ms-range-get-content-md5 or x-ms-range-get-content-crc64, not both',
    )
  const name = asked[0]
  if (name !== undefined && !ranged)
    throw blobError(
      'MissingRequiredHeader',
      `Cannot compute ${name} without a range: send x-ms-range or Range`,
      {
        HeaderName: 'x-ms-range',
      },
    )
  return name
}

/**
 * A lease id sent with a read must name the blob's active lease (Azure's 412s); reads of snapshots
 * have no lease to check.
 */
export function checkReadLease(ctx: BlobContext, d: DiskInfo): void {
  const id = leaseIdHeader(ctx.req)
  if (id === undefined || d.snapshot !== undefined) return
  if (d.lease.state !== 'leased' && d.lease.state !== 'breaking')
    throw blobError(
      'LeaseNotPresentWithBlobOperation',
      `Cannot read blob "${d.ref.disk}" under lease ${id}: it has no active lease`,
    )
  if (id !== d.lease.id)
    throw blobError(
      'LeaseIdMismatchWithBlobOperation',
      `Cannot read blob "${d.ref.disk}" under lease ${id}: it is leased under another id`,
    )
}

/** GET /account/container/blob[?snapshot=S] */
export async function getBlob(ctx: BlobContext): Promise<Answer> {
  const snapshot = queryOf(ctx, 'snapshot')
  const d = ctx.store.getDisk(diskRef(ctx), snapshot)
  refuseUnsatisfiable(ctx)
  checkReadLease(ctx, d)
  if (checkHttpConditions(ctx.req, d, true) === 304)
    return { status: 304, headers: { ETag: quoteEtag(d.etag) } }
  const headers = blobHeaders(d)
  // The stored MD5 of the whole blob, whatever range is read (Content-MD5 is the range's, when asked).
  headers['x-ms-blob-content-md5'] = d.content.contentMD5
  const range = requestRange(ctx.req)
  const checksum = rangeChecksum(ctx, range !== undefined)
  if (range === undefined) {
    headers['Content-Length'] = d.size
    headers['Content-MD5'] = d.content.contentMD5
    return { status: 200, headers, body: await body(ctx, 0, d.size, snapshot) }
  }
  if (range.start >= d.size)
    throw blobError(
      'InvalidRange',
      `Cannot read ${range.value} of a blob of ${d.size} bytes: the range starts past the end`,
    )
  const end = Math.min(range.end === undefined ? d.size : range.end + 1, d.size)
  headers['Content-Length'] = end - range.start
  headers['Content-Range'] = `bytes ${range.start}-${end - 1}/${d.size}`
  if (checksum !== undefined) {
    if (end - range.start > MAX_WRITE_SIZE)
      throw badHeader(checksum, 'true', 'a checksum is computed for ranges of at most 4 MiB')
    const data = await ctx.store.read(
      diskRef(ctx),
      range.start,
      end - range.start,
      snapshot === undefined ? {} : { snapshot },
    )
    if (checksum === 'x-ms-range-get-content-md5')
      headers['Content-MD5'] = createHash('md5').update(data).digest('base64')
    else headers['x-ms-content-crc64'] = crc64(data).toString('base64')
    return { status: 206, headers, body: data }
  }
  if (end - range.start <= PAGE_BUFFER) {
    // One read into a reused buffer, handed back once the answer has gone to the connection.
    const into = takePageBuffer('read')
    try {
      const data = await ctx.store.read(diskRef(ctx), range.start, end - range.start, {
        ...(snapshot === undefined ? {} : { snapshot }),
        into,
      })
      return { status: 206, headers, body: data, sent: () => givePageBuffer('read', into) }
    } catch (err) {
      givePageBuffer('read', into)
      throw err
    }
  }
  return { status: 206, headers, body: await body(ctx, range.start, end, snapshot) }
}

/** HEAD /account/container/blob[?snapshot=S] */
export function blobProperties(ctx: BlobContext): Answer {
  const d = ctx.store.getDisk(diskRef(ctx), queryOf(ctx, 'snapshot'))
  refuseUnsatisfiable(ctx)
  checkReadLease(ctx, d)
  if (checkHttpConditions(ctx.req, d, true) === 304)
    return { status: 304, headers: { ETag: quoteEtag(d.etag) } }
  return {
    status: 200,
    headers: { ...blobHeaders(d), 'Content-Length': d.size, 'Content-MD5': d.content.contentMD5 },
  }
}

/** PUT /account/container/blob?comp=properties: content properties, resize, sequence number. */
export async function setBlobProperties(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const ref = diskRef(ctx)
  const content = requestContent(ctx)
  const size = pageAlignedSize(ctx, 'x-ms-blob-content-length', false)
  const action = headerOf(ctx.req, 'x-ms-sequence-number-action')
  const value = integerHeader(ctx.req, 'x-ms-blob-sequence-number')
  if (action !== undefined) {
    if (action !== 'max' && action !== 'update' && action !== 'increment')
      throw badHeader('x-ms-sequence-number-action', action, 'use max, update or increment')
    if (action === 'increment' && value !== undefined)
      throw badHeader('x-ms-blob-sequence-number', String(value), 'increment takes no sequence number')
    if (action !== 'increment' && value === undefined)
      throw blobError(
        'MissingRequiredHeader',
        `Sequence number action ${action} needs x-ms-blob-sequence-number`,
        {
          HeaderName: 'x-ms-blob-sequence-number',
        },
      )
    if (value !== undefined && value > MAX_SEQUENCE_NUMBER)
      throw badHeader('x-ms-blob-sequence-number', String(value), 'too large')
  }
  const d = ctx.store.getDisk(ref)
  checkWrite(ctx, d)
  if (size !== undefined || action !== undefined) refuseIncrementalCopy(d, 'resize or renumber')
  const lease = leaseCondition(ctx.req)
  const pending: Promise<WriteResult>[] = []
  // Every step is applied synchronously when called, so the three run as one change to the reader.
  if (content !== undefined) pending.push(ctx.store.setDiskContent(ref, content, lease))
  if (size !== undefined) pending.push(ctx.store.resizeDisk(ref, size, lease))
  if (action !== undefined) pending.push(ctx.store.setSequenceNumber(ref, action, value, lease))
  if (pending.length === 0) pending.push(ctx.store.setDiskContent(ref, d.content, lease))
  const results = await Promise.all(pending)
  return { status: 200, headers: writeHeaders(results[results.length - 1]!) }
}

/** PUT /account/container/blob?comp=metadata */
export async function setBlobMetadata(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const ref = diskRef(ctx)
  checkWrite(ctx, ctx.store.getDisk(ref))
  const w = await ctx.store.setDiskMetadata(ref, requestMetadata(ctx.req), leaseCondition(ctx.req))
  return { status: 200, headers: { ETag: quoteEtag(w.etag), 'Last-Modified': httpDate(w.lastModified) } }
}

/** GET or HEAD /account/container/blob?comp=metadata */
export function blobMetadata(ctx: BlobContext): Answer {
  const d = ctx.store.getDisk(diskRef(ctx), queryOf(ctx, 'snapshot'))
  checkReadLease(ctx, d)
  checkHttpConditions(ctx.req, d, false)
  return {
    status: 200,
    headers: {
      ETag: quoteEtag(d.etag),
      'Last-Modified': httpDate(d.lastModified),
      ...metadataHeaders(d.metadata),
    },
  }
}

function leaseAction(ctx: BlobContext): LeaseAction {
  const action = headerOf(ctx.req, 'x-ms-lease-action')
  const id = leaseIdHeader(ctx.req)
  const proposedRaw = headerOf(ctx.req, 'x-ms-proposed-lease-id')
  const proposed = proposedRaw === undefined ? undefined : canonicalGuid(proposedRaw)
  const need = (name: string, v: string | undefined): string => {
    if (v === undefined)
      throw blobError('MissingRequiredHeader', `Lease action ${action} needs ${name}`, { HeaderName: name })
    return v
  }
  if (proposedRaw !== undefined && proposed === undefined)
    throw badHeader(
      'x-ms-proposed-lease-id',
      proposedRaw,
      'expected a GUID (hyphenated, 32 hex digits, {…} or (…))',
    )
  switch (action) {
    case 'acquire': {
      const duration = integerHeader(ctx.req, 'x-ms-lease-duration', -1)
      if (duration === undefined)
        throw blobError('MissingRequiredHeader', 'Lease action acquire needs x-ms-lease-duration', {
          HeaderName: 'x-ms-lease-duration',
        })
      if (duration !== -1 && (duration < 15 || duration > 60))
        throw badHeader('x-ms-lease-duration', String(duration), 'use -1 (infinite) or 15 to 60 seconds')
      return proposed === undefined ? { action, duration } : { action, duration, proposedId: proposed }
    }
    case 'renew':
    case 'release':
      return { action, id: need('x-ms-lease-id', id) }
    case 'change':
      return { action, id: need('x-ms-lease-id', id), proposedId: need('x-ms-proposed-lease-id', proposed) }
    case 'break': {
      const period = integerHeader(ctx.req, 'x-ms-lease-break-period')
      if (period !== undefined && period > 60)
        throw badHeader('x-ms-lease-break-period', String(period), 'use 0 to 60 seconds')
      return period === undefined ? { action } : { action, breakPeriod: period }
    }
    case undefined:
      throw blobError('MissingRequiredHeader', 'Lease Blob needs x-ms-lease-action', {
        HeaderName: 'x-ms-lease-action',
      })
    default:
      throw badHeader('x-ms-lease-action', action, 'use acquire, renew, change, release or break')
  }
}

/** PUT /account/container/blob?comp=lease */
export async function leaseBlob(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const op = leaseAction(ctx)
  const ref = diskRef(ctx)
  checkHttpConditions(ctx.req, ctx.store.getDisk(ref), false)
  let r: Awaited<ReturnType<DiskStore['lease']>>
  try {
    r = await ctx.store.lease(ref, op)
  } catch (err) {
    if (isCairnError(err) && err.code === 'LeaseIsBreaking' && op.action === 'change')
      throw blobError('LeaseIsBreakingAndCannotBeChanged', err.message)
    if (isCairnError(err) && err.code === 'LeaseIsBroken' && op.action !== 'renew')
      throw blobError('LeaseNotPresentWithLeaseOperation', err.message)
    throw err
  }
  const headers: Record<string, string | number | undefined> = {
    ETag: quoteEtag(r.etag),
    'Last-Modified': httpDate(r.lastModified),
  }
  if (op.action !== 'release' && op.action !== 'break') headers['x-ms-lease-id'] = r.id
  if (op.action === 'break') headers['x-ms-lease-time'] = r.leaseTime ?? 0
  const status = op.action === 'acquire' ? 201 : op.action === 'break' ? 202 : 200
  return { status, headers }
}

/** PUT /account/container/blob?comp=snapshot */
export async function snapshotBlob(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const ref = diskRef(ctx)
  checkWrite(ctx, ctx.store.getDisk(ref))
  const s = await ctx.store.snapshot(ref, {
    conditions: leaseCondition(ctx.req),
    ...(hasMetadata(ctx.req) ? { metadata: requestMetadata(ctx.req) } : {}),
  })
  return {
    status: 201,
    headers: {
      'x-ms-snapshot': s.snapshot,
      ETag: quoteEtag(s.etag),
      'Last-Modified': httpDate(s.lastModified),
    },
  }
}

/** DELETE /account/container/blob[?snapshot=S] */
export async function deleteBlob(ctx: BlobContext): Promise<Answer> {
  const ref = diskRef(ctx)
  const snapshot = queryOf(ctx, 'snapshot')
  const mode = headerOf(ctx.req, 'x-ms-delete-snapshots')
  if (mode !== undefined && mode !== 'include' && mode !== 'only')
    throw badHeader('x-ms-delete-snapshots', mode, 'use include or only')
  if (snapshot !== undefined) {
    if (mode !== undefined)
      throw badHeader('x-ms-delete-snapshots', mode, 'not allowed when deleting one snapshot')
    checkHttpConditions(ctx.req, ctx.store.getDisk(ref, snapshot), false)
    await ctx.store.deleteSnapshot(ref, snapshot)
    return { status: 202 }
  }
  checkWrite(ctx, ctx.store.getDisk(ref))
  await ctx.store.deleteDisk(ref, {
    conditions: leaseCondition(ctx.req),
    ...(mode !== undefined ? { snapshots: mode } : {}),
  })
  return { status: 202, headers: { 'x-ms-delete-type-permanent': 'true' } }
}
