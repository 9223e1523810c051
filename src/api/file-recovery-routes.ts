import { createRoute, z } from '@hono/zod-openapi'
import type { RecoveryPointMounts } from '../protection/index.js'
import { requestActor } from '../util/index.js'
import { Mount, MountList, MountRequest } from './_file-recovery-schemas.js'
import { paginate } from './_page.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses as errors, json, PageQuery } from './schemas.js'

// File recovery under a VM's recovery points: mounts over NBD (docs/filerecovery.md). Each route parses,
// calls one service method and maps its answer.

const PointParam = z.object({ vault: z.string().min(1), vm: z.string().min(1), rp: z.string().min(1) })
const MountParam = PointParam.extend({ mount: z.string().min(1) })
const MOUNTS = '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/mounts'

/** Registers the mount routes over RecoveryPointMounts. */
export function registerFileRecoveryRoutes(app: ApiApp, mounts: RecoveryPointMounts): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: MOUNTS,
      summary:
        'Mount a recovery point: every disk read-only over NBD (from its snapshot, else the vault) with a credential of its own, until it expires (default 12 h) or is unmounted; answers NBD URIs and an attach script',
      request: {
        params: PointParam,
        body: { content: { 'application/json': { schema: MountRequest } }, required: false },
      },
      responses: { 201: json(Mount, 'The mount'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const text = await c.req.text()
      const b = MountRequest.parse(text.trim() === '' ? {} : JSON.parse(text))
      const by = requestActor()
      const view = await mounts.mount(p.vm, p.rp, {
        vault: p.vault,
        ...(b.hours !== undefined ? { hours: b.hours } : {}),
        ...(by !== undefined ? { startedBy: by } : {}),
      })
      return c.json(view, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: MOUNTS,
      summary: 'List the live mounts of a recovery point, oldest first',
      request: { params: PointParam, query: PageQuery },
      responses: { 200: json(MountList, 'Mounts'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const list = mounts.list({ vm: p.vm }).filter((m) => m.point === p.rp && m.vault === p.vault)
      return c.json(
        paginate(list, (m) => [m.createdAt, m.id], c.req.valid('query'), 'mounts'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/mounts',
      summary: 'List the live mounts of every recovery point of a VM, oldest first',
      request: { params: PointParam.omit({ rp: true }), query: PageQuery },
      responses: { 200: json(MountList, 'Mounts'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const list = mounts.list({ vm: p.vm }).filter((m) => m.vault === p.vault)
      return c.json(
        paginate(list, (m) => [m.createdAt, m.id], c.req.valid('query'), 'mounts'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${MOUNTS}/{mount}`,
      summary: 'Show a live mount (MountNotFound once expired or unmounted)',
      request: { params: MountParam },
      responses: { 200: json(Mount, 'The mount'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(mounts.get(p.mount, p.vm), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${MOUNTS}/{mount}`,
      summary: 'Unmount: the credential stops working and open NBD connections are closed at once',
      request: { params: MountParam },
      responses: { 200: json(z.object({ unmounted: z.string() }), 'Unmounted'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await mounts.unmount(p.mount, p.vm)
      return c.json({ unmounted: p.mount }, 200)
    },
  )
}
