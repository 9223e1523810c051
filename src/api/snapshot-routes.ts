import { createRoute, z } from '@hono/zod-openapi'
import type { ByteRange, LeaseAction } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import { clean } from './_clean.js'
import {
  body,
  CopyDiskRequest,
  Count,
  DISK,
  Diff,
  Disk,
  DiskList,
  DiskParams,
  deleteGuard,
  diskJson,
  Force,
  json,
  LeaseRequest,
  LeaseResult,
  Metadata,
  PromoteRequest,
  ref,
  SequenceNumberRequest,
  SnapshotGroup,
  SnapshotGroupRequest,
  SnapshotParams,
  toInclusive,
  WriteResult,
} from './_disk-schemas.js'
import { markerPage, paginate } from './_page.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses, PageQuery } from './schemas.js'

/** Registers the routes of snapshots, snapshot groups and diffs of disks. */
export function registerSnapshotRoutes(app: ApiApp, ctx: ApiContext): void {
  const store = () => ctx.diskStore
  const guard = () => deleteGuard(ctx)
  const tags = ['Disks']

  // ------------------------------------------------------------ snapshots and diffs
  app.openapi(
    createRoute({
      method: 'get',
      path: `${DISK}/snapshots`,
      tags,
      summary: 'List the snapshots of a disk, oldest first',
      request: { params: DiskParams, query: PageQuery },
      responses: { 200: json(DiskList, 'Snapshots'), ...errorResponses },
    }),
    (c) => {
      const snapshots = store()
        .listSnapshots(ref(c.req.valid('param')))
        .map(diskJson)
      const page = paginate(snapshots, (s) => [s.snapshot ?? ''], c.req.valid('query'), 'snapshots')
      return c.json(page, 200)
    },
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
      request: body(SnapshotGroupRequest),
      responses: {
        201: json(SnapshotGroup, 'One snapshot per disk, in the order of the request'),
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
      summary:
        'Changed and cleared page ranges from snapshot `from` to snapshot `to` (or the live disk); limit counts ranges, and nextCursor pages on',
      request: {
        params: DiskParams,
        query: PageQuery.extend({
          from: z.string(),
          to: z.string().optional(),
          offset: Count.optional(),
          length: Count.optional(),
        }),
      },
      responses: { 200: json(Diff, 'The diff'), ...errorResponses },
    }),
    (c) => {
      const { limit, cursor, ...q } = c.req.valid('query')
      const r = ref(c.req.valid('param'))
      let cleared: ByteRange[] = []
      const page = markerPage({ limit, cursor }, 'diff ranges', (marker, maxResults) => {
        const d = store().diff(r, { ...clean({ ...q, marker }), from: q.from, maxResults })
        cleared = d.clearRanges
        return { ...d, items: d.pageRanges }
      })
      const out: z.infer<typeof Diff> = {
        pageRanges: toInclusive(page.items),
        clearRanges: toInclusive(cleared),
      }
      if (page.nextCursor !== undefined) out.nextCursor = page.nextCursor
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
        ...body(PromoteRequest),
      },
      responses: { 200: json(WriteResult, 'The change'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const cond = b.leaseId ? { leaseId: b.leaseId } : undefined
      return c.json(await store().promote(ref(c.req.valid('param')), b.snapshot, cond), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${DISK}/lease`,
      tags,
      summary:
        'Acquire, renew, release, change or break the lease of a disk (a leased disk refuses writes without its id)',
      request: { params: DiskParams, ...body(LeaseRequest) },
      responses: {
        200: json(LeaseResult, 'The lease'),
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
        ...body(SequenceNumberRequest),
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
        ...body(CopyDiskRequest),
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
}
