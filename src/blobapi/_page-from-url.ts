import { MAX_WRITE_SIZE, PAGE_SIZE } from '../diskstore/index.js'
import type { Answer, BlobContext } from './_blob-context.js'
import { diskRef } from './_blob-context.js'
import { checkWrite, refuseIncrementalCopy, refuseSnapshotWrite, writeHeaders } from './_blob-operations.js'
import { checkCrc64, checkMd5 } from './_checksums.js'
import { resolveCopySource } from './_copy-operations.js'
import { headerOf, requestPageRange, storeConditions } from './_headers.js'
import { badHeader, blobError } from './blob-errors.js'

/** The `x-ms-source-range` of the request: `bytes=start-end`, inclusive. */
function sourceRange(ctx: BlobContext): { start: number; length: number } {
  const value = headerOf(ctx.req, 'x-ms-source-range')
  if (value === undefined)
    throw blobError('MissingRequiredHeader', 'Put Page From URL needs x-ms-source-range', {
      HeaderName: 'x-ms-source-range',
    })
  const m = /^bytes=(\d+)-(\d+)$/.exec(value.trim())
  if (m === null) throw badHeader('x-ms-source-range', value, 'expected bytes=start-end')
  const start = Number(m[1])
  const end = Number(m[2])
  if (end < start) throw badHeader('x-ms-source-range', value, 'the end is before the start')
  return { start, length: end + 1 - start }
}

/** PUT /account/container/blob?comp=page with x-ms-page-write: update and x-ms-copy-source. */
export async function putPageFromUrl(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  const write = headerOf(ctx.req, 'x-ms-page-write')
  if (write !== 'update')
    throw badHeader('x-ms-page-write', write ?? '', 'Put Page From URL writes pages: use update')
  const declared = headerOf(ctx.req, 'content-length') ?? '0'
  if (declared !== '0') throw badHeader('Content-Length', declared, 'Put Page From URL carries no body')
  const { offset, length } = requestPageRange(ctx.req)
  const from = sourceRange(ctx)
  if (from.length !== length)
    throw badHeader(
      'x-ms-source-range',
      headerOf(ctx.req, 'x-ms-source-range')!,
      `it holds ${from.length} bytes and x-ms-range holds ${length}`,
    )
  if (length > MAX_WRITE_SIZE)
    throw badHeader(
      'x-ms-range',
      headerOf(ctx.req, 'x-ms-range') ?? '',
      'at most 4 MiB per Put Page From URL',
    )
  if (from.start % PAGE_SIZE !== 0)
    throw badHeader(
      'x-ms-source-range',
      headerOf(ctx.req, 'x-ms-source-range')!,
      'starts on a 512-byte boundary',
    )
  const source = resolveCopySource(ctx, headerOf(ctx.req, 'x-ms-copy-source')!)
  if (from.start + from.length > source.info.size)
    throw blobError(
      'InvalidRange',
      `Cannot copy bytes ${from.start}-${from.start + from.length - 1} of "${source.shownUrl}": it is ${source.info.size} bytes long`,
    )
  const data = await ctx.store.read(
    source.ref,
    from.start,
    from.length,
    source.snapshot === undefined ? {} : { snapshot: source.snapshot },
  )
  const headers: Record<string, string> = {}
  const md5 = headerOf(ctx.req, 'x-ms-source-content-md5')
  if (md5 !== undefined) headers['Content-MD5'] = checkMd5(data, md5, "the source range's")
  const crc = headerOf(ctx.req, 'x-ms-source-content-crc64')
  headers['x-ms-content-crc64'] = checkCrc64(data, crc, "the source range's")
  // From here on everything up to the store call runs in one tick: check, then act.
  const ref = diskRef(ctx)
  const d = ctx.store.getDisk(ref)
  checkWrite(ctx, d)
  refuseIncrementalCopy(d, 'write pages of')
  if (offset + length > d.size)
    throw blobError(
      'InvalidPageRange',
      `Cannot write pages ${offset}-${offset + length - 1} of blob "${ctx.blob}": it is ${d.size} bytes long`,
    )
  const w = await ctx.store.writePages(ref, offset, data, { conditions: storeConditions(ctx.req) })
  return {
    status: 201,
    headers: { ...writeHeaders(w), ...headers, 'x-ms-request-server-encrypted': 'false' },
  }
}
