import { createRoute, z } from '@hono/zod-openapi'
import type { AccountInfo, ByteRange, DiskInfo, DiskRef, LeaseAction } from '../diskstore/index.js'
import { MAX_WRITE_SIZE } from '../diskstore/index.js'
import type { DiskGuard } from '../protection/index.js'
import { CairnError, type HostPaths, parseSize } from '../util/index.js'
import { readBodyUpTo } from './_request-guards.js'
import { runAsJob } from './_run-as-job.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses } from './schemas.js'

// Storage accounts, containers, disks and snapshots of the disk store under /api/v1/accounts.

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
})

const Account = z
  .object({
    name: z.string(),
    region: z.string(),
    redundancy: z.string(),
    createdOn: z.string(),
  })
  .openapi('StorageAccount')

const AccountKeys = z
  .object({ account: z.string(), keys: z.tuple([z.string(), z.string()]) })
  .openapi('StorageAccountKeys')

/** An account as every route but the keys routes answers it: without its Shared Keys. */
const accountJson = (a: AccountInfo): z.infer<typeof Account> => ({
  name: a.name,
  region: a.region,
  redundancy: a.redundancy,
  createdOn: a.createdOn,
})

const Container = z
  .object({
    account: z.string(),
    name: z.string(),
    metadata: z.record(z.string(), z.string()),
    etag: z.string(),
    lastModified: z.string(),
    createdOn: z.string(),
  })
  .openapi('Container')

const DiskRefSchema = z
  .object({ account: z.string(), container: z.string(), disk: z.string() })
  .openapi('DiskRef')

const Disk = z
  .object({
    ref: DiskRefSchema,
    snapshot: z.string().optional().openapi({ example: '2026-11-22T19:37:17.1234567Z' }),
    size: z.number(),
    sequenceNumber: z.number(),
    metadata: z.record(z.string(), z.string()),
    content: z.record(z.string(), z.string()),
    etag: z.string(),
    lastModified: z.string(),
    createdOn: z.string(),
    lease: z.object({
      state: z.string(),
      status: z.string(),
      duration: z.string().optional(),
      id: z.string().optional(),
    }),
    usedBytes: z.number().openapi({ description: 'Bytes of written pages (used size)' }),
    copy: z.record(z.string(), z.string()).optional(),
    incrementalCopy: z.boolean().optional(),
  })
  .openapi('Disk')

const WriteResult = z
  .object({ etag: z.string(), lastModified: z.string(), sequenceNumber: z.number() })
  .openapi('WriteResult')

const Ranges = z
  .array(z.tuple([z.number(), z.number()]))
  .openapi({ description: 'Byte ranges as [start, endInclusive] (Azure style)', example: [[0, 4095]] })

const Diff = z
  .object({ pageRanges: Ranges, clearRanges: Ranges, nextMarker: z.string().optional() })
  .openapi('DiskDiff')

const Space = z
  .object({
    ref: DiskRefSchema,
    snapshot: z.string().optional(),
    usedBytes: z.number(),
    exclusiveBytes: z
      .number()
      .openapi({ description: 'Bytes of stored data only this disk or snapshot sees' }),
  })
  .openapi('DiskSpace')

const Usage = z
  .object({ segmentBytes: z.number(), liveBytes: z.number(), segments: z.number() })
  .openapi('DiskStoreUsage')

const Size = z
  .union([z.number(), z.string()])
  .openapi({ description: 'Bytes, or a size such as 1GiB', example: '1GiB' })
const Metadata = z.record(z.string(), z.string())
const Count = z.coerce.number().int().nonnegative()

const AccountParams = z.object({ account: z.string() })
const ContainerParams = AccountParams.extend({ container: z.string() })
const DiskParams = ContainerParams.extend({ disk: z.string() })
const SnapshotParams = DiskParams.extend({ snapshot: z.string() })
/** `force=true` deletes what protection depends on (recovery points fall back to the vault tier or go). */
const Force = z.object({ force: z.enum(['true', 'false']).optional() })

const A = '/api/v1/accounts'
const C = `${A}/{account}/containers`
const D = `${C}/{container}/disks`
const DISK = `${D}/{disk}`

