import type { IncomingMessage } from 'node:http'
import { type ByteRange, type DiskRef, MAX_WRITE_SIZE, PAGE_SIZE } from '../diskstore/index.js'
import { ALIGN, isCairnError } from '../util/index.js'
import {
  type Answer,
  type BlobContext,
  diskRef,
  givePageBuffer,
  queryOf,
  readBody,
  takePageBuffer,
} from './_blob-context.js'
import {
  checkReadLease,
  checkWrite,
  refuseIncrementalCopy,
  refuseSnapshotWrite,
  writeHeaders,
} from './_blob-operations.js'
import { NotABlobUrl, parseBlobUrl } from './_blob-url.js'
import { checkCrc64, checkMd5 } from './_checksums.js'
import { type Crc64Sum, crc64Sum } from './_crc64.js'
import { crc64Of } from './_crc64-offload.js'
import {
  checkHttpConditions,
  headerOf,
  httpDate,
  quoteEtag,
  requestPageRange,
  requestRange,
  storeConditions,
} from './_headers.js'
import { el, xmlDocument } from './_xml.js'
import { badHeader, badQuery, blobError } from './blob-errors.js'

/** Bodies this long or longer (whole 4 KiB blocks) are received into a reused aligned buffer. */
const ALIGNED_BODY = 64 * 1024

/**
 * Whether a request is a Put Page update whose body goes into a page buffer, which the server then reads
 * off the socket straight into that buffer (_direct-body.ts). Checked on the headers alone; the request
 * is still checked in full by putPage.
 */
export function wantsDirectBody(req: IncomingMessage): boolean {
  if (req.method !== 'PUT' || req.headers['x-ms-page-write'] !== 'update') return false
  if (req.headers['transfer-encoding'] !== undefined || req.headers.expect !== undefined) return false
  const declared = req.headers['content-length']
  if (declared === undefined || !/^\d+$/.test(declared)) return false
  const length = Number(declared)
  if (length < ALIGNED_BODY || length > MAX_WRITE_SIZE || length % ALIGN !== 0) return false
  return /[?&]comp=page(&|$)/.test(req.url ?? '')
}

/** Store codes that mean a previous snapshot URL names nothing that exists. */
const NOT_FOUND = ['AccountNotFound', 'ContainerNotFound', 'DiskNotFound', 'SnapshotNotFound']

const refText = (r: DiskRef) => `${r.account}/${r.container}/${r.disk}`

/** The most ranges one Get Page Ranges answer holds when the client asks for a page of them. */
const MAX_RANGES = 10_000

/** PUT /account/container/blob?comp=page with x-ms-page-write: update or clear */
export async function putPage(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const write = headerOf(ctx.req, 'x-ms-page-write')
  if (write === undefined)
    throw blobError('MissingRequiredHeader', 'Put Page needs x-ms-page-write', {
      HeaderName: 'x-ms-page-write',
    })
  if (write !== 'update' && write !== 'clear')
    throw badHeader('x-ms-page-write', write, 'use update or clear')
  const { offset, length } = requestPageRange(ctx.req)
  // Azure wants the length up front: a chunked body is refused before a byte of it is read.
  if (write === 'update' && headerOf(ctx.req, 'content-length') === undefined)
    throw blobError('MissingContentLengthHeader', 'Put Page needs a Content-Length (no chunked bodies)', {
      HeaderName: 'Content-Length',
    })
  if (headerOf(ctx.req, 'content-md5') !== undefined && headerOf(ctx.req, 'x-ms-content-crc64') !== undefined)
    throw blobError(
      'BothCrc64AndMd5HeaderPresent',
      'Cannot write pages: send Content-MD5 or x-ms-content-crc64, not both',
    )
  const declared = headerOf(ctx.req, 'content-length') ?? '0'
  let body: Buffer | undefined
  if (write === 'update' && length >= ALIGNED_BODY && length % ALIGN === 0 && length <= MAX_WRITE_SIZE) {
    body = takePageBuffer('write')
  }
  try {
    const answer = await writePageRange(ctx, write, offset, length, declared, body)
    // The store holds the body until its write is done, which a successful answer implies; after a
    // failure it may still be on its way, so the buffer is left to the collector.
    if (body !== undefined) givePageBuffer('write', body)
    return answer
  } catch (err) {
    // Refused before the store saw it: the buffer is free.
    if (body !== undefined && !(err instanceof StoreWriteFailed)) givePageBuffer('write', body)
    throw err instanceof StoreWriteFailed ? err.cause : err
  }
}

/** A failure of the store call itself (the body may still be in use). */
class StoreWriteFailed extends Error {}

