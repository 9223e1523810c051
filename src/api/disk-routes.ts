import type { IncomingMessage } from 'node:http'
import { createRoute, z } from '@hono/zod-openapi'
import { MAX_WRITE_SIZE, readExtentStream } from '../diskstore/index.js'
import type { DiskService } from '../protection/index.js'
import { CairnError, parseSize } from '../util/index.js'
import { clean } from './_clean.js'
import {
  body,
  ContainerParams,
  Count,
  CreateDiskRequest,
  D,
  DISK,
  Disk,
  DiskList,
  DiskParams,
  deleteGuard,
  diskJson,
  ExportRequest,
  ExportResult,
  Force,
  ImportRequest,
  json,
  Metadata,
  PageRanges,
  ResizeDiskRequest,
  ref,
  Space,
  toInclusive,
  Usage,
  WriteResult,
} from './_disk-schemas.js'
import { followJob } from './_follow-job.js'
import { markerPage } from './_page.js'
import { readBodyUpTo } from './_request-guards.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses, PageQuery } from './schemas.js'

/** Registers the routes of disks, their pages, server-side import and export, and disk-store upkeep. */
export function registerDiskRoutes(app: ApiApp, ctx: ApiContext): void {
  const store = () => ctx.diskStore
  const guard = () => deleteGuard(ctx)
  /** Imports and exports of host files go through the disk service. */
  const disks = (): DiskService => {
    if (!ctx.diskService)
      throw new CairnError('ServiceUnavailable', 'This service imports and exports no host files')
    return ctx.diskService
  }
  const tags = ['Disks']

  // ------------------------------------------------------------ disks
  app.openapi(
    createRoute({
      method: 'get',
      path: D,
      tags,
      summary:
        'List the disks of a container by name; with includeSnapshots, each disk follows its snapshots (a page holds whole disks)',
      request: {
        params: ContainerParams,
        query: PageQuery.extend({
          prefix: z.string().optional(),
          includeSnapshots: z.enum(['true', 'false']).optional(),
        }),
      },
      responses: { 200: json(DiskList, 'Disks'), ...errorResponses },
    }),
    (c) => {
      const p = c.req.valid('param')
      const { prefix, includeSnapshots, ...q } = c.req.valid('query')
      const page = markerPage(q, 'disks', (marker, maxResults) =>
        store().listDisks(p.account, p.container, {
          ...clean({ prefix, marker }),
          maxResults,
          includeSnapshots: includeSnapshots === 'true',
        }),
      )
      return c.json({ ...page, items: page.items.map(diskJson) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: DISK,
      tags,
      summary: 'Create a disk (a page blob) of a given size; thin: unwritten pages cost nothing',
      request: {
        params: DiskParams,
        ...body(CreateDiskRequest),
      },
      responses: { 201: json(Disk, 'The new disk'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await store().createDisk(ref(c.req.valid('param')), {
        size: parseSize(b.size),
        ...clean({ sequenceNumber: b.sequenceNumber, metadata: b.metadata, overwrite: b.overwrite }),
      })
      return c.json(diskJson(info), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: DISK,
      tags,
      summary: 'Show a disk, or one of its snapshots with ?snapshot=',
      request: { params: DiskParams, query: z.object({ snapshot: z.string().optional() }) },
      responses: { 200: json(Disk, 'The disk'), ...errorResponses },
    }),
    (c) => c.json(diskJson(store().getDisk(ref(c.req.valid('param')), c.req.valid('query').snapshot)), 200),
  )
  app.openapi(
    createRoute({
      method: 'patch',
      path: DISK,
      tags,
      summary: 'Replace the metadata of a disk',
      request: {
        params: DiskParams,
        ...body(z.object({ metadata: Metadata, leaseId: z.string().optional() })),
      },
      responses: { 200: json(WriteResult, 'The change'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const cond = b.leaseId ? { leaseId: b.leaseId } : undefined
      return c.json(await store().setDiskMetadata(ref(c.req.valid('param')), b.metadata, cond), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: DISK,
      tags,
      summary:
        'Delete a disk; one with snapshots needs snapshots=include (all) or only (just the snapshots). Refused with DiskInUse (SnapshotInUse) while a protected VM backs it up or a recovery point holds its snapshots, unless force=true',
      request: {
        params: DiskParams,
        query: Force.extend({
          snapshots: z.enum(['include', 'only']).optional(),
          leaseId: z.string().optional(),
        }),
      },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query')
      await guard().deleteDisk(
        ref(c.req.valid('param')),
        clean({
          snapshots: q.snapshots,
          conditions: q.leaseId ? { leaseId: q.leaseId } : undefined,
          force: q.force === 'true',
        }),
      )
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/resize`,
      tags,
      summary: 'Grow or shrink a disk (shrinking drops the pages past the new end)',
      request: { params: DiskParams, ...body(ResizeDiskRequest) },
      responses: { 200: json(WriteResult, 'The change'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const cond = b.leaseId ? { leaseId: b.leaseId } : undefined
      return c.json(await store().resizeDisk(ref(c.req.valid('param')), parseSize(b.size), cond), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/space`,
      tags,
      summary: 'Used bytes of a disk or snapshot and the bytes only it holds',
      request: { params: DiskParams, query: z.object({ snapshot: z.string().optional() }) },
      responses: { 200: json(Space, 'Space report'), ...errorResponses },
    }),
    (c) => c.json(store().space(ref(c.req.valid('param')), c.req.valid('query').snapshot), 200),
  )

  // ------------------------------------------------------------ pages
  const PagesQuery = z.object({
    offset: Count,
    leaseId: z.string().optional(),
    // false: answered once the write is in the store, durable with the next durable write (an import
    // sends its pieces so and its last one durable: one sync instead of one per piece).
    durable: z.enum(['true', 'false']).optional(),
  })
  app.openapi(
    createRoute({
      method: 'put',
      path: `${DISK}/pages`,
      tags,
      summary: 'Write pages: the raw body (a multiple of 512 bytes, at most 4 MiB) at ?offset=',
      request: {
        params: DiskParams,
        query: PagesQuery,
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
      },
      responses: {
        200: json(
          WriteResult,
          'The write is durable (with durable=false: applied, durable after the next durable write)',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const length = Number(c.req.header('content-length') ?? 0)
      if (length > MAX_WRITE_SIZE) {
        throw new CairnError(
          'WriteTooLarge',
          `Cannot write ${length} bytes at once: a single write is limited to 4 MiB`,
        )
      }
      const data = await readBodyUpTo(c, MAX_WRITE_SIZE)
      const cond = q.leaseId ? { leaseId: q.leaseId } : undefined
      return c.json(
        await store().writePages(
          ref(c.req.valid('param')),
          q.offset,
          data,
          clean({ conditions: cond, durable: q.durable === 'false' ? false : undefined }),
        ),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${DISK}/pages`,
      tags,
      summary: 'Clear pages back to holes',
      request: { params: DiskParams, query: PagesQuery.extend({ length: Count }) },
      responses: { 200: json(WriteResult, 'The clear is durable'), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const cond = q.leaseId ? { leaseId: q.leaseId } : undefined
      return c.json(
        await store().clearPages(ref(c.req.valid('param')), q.offset, q.length, clean({ conditions: cond })),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/pages`,
      tags,
      summary: 'Read bytes of a disk or snapshot (holes read as zeros), as application/octet-stream',
      request: {
        params: DiskParams,
        query: z.object({ offset: Count, length: Count, snapshot: z.string().optional() }),
      },
      responses: {
        200: {
          description: 'The bytes',
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const bytes = await store().read(
        ref(c.req.valid('param')),
        q.offset,
        q.length,
        clean({ snapshot: q.snapshot }),
      )
      return c.body(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length), 200, {
        'content-type': 'application/octet-stream',
      })
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/ranges`,
      tags,
      summary: 'Written page ranges of a disk or snapshot, merged',
      request: {
        params: DiskParams,
        query: z.object({
          snapshot: z.string().optional(),
          offset: Count.optional(),
          length: Count.optional(),
        }),
      },
      responses: { 200: json(PageRanges, 'Written ranges'), ...errorResponses },
    }),
    (c) => {
      const ranges = store().pageRanges(ref(c.req.valid('param')), clean(c.req.valid('query')))
      return c.json({ pageRanges: toInclusive(ranges) }, 200)
    },
  )

  // ------------------------------------------------------------ server-side files and upkeep
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/import`,
      tags,
      summary:
        "Import a raw image file under an --import-root on the service's machine into a new disk (zero blocks stay holes)",
      request: { params: DiskParams, ...body(ImportRequest) },
      responses: { 201: json(Disk, 'The new disk'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await disks().importFile(ref(c.req.valid('param')), b.path, followJob(c), b.expect)
      return c.json(diskJson(info), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/import-stream`,
      tags,
      summary:
        'Create a disk of ?size= bytes from an image streamed in the body as its data extents (docs/api.md, "Streamed import"); a stream cut short leaves no disk',
      request: {
        params: DiskParams,
        query: z.object({ size: Count }),
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
      },
      responses: { 201: json(Disk, 'The new disk'), ...errorResponses },
    }),
    async (c) => {
      const size = c.req.valid('query').size
      // The Node request itself when the body is still unread (no web-stream copy of each chunk).
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
      const body: AsyncIterable<Uint8Array> | null =
        incoming !== undefined && !incoming.readableDidRead ? incoming : c.req.raw.body
      const extents = readExtentStream(body ?? emptyBody(), size)
      const target = ref(c.req.valid('param'))
      const info = ctx.diskService
        ? await ctx.diskService.importImage(target, { size, extents }, followJob(c))
        : await store().importImage(target, { size, extents }, { signal: c.req.raw.signal })
      return c.json(diskJson(info), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/export`,
      tags,
      summary:
        "Export a disk or snapshot to a sparse raw file under an --export-root on the service's machine (an existing file is replaced only with overwrite)",
      request: {
        params: DiskParams,
        ...body(ExportRequest),
      },
      responses: {
        200: json(ExportResult, 'Exported'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { path, ...rest } = c.req.valid('json')
      return c.json(
        await disks().exportFile(ref(c.req.valid('param')), { path, ...clean(rest) }, followJob(c)),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/diskstore/usage',
      tags,
      summary: 'Bytes in data segments and bytes still visible to some disk or snapshot',
      responses: { 200: json(Usage, 'Usage'), ...errorResponses },
    }),
    (c) => c.json(store().usage(), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/diskstore/compact',
      tags,
      summary: 'Reclaim segment space that no disk or snapshot can see',
      responses: { 200: json(z.object({ reclaimedBytes: z.number() }), 'Reclaimed'), ...errorResponses },
    }),
    async (c) => c.json(await store().compact({ signal: c.req.raw.signal }), 200),
  )
}

/** A body that holds no bytes (a request sent without one). */
async function* emptyBody(): AsyncGenerator<Uint8Array> {}