const toInclusive = (ranges: ByteRange[]) => ranges.map((r): [number, number] => [r.start, r.end - 1])

const ref = (p: { account: string; container: string; disk: string }): DiskRef => ({
  account: p.account,
  container: p.container,
  disk: p.disk,
})

/** Plain JSON of a DiskInfo (content and copy as string records). */
const diskJson = (d: DiskInfo) => JSON.parse(JSON.stringify(d)) as z.infer<typeof Disk>

/** Registers the routes of accounts, containers, disks and snapshots. */
export function registerDiskRoutes(app: ApiApp, ctx: ApiContext): void {
  const store = () => ctx.diskStore
  // Deletes go through protection's guard; a service without protection deletes directly.
  const guard = (): Pick<DiskGuard, 'deleteAccount' | 'deleteContainer' | 'deleteDisk' | 'deleteSnapshot'> =>
    ctx.backups?.guard ?? {
      deleteAccount: (a) => store().deleteAccount(a),
      deleteContainer: (a, c) => store().deleteContainer(a, c),
      deleteDisk: (r, { force: _f, ...o } = {}) => store().deleteDisk(r, o),
      deleteSnapshot: (r, s) => store().deleteSnapshot(r, s),
    }
  const hostPaths = (): HostPaths => {
    if (!ctx.hostPaths)
      throw new CairnError('PathNotAllowed', 'Cannot use a host path: this service has no host-path roots')
    return ctx.hostPaths
  }
  const tags = ['Disks']

  // ------------------------------------------------------------ accounts
  app.openapi(
    createRoute({
      method: 'get',
      path: A,
      tags,
      summary: 'List storage accounts',
      responses: { 200: json(z.object({ items: z.array(Account) }), 'Storage accounts'), ...errorResponses },
    }),
    (c) => c.json({ items: store().listAccounts().map(accountJson) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: A,
      tags,
      summary: 'Create a storage account',
      request: body(
        z.object({
          name: z.string().openapi({ example: 'prodeu1' }),
          region: z.string().optional(),
          redundancy: z.enum(['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']).optional(),
        }),
      ),
      responses: { 201: json(Account, 'The new account'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const opts: { region?: string; redundancy?: string } = {}
      if (b.region !== undefined) opts.region = b.region
      if (b.redundancy !== undefined) opts.redundancy = b.redundancy
      return c.json(accountJson(await store().createAccount(b.name, opts)), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${A}/{account}`,
      tags,
      summary: 'Show a storage account',
      request: { params: AccountParams },
      responses: { 200: json(Account, 'The account'), ...errorResponses },
    }),
    (c) => c.json(accountJson(store().getAccount(c.req.valid('param').account)), 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${A}/{account}/keys`,
      tags,
      summary: 'The two Shared Keys of a storage account (no other route answers them)',
      request: { params: AccountParams },
      responses: { 200: json(AccountKeys, 'The keys'), ...errorResponses },
    }),
    (c) => {
      const a = store().getAccount(c.req.valid('param').account)
      return c.json({ account: a.name, keys: a.keys }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${A}/{account}`,
      tags,
      summary:
        'Delete a storage account with all its containers, disks and snapshots (refused with DiskInUse while protection depends on a disk in it, unless force=true)',
      request: { params: AccountParams, query: Force },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const force = c.req.valid('query').force === 'true'
      await guard().deleteAccount(c.req.valid('param').account, { force })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${A}/{account}/regenerate-key`,
      tags,
      summary: 'Replace key 1 or 2 of a storage account',
      request: { params: AccountParams, ...body(z.object({ key: z.union([z.literal(1), z.literal(2)]) })) },
      responses: { 200: json(AccountKeys, 'The keys, one of them new'), ...errorResponses },
    }),
    async (c) => {
      const a = await store().regenerateAccountKey(c.req.valid('param').account, c.req.valid('json').key)
      return c.json({ account: a.name, keys: a.keys }, 200)
    },
  )

  // ------------------------------------------------------------ containers
  app.openapi(
    createRoute({
      method: 'get',
      path: C,
      tags,
      summary: 'List the containers of an account',
      request: {
        params: AccountParams,
        query: z.object({
          prefix: z.string().optional(),
          marker: z.string().optional(),
          maxResults: Count.optional(),
        }),
      },
      responses: {
        200: json(z.object({ items: z.array(Container), nextMarker: z.string().optional() }), 'Containers'),
        ...errorResponses,
      },
    }),
    (c) => c.json(store().listContainers(c.req.valid('param').account, clean(c.req.valid('query'))), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: C,
      tags,
      summary: 'Create a container',
      request: {
        params: AccountParams,
        ...body(z.object({ name: z.string(), metadata: Metadata.optional() })),
      },
      responses: { 201: json(Container, 'The new container'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await store().createContainer(
        c.req.valid('param').account,
        b.name,
        b.metadata ? { metadata: b.metadata } : {},
      )
      return c.json(info, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${C}/{container}`,
      tags,
      summary: 'Show a container',
      request: { params: ContainerParams },
      responses: { 200: json(Container, 'The container'), ...errorResponses },
    }),
    (c) => {
      const p = c.req.valid('param')
      return c.json(store().getContainer(p.account, p.container), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${C}/{container}`,
      tags,
      summary:
        'Delete a container with all its disks and snapshots (refused with DiskInUse while protection depends on a disk in it, unless force=true)',
      request: { params: ContainerParams, query: Force },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await guard().deleteContainer(p.account, p.container, { force: c.req.valid('query').force === 'true' })
      return c.body(null, 204)
    },
  )

  // ------------------------------------------------------------ disks
  app.openapi(
    createRoute({
      method: 'get',
      path: D,
      tags,
      summary: 'List the disks of a container',
      request: {
        params: ContainerParams,
        query: z.object({
          prefix: z.string().optional(),
          marker: z.string().optional(),
          maxResults: Count.optional(),
          includeSnapshots: z.enum(['true', 'false']).optional(),
        }),
      },
      responses: {
        200: json(z.object({ items: z.array(Disk), nextMarker: z.string().optional() }), 'Disks'),
        ...errorResponses,
      },
    }),
    (c) => {
      const p = c.req.valid('param')
      const q = c.req.valid('query')
      const listed = store().listDisks(p.account, p.container, {
        ...clean({ prefix: q.prefix, marker: q.marker, maxResults: q.maxResults }),
        includeSnapshots: q.includeSnapshots === 'true',
      })
      return c.json({ ...listed, items: listed.items.map(diskJson) }, 200)
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
        ...body(
          z.object({
            size: Size,
            sequenceNumber: z.number().int().nonnegative().optional(),
            metadata: Metadata.optional(),
            overwrite: z.boolean().optional(),
          }),
        ),
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
      request: { params: DiskParams, ...body(z.object({ size: Size, leaseId: z.string().optional() })) },
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
  const PageQuery = z.object({ offset: Count, leaseId: z.string().optional() })
  app.openapi(
    createRoute({
      method: 'put',
      path: `${DISK}/pages`,
      tags,
      summary: 'Write pages: the raw body (a multiple of 512 bytes, at most 4 MiB) at ?offset=',
      request: {
        params: DiskParams,
        query: PageQuery,
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
      },
      responses: { 200: json(WriteResult, 'The write is durable'), ...errorResponses },
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
        await store().writePages(ref(c.req.valid('param')), q.offset, data, clean({ conditions: cond })),
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
      request: { params: DiskParams, query: PageQuery.extend({ length: Count }) },
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
      responses: { 200: json(z.object({ pageRanges: Ranges }), 'Written ranges'), ...errorResponses },
    }),
    (c) => {
      const ranges = store().pageRanges(ref(c.req.valid('param')), clean(c.req.valid('query')))
      return c.json({ pageRanges: toInclusive(ranges) }, 200)
    },
  )

  // ------------------------------------------------------------ snapshots and diffs
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/snapshots`,
      tags,
      summary: 'List the snapshots of a disk, oldest first',
      request: { params: DiskParams },
      responses: { 200: json(z.object({ items: z.array(Disk) }), 'Snapshots'), ...errorResponses },
    }),
    (c) =>
      c.json(
        {
          items: store()
            .listSnapshots(ref(c.req.valid('param')))
            .map(diskJson),
        },
        200,
      ),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/snapshots`,
      tags,
      summary: 'Take an instant read-only snapshot of a disk',
      request: { params: DiskParams, ...body(z.object({ metadata: Metadata.optional() })) },
      responses: { 201: json(Disk, 'The snapshot'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await store().snapshot(
        ref(c.req.valid('param')),
        b.metadata ? { metadata: b.metadata } : {},
      )
      return c.json(diskJson(info), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/snapshot-groups',
      tags,
      summary: 'Snapshot several disks at one instant (a consistency group)',
      request: body(z.object({ disks: z.array(DiskRefSchema).min(1) })),
      responses: {
        201: json(z.object({ items: z.array(Disk) }), 'One snapshot per disk'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const infos = await store().snapshotGroup(c.req.valid('json').disks.map(ref))
      return c.json({ items: infos.map(diskJson) }, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/snapshots/{snapshot}`,
      tags,
      summary: 'Show one snapshot of a disk',
      request: { params: SnapshotParams },
      responses: { 200: json(Disk, 'The snapshot'), ...errorResponses },
    }),
    (c) => {
      const p = c.req.valid('param')
      return c.json(diskJson(store().getDisk(ref(p), p.snapshot)), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${DISK}/snapshots/{snapshot}`,
      tags,
      summary:
        'Delete one snapshot of a disk; refused with SnapshotInUse while a recovery point holds it, unless force=true (the point then falls back to its vault copy)',
      request: { params: SnapshotParams, query: Force },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await guard().deleteSnapshot(ref(p), p.snapshot, { force: c.req.valid('query').force === 'true' })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/diff`,
      tags,
      summary: 'Changed and cleared page ranges from snapshot `from` to snapshot `to` (or the live disk)',
      request: {
        params: DiskParams,
        query: z.object({
          from: z.string(),
          to: z.string().optional(),
          offset: Count.optional(),
          length: Count.optional(),
          marker: z.string().optional(),
          maxResults: Count.optional(),
        }),
      },
      responses: { 200: json(Diff, 'The diff'), ...errorResponses },
    }),
    (c) => {
      const q = c.req.valid('query')
      const d = store().diff(ref(c.req.valid('param')), { ...clean(q), from: q.from })
      const out: z.infer<typeof Diff> = {
        pageRanges: toInclusive(d.pageRanges),
        clearRanges: toInclusive(d.clearRanges),
      }
      if (d.nextMarker !== undefined) out.nextMarker = d.nextMarker
      return c.json(out, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/promote`,
      tags,
      summary: 'Make the content of the disk that of one of its snapshots (no data copied)',
      request: {
        params: DiskParams,
        ...body(z.object({ snapshot: z.string(), leaseId: z.string().optional() })),
      },
      responses: { 200: json(WriteResult, 'The change'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const cond = b.leaseId ? { leaseId: b.leaseId } : undefined
      return c.json(await store().promote(ref(c.req.valid('param')), b.snapshot, cond), 200)
    },
  )
  const LeaseBody = z.object({
    action: z.enum(['acquire', 'renew', 'release', 'change', 'break']),
    duration: z
      .number()
      .int()
      .optional()
      .openapi({ description: 'acquire: 15–60 seconds, or -1 for infinite' }),
    leaseId: z.string().optional().openapi({ description: 'renew, release, change: the active lease id' }),
    proposedId: z.string().optional().openapi({ description: 'acquire, change: the new lease id' }),
    breakPeriod: z
      .number()
      .int()
      .min(0)
      .max(60)
      .optional()
      .openapi({ description: 'break: seconds to wait' }),
  })
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/lease`,
      tags,
      summary:
        'Acquire, renew, release, change or break the lease of a disk (a leased disk refuses writes without its id)',
      request: { params: DiskParams, ...body(LeaseBody) },
      responses: {
        200: json(
          z.object({
            id: z.string().optional(),
            leaseTime: z.number().optional(),
            etag: z.string(),
            lastModified: z.string(),
          }),
          'The lease',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const need = (v: string | undefined, what: string): string => {
        if (v === undefined)
          throw new CairnError('InvalidRequest', `Cannot ${b.action} a lease without ${what}`)
        return v
      }
      const op: LeaseAction =
        b.action === 'acquire'
          ? { action: 'acquire', duration: b.duration ?? -1, ...clean({ proposedId: b.proposedId }) }
          : b.action === 'renew'
            ? { action: 'renew', id: need(b.leaseId, 'leaseId') }
            : b.action === 'release'
              ? { action: 'release', id: need(b.leaseId, 'leaseId') }
              : b.action === 'change'
                ? {
                    action: 'change',
                    id: need(b.leaseId, 'leaseId'),
                    proposedId: need(b.proposedId, 'proposedId'),
                  }
                : { action: 'break', ...clean({ breakPeriod: b.breakPeriod }) }
      return c.json(await store().lease(ref(c.req.valid('param')), op), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/sequence-number`,
      tags,
      summary: "Set the disk's sequence number: max (raise to value), update (set to value) or increment",
      request: {
        params: DiskParams,
        ...body(
          z.object({
            action: z.enum(['max', 'update', 'increment']),
            value: z.number().int().min(0).optional(),
            leaseId: z.string().optional(),
          }),
        ),
      },
      responses: { 200: json(WriteResult, 'The change'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      if (b.action !== 'increment' && b.value === undefined) {
        throw new CairnError('InvalidRequest', `Cannot ${b.action} the sequence number without a value`)
      }
      const cond = b.leaseId ? { leaseId: b.leaseId } : undefined
      return c.json(await store().setSequenceNumber(ref(c.req.valid('param')), b.action, b.value, cond), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/copy`,
      tags,
      summary: 'Make a new disk from this disk or one of its snapshots, sharing data (no copy)',
      request: {
        params: DiskParams,
        ...body(
          z.object({
            target: DiskRefSchema,
            snapshot: z.string().optional(),
            overwrite: z.boolean().optional(),
            metadata: Metadata.optional(),
          }),
        ),
      },
      responses: { 201: json(Disk, 'The new disk'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await store().copyDisk(
        { ref: ref(c.req.valid('param')), ...clean({ snapshot: b.snapshot }) },
        ref(b.target),
        clean({ overwrite: b.overwrite, metadata: b.metadata }),
      )
      return c.json(diskJson(info), 201)
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
      request: { params: DiskParams, ...body(z.object({ path: z.string() })) },
      responses: { 201: json(Disk, 'The new disk'), ...errorResponses },
    }),
    async (c) => {
      const path = await hostPaths().checkImport(c.req.valid('json').path)
      const r = ref(c.req.valid('param'))
      const resource = `accounts/${r.account}/containers/${r.container}/disks/${r.disk}`
      const info = await runAsJob(ctx, c, { kind: 'import', resource }, async (signal, job) =>
        diskJson(
          await store().importFile(path, r, {
            signal,
            ...(job ? { onProgress: (p) => job.progress({ ...p, phase: 'import' }) } : {}),
          }),
        ),
      )
      return c.json(info, 201)
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
        ...body(
          z.object({ path: z.string(), snapshot: z.string().optional(), overwrite: z.boolean().optional() }),
        ),
      },
      responses: {
        200: json(z.object({ path: z.string(), size: z.number() }), 'Exported'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const r = ref(c.req.valid('param'))
      const size = store().getDisk(r, b.snapshot).size
      const resource = `accounts/${r.account}/containers/${r.container}/disks/${r.disk}`
      await runAsJob(ctx, c, { kind: 'export', resource }, async (signal, job) => {
        await hostPaths().export(b.path, clean({ overwrite: b.overwrite }), (temporary) =>
          store().exportFile(r, temporary, {
            signal,
            ...clean({ snapshot: b.snapshot }),
            ...(job ? { onProgress: (p) => job.progress({ ...p, phase: 'export' }) } : {}),
          }),
        )
        return { path: b.path, size }
      })
      return c.json({ path: b.path, size }, 200)
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

/** Drops undefined values (exactOptionalPropertyTypes-friendly options objects). */
function clean<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as { [K in keyof T]?: Exclude<T[K], undefined> }
}