async function writePageRange(
  ctx: BlobContext,
  write: 'update' | 'clear',
  offset: number,
  length: number,
  declared: string,
  body: Buffer | undefined,
): Promise<Answer> {
  const ref = diskRef(ctx)
  const headers: Record<string, string | number> = {}
  let data: Buffer | undefined
  let summed: Crc64Sum | undefined
  if (write === 'update') {
    if (length > MAX_WRITE_SIZE)
      throw blobError(
        'RequestBodyTooLarge',
        `Cannot write ${length} bytes in one Put Page: the limit is 4 MiB`,
      )
    if (Number(declared) !== length)
      throw badHeader('Content-Length', declared, `the range holds ${length} bytes`)
    const md5 = headerOf(ctx.req, 'content-md5')
    // Without an MD5 the answer carries the body's CRC64: summed chunk by chunk as they arrive when the
    // native CRC64 is built, else afterwards (below).
    summed = md5 === undefined ? crc64Sum() : undefined
    data = await readBody(ctx.req, MAX_WRITE_SIZE, { into: body, sum: summed })
    if (data.length !== length)
      throw badHeader('Content-Length', String(data.length), `the range holds ${length} bytes`)
    if (md5 !== undefined) headers['Content-MD5'] = checkMd5(data, md5, "the body's")
    const crc = headerOf(ctx.req, 'x-ms-content-crc64')
    if (crc !== undefined)
      headers['x-ms-content-crc64'] = checkCrc64(data, crc, "the body's", summed?.digest())
  } else if (declared !== '0') {
    throw badHeader('Content-Length', declared, 'a clear carries no body')
  }
  // From here on everything up to the store call runs in one tick: check, then act.
  const d = ctx.store.getDisk(ref)
  checkWrite(ctx, d)
  refuseIncrementalCopy(d, 'write pages of')
  if (offset + length > d.size)
    throw blobError(
      'InvalidPageRange',
      `Cannot ${write} pages ${offset}-${offset + length - 1} of blob "${ctx.blob}": it is ${d.size} bytes long`,
    )
  const options = { conditions: storeConditions(ctx.req) }
  const call =
    data === undefined
      ? ctx.store.clearPages(ref, offset, length, options)
      : ctx.store.writePages(ref, offset, data, options)
  // Azure answers every Put Page of data with the body's CRC64 unless the client sent an MD5. When
  // the client sent none and it was not summed on arrival, it is computed while the store's write and
  // fsync are under way (off the event loop for large bodies, _crc64-offload.ts).
  const sum =
    data !== undefined && headers['Content-MD5'] === undefined && headers['x-ms-content-crc64'] === undefined
      ? summed !== undefined
        ? summed.digest().toString('base64')
        : crc64Of(data)
      : undefined
  const w = await call.catch((err: unknown) => {
    throw new StoreWriteFailed('store write failed', { cause: err })
  })
  if (sum !== undefined) headers['x-ms-content-crc64'] = await sum
  return {
    status: 201,
    headers: { ...writeHeaders(w), ...headers, 'x-ms-request-server-encrypted': 'false' },
  }
}

interface ListedRange {
  kind: 'PageRange' | 'ClearRange'
  start: number
  end: number
}

function clip(ranges: ByteRange[], kind: ListedRange['kind'], from: number, to: number): ListedRange[] {
  const out: ListedRange[] = []
  for (const r of ranges) {
    const start = Math.max(r.start, from)
    const end = Math.min(r.end, to)
    if (start < end) out.push({ kind, start, end })
  }
  return out
}

/** The base of a diff: a snapshot of the target blob, or of another blob of its lineage. */
interface DiffBase {
  snapshot: string
  /** Set when the base is a snapshot of another blob (x-ms-previous-snapshot-url). */
  disk?: DiskRef
}

/**
 * The base a Get Page Ranges request diffs from: `prevsnapshot`, or a snapshot URL in
 * `x-ms-previous-snapshot-url` (what the SDKs' managed-disk diffs send; also read from the query as
 * `prevsnapshoturl`). A URL naming a blob of this service resolves to it; any other is refused.
 */
function diffBase(ctx: BlobContext): DiffBase | undefined {
  const prev = queryOf(ctx, 'prevsnapshot')
  const header = headerOf(ctx.req, 'x-ms-previous-snapshot-url')
  const query = queryOf(ctx, 'prevsnapshoturl')
  if (header !== undefined && query !== undefined && header !== query)
    throw badHeader('x-ms-previous-snapshot-url', header, 'the prevsnapshoturl query parameter names another')
  const url = header ?? query
  if (url === undefined) return prev === undefined ? undefined : { snapshot: prev }
  const name = header !== undefined ? 'x-ms-previous-snapshot-url' : 'prevsnapshoturl'
  const refuse = (why: string) =>
    header !== undefined ? badHeader(name, url, why) : badQuery(name, url, why)
  if (prev !== undefined) throw refuse('give prevsnapshot or a previous snapshot URL, not both')
  let base: { ref: DiskRef; snapshot?: string }
  try {
    base = parseBlobUrl(ctx.store, url)
  } catch (err) {
    if (err instanceof NotABlobUrl) throw refuse(`not a snapshot URL of this service: ${err.message}`)
    throw err
  }
  if (base.snapshot === undefined) throw refuse('the URL names no snapshot (?snapshot=)')
  const self = diskRef(ctx)
  const same =
    base.ref.account === self.account && base.ref.container === self.container && base.ref.disk === self.disk
  return same ? { snapshot: base.snapshot } : { snapshot: base.snapshot, disk: base.ref }
}

