import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import { createRoute, z } from '@hono/zod-openapi'
import type { FileBrowser, FileLocation } from '../protection/index.js'
import { CairnError, requestActor } from '../util/index.js'
import {
  ArchiveFormat,
  ArchiveJobRequest,
  ArchivePaths,
  FileEntry,
  FileEntryList,
  FileHistory,
  FileQuery,
  PointVolumeList,
} from './_file-browse-schemas.js'
import { Job } from './_job-schemas.js'
import { decodeCursor, encodeCursor, pageLimit, paginate } from './_page.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses as errors, json, PageQuery } from './schemas.js'

// Browsing the file systems of a VM's recovery points inside the service (docs/filerecovery.md,
// "Browse"): no root, no mount. Each route parses, calls one FileBrowser method and maps its answer.

const ItemParam = z.object({ vault: z.string().min(1), vm: z.string().min(1) })
const PointParam = ItemParam.extend({ rp: z.string().min(1) })
const P = '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}'
const binary = (description: string) => ({
  content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
  description,
})

/** The location a query names. */
function location(
  vault: string,
  q: { disk?: string | undefined; partition?: string | number | undefined },
): FileLocation {
  const out: FileLocation = { vault }
  if (q.disk !== undefined) out.disk = q.disk
  if (q.partition !== undefined) out.partition = q.partition === 'disk' ? null : Number(q.partition)
  return out
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` of a file of `size` bytes; undefined without a Range header. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === ''))
    throw new CairnError(
      'InvalidRequest',
      `Cannot read the range "${header}": give one range, bytes=START-END`,
    )
  if (m[1] === '') {
    const n = Math.min(Number(m[2]), size)
    return { start: size - n, end: size }
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size : Math.min(Number(m[2]) + 1, size)
  if (start >= size || end <= start)
    throw new CairnError(
      'RangeNotSatisfiable',
      `Cannot read bytes ${header.slice(6)}: the file holds ${size}`,
    )
  return { start, end }
}

const CLOSE_BRACE = Buffer.from('}')

/** A name safe for Content-Disposition. */
const attachment = (name: string) =>
  `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`

/** Registers the browse routes over a FileBrowser. */
/**
 * What a route that wrote its answer itself returns to @hono/node-server (its RESPONSE_ALREADY_SENT,
 * with the status sent, which the audit and the metrics read). Made as this module loads, like that
 * one: before the adaptor replaces the global Response with its own.
 */
const ALREADY_SENT = Object.fromEntries(
  [200, 206].map((status) => [
    status,
    new Response(null, { status, headers: RESPONSE_ALREADY_SENT.headers }),
  ]),
) as Record<200 | 206, Response>

export function registerFileBrowseRoutes(app: ApiApp, files: FileBrowser): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: `${P}/volumes`,
      summary:
        'The volumes of every disk of a recovery point: partitions, file systems, whether they can be browsed',
      request: { params: PointParam, query: PageQuery },
      responses: { 200: json(PointVolumeList, 'Volumes'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const vols = (await files.volumes(p.vm, p.rp, { vault: p.vault })).map((v, i) => ({
        v,
        k: String(i).padStart(6, '0'),
      }))
      const page = paginate(vols, (x) => [x.k], c.req.valid('query'), 'volumes')
      return c.json({ ...page, items: page.items.map((x) => x.v) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${P}/files`,
      summary: 'List a directory of a recovery point, sorted by name (paged)',
      request: { params: PointParam, query: FileQuery.extend(PageQuery.shape) },
      responses: { 200: json(FileEntryList, 'Entries'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      const start = q.cursor === undefined ? 0 : Number(decodeCursor(q.cursor, 'the directory')[0])
      if (!Number.isSafeInteger(start) || start < 0)
        throw new CairnError(
          'InvalidRequest',
          'Cannot list the directory: the cursor is not one this service gave',
        )
      const page = await files.listPage(p.vm, p.rp, q.path, {
        ...location(p.vault, q),
        start,
        limit: pageLimit(q),
      })
      // The entries come encoded (a warm folder is sliced, not serialized again): a FileEntryList.
      const head = JSON.stringify({
        total: page.total,
        disk: page.disk,
        partition: page.partition,
        ...(page.next !== undefined ? { nextCursor: encodeCursor([String(page.next)]) } : {}),
      })
      const json = Buffer.concat([Buffer.from(`${head.slice(0, -1)},"items":`), page.json, CLOSE_BRACE])
      // Typed as FileEntryList by the route; the bytes are one, built above.
      return c.body(json, 200, { 'content-type': 'application/json' }) as never
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${P}/file`,
      summary: 'Stat one path of a recovery point (a symlink is not followed)',
      request: { params: PointParam, query: FileQuery },
      responses: { 200: json(FileEntry, 'The entry'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      return c.json(await files.stat(p.vm, p.rp, q.path, location(p.vault, q)), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${P}/file/content`,
      summary: 'Read a file of a recovery point; HTTP Range (one range) answers 206 with that part',
      request: { params: PointParam, query: FileQuery },
      responses: { 200: binary('The file'), 206: binary('The range asked'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      const where = location(p.vault, q)
      const entry = await files.stat(p.vm, p.rp, q.path, where)
      const range = parseRange(c.req.header('range'), entry.size)
      const r = await files.read(p.vm, p.rp, q.path, { ...where, ...(range ?? {}) })
      const headers: Record<string, string> = {
        'content-type': 'application/octet-stream',
        'content-length': String(r.end - r.start),
        'accept-ranges': 'bytes',
        'last-modified': new Date(r.entry.mtime).toUTCString(),
        'content-disposition': attachment(r.entry.name),
      }
      if (range) headers['content-range'] = `bytes ${r.start}-${r.end - 1}/${r.entry.size}`
      const status = range ? 206 : 200
      // Served by Node's own answer where there is one (not HEAD, which Hono answers itself): the
      // bytes go to the socket from a few reused buffers, with no web stream between.
      const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
      if (outgoing === undefined || c.req.method !== 'GET')
        return c.body(Readable.toWeb(r.body) as ReadableStream, status, headers)
      const res = c.body(null, status, headers)
      outgoing.writeHead(status, Object.fromEntries(res.headers))
      // A failed read cuts the answer (its headers are gone): the client sees a short body.
      r.send(outgoing).catch(() => {})
      return ALREADY_SENT[status]
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${P}/archive`,
      summary:
        'Download folders and files of a recovery point (`path` once, or repeated) as a streaming tar or zip (modes, mtimes, symlinks; hard links in tar)',
      request: {
        params: PointParam,
        query: FileQuery.extend({ path: ArchivePaths.default('/'), format: ArchiveFormat.default('tar') }),
      },
      responses: { 200: binary('The archive'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      const a = await files.archive(p.vm, p.rp, q.path, { ...location(p.vault, q), format: q.format })
      const one = a.entries.length === 1 ? a.entries[0]! : undefined
      const name = `${one === undefined ? `${p.vm}-files` : one.path === '/' ? p.vm : one.name}.${q.format}`
      return c.body(Readable.toWeb(a.body) as ReadableStream, 200, {
        'content-type': q.format === 'zip' ? 'application/zip' : 'application/x-tar',
        'content-disposition': attachment(name),
      })
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${P}/archive`,
      summary:
        'Write folders and files of a recovery point as a tar or zip file under an export root of the service, as a job with progress (202)',
      request: { params: PointParam, ...body(ArchiveJobRequest) },
      responses: { 202: json(Job, 'The started job'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const b = c.req.valid('json')
      const by = requestActor()
      const started = await files.archiveToFile(p.vm, p.rp, b.path, {
        ...location(p.vault, { disk: b.disk, partition: b.partition }),
        format: b.format,
        to: b.to,
        ...(b.overwrite !== undefined ? { overwrite: b.overwrite } : {}),
        ...(by !== undefined ? { startedBy: by } : {}),
      })
      return c.json(started.job, 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/fileHistory',
      summary:
        'The versions of one file across every recovery point of a VM (size, mtime, SHA-256), identical ones merged, oldest first',
      request: { params: ItemParam, query: FileQuery.extend(PageQuery.shape) },
      responses: { 200: json(FileHistory, 'Versions'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      const versions = await files.history(p.vm, q.path, location(p.vault, q))
      return c.json(
        paginate(versions, (v) => [v.points[0]!.time, v.points[0]!.id], q, 'versions'),
        200,
      )
    },
  )
}