/** GET /account/container/blob?comp=pagelist[&snapshot=S][&prevsnapshot=P][&marker=M][&maxresults=N] */
export function getPageRanges(ctx: BlobContext): Answer {
  const ref = diskRef(ctx)
  const snapshot = queryOf(ctx, 'snapshot')
  const base = diffBase(ctx)
  const d = ctx.store.getDisk(ref, snapshot)
  checkReadLease(ctx, d)
  if (checkHttpConditions(ctx.req, d, true) === 304)
    return { status: 304, headers: { ETag: quoteEtag(d.etag) } }

  // Any byte range is accepted; the answer is clipped to it (the store is asked for whole pages).
  let from = 0
  let to = d.size
  const range = requestRange(ctx.req)
  if (range !== undefined) {
    if (range.start >= d.size && d.size > 0)
      throw blobError('InvalidRange', `Cannot list pages of ${range.value}: the blob is ${d.size} bytes long`)
    from = range.start
    to = Math.min(range.end === undefined ? d.size : range.end + 1, d.size)
  }

  const markerRaw = queryOf(ctx, 'marker')
  let after = 0
  if (markerRaw !== undefined) {
    if (!/^\d+$/.test(markerRaw)) throw badQuery('marker', markerRaw, 'not a marker this service gave out')
    after = Number(markerRaw)
  }
  const maxRaw = queryOf(ctx, 'maxresults')
  let max = Number.POSITIVE_INFINITY
  if (maxRaw !== undefined) {
    if (!/^\d+$/.test(maxRaw) || Number(maxRaw) < 1)
      throw badQuery('maxresults', maxRaw, 'expected a whole number of at least 1')
    max = Math.min(Number(maxRaw), MAX_RANGES)
  }

  let listed: ListedRange[]
  const pageFrom = Math.floor(from / PAGE_SIZE) * PAGE_SIZE
  const pageTo = Math.ceil(to / PAGE_SIZE) * PAGE_SIZE
  const window = to > from ? { offset: pageFrom, length: pageTo - pageFrom } : { offset: 0, length: 0 }
  if (base !== undefined) {
    const where = base.disk === undefined ? `blob "${ctx.blob}"` : `blob "${refText(base.disk)}"`
    // Snapshot ids order the history of one blob; across blobs of a lineage they do not (an
    // incremental copy's snapshot of old content is newer than the source's later snapshots).
    if (base.disk === undefined && snapshot !== undefined && base.snapshot > snapshot)
      throw blobError(
        'PreviousSnapshotCannotBeNewer',
        `Cannot diff blob "${ctx.blob}" from snapshot ${base.snapshot} of ${where} to the older snapshot ${snapshot}`,
      )
    try {
      ctx.store.getDisk(base.disk ?? ref, base.snapshot)
    } catch (err) {
      if (isCairnError(err) && NOT_FOUND.includes(err.code))
        throw blobError(
          'PreviousSnapshotNotFound',
          `Cannot diff blob "${ctx.blob}": snapshot ${base.snapshot} of ${where} does not exist`,
        )
      throw err
    }
    // A base of another lineage is refused by the store (LineageMismatch, answered as Azure's 409).
    const diff = ctx.store.diff(ref, {
      from: base.snapshot,
      ...(base.disk !== undefined ? { fromDisk: base.disk } : {}),
      ...(snapshot !== undefined ? { to: snapshot } : {}),
      ...window,
    })
    listed = [
      ...clip(diff.pageRanges, 'PageRange', from, to),
      ...clip(diff.clearRanges, 'ClearRange', from, to),
    ]
  } else {
    const pages = ctx.store.pageRanges(ref, { ...(snapshot !== undefined ? { snapshot } : {}), ...window })
    listed = clip(pages, 'PageRange', from, to)
  }
  listed.sort((a, b) => a.start - b.start)
  if (after > 0) listed = listed.filter((r) => r.start >= after)
  let nextMarker: string | undefined
  if (listed.length > max) {
    nextMarker = String(listed[max]!.start)
    listed = listed.slice(0, max)
  }
  const body = xmlDocument(
    el('PageList', [
      ...listed.map((r) => el(r.kind, [el('Start', r.start), el('End', r.end - 1)])),
      ...(maxRaw !== undefined || markerRaw !== undefined ? [el('NextMarker', nextMarker)] : []),
    ]),
  )
  return {
    status: 200,
    headers: {
      ETag: quoteEtag(d.etag),
      'Last-Modified': httpDate(d.lastModified),
      'x-ms-blob-content-length': d.size,
    },
    body,
  }
}
