import { createRoute, z } from '@hono/zod-openapi'
import { APPROVAL_HOURS, GUARDED_OPERATIONS, type ResourceGuard } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { clean } from './_clean.js'
import { paginate } from './_page.js'
import { VaultParams } from './_vault-schemas.js'
import { type ApiContext, vaultServiceOf } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json, Page, PageQuery } from './schemas.js'

// Multi-user authorization (docs/security.md): a vault's resource guard, and the requests to run a
// critical operation on a guarded vault, approved or denied by another identity with the Guard role.

const RequestId = z.string().openapi({ param: { name: 'id', in: 'path' } })
const Operation = z.enum(GUARDED_OPERATIONS)
const State = z.enum(['Pending', 'Approved', 'Denied', 'Used', 'Expired'])

export const GuardStatus = z
  .object({
    vault: z.string(),
    enabled: z.boolean(),
    updatedAt: z.string().optional(),
    updatedBy: z.string().optional(),
  })
  .openapi('ResourceGuard')

export const GuardRequest = z
  .object({
    id: z.string(),
    vault: z.string(),
    operation: Operation,
    reason: z.string().optional(),
    requestedBy: z.string(),
    requestedAt: z.string(),
    state: State,
    decidedBy: z.string().optional(),
    decidedAt: z.string().optional(),
    decisionReason: z.string().optional(),
    validUntil: z.string().optional().openapi({ description: 'Until when an approval may be used' }),
    usedAt: z.string().optional(),
  })
  .openapi('GuardRequest')

/** The resource guard of vaults and its requests. */
export function registerGuardRoutes(app: ApiApp, ctx: ApiContext): void {
  const guard = (): ResourceGuard => {
    if (!ctx.guard) throw new CairnError('ServiceUnavailable', 'This service has no resource guard')
    return ctx.guard
  }
  const vaultExists = async (vault: string) => {
    await vaultServiceOf(ctx).get(vault)
  }
  const P = VaultParams
  const R = z.object({ id: RequestId })

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/guard',
      summary: 'Whether the vault is guarded by multi-user authorization',
      request: { params: P },
      responses: { 200: json(GuardStatus, 'The guard'), ...errorResponses },
    }),
    async (c) => {
      const { vault } = c.req.valid('param')
      await vaultExists(vault)
      return c.json(await guard().status(vault), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/vaults/{vault}/guard',
      summary:
        'Turn the resource guard of a vault on, or off (turning it off is itself a critical operation: changeGuard)',
      request: { params: P, ...body(z.object({ enabled: z.boolean() }).openapi('ResourceGuardChange')) },
      responses: { 200: json(GuardStatus, 'The guard'), ...errorResponses },
    }),
    async (c) => {
      const { vault } = c.req.valid('param')
      await vaultExists(vault)
      return c.json(await guard().setEnabled(vault, c.req.valid('json').enabled), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/guard/requests',
      summary: 'List guard requests, newest first, with their approval or denial',
      request: { query: PageQuery.extend({ vault: z.string().optional(), state: State.optional() }) },
      responses: {
        200: json(Page(GuardRequest).openapi('GuardRequestList'), 'Guard requests'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { vault, state, ...q } = c.req.valid('query')
      const all = await guard().list(clean({ vault, state }))
      return c.json(
        paginate(
          all,
          (r) => [String(9e15 - Date.parse(r.requestedAt)).padStart(16, '0'), r.id],
          q,
          'guard requests',
        ),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/guard/requests',
      summary:
        'Ask to run a critical operation on a guarded vault; another identity with the Guard role decides',
      request: {
        ...body(
          z
            .object({
              vault: z.string().min(1),
              operation: Operation,
              reason: z.string().max(1000).optional(),
            })
            .openapi('GuardRequestCreate'),
        ),
      },
      responses: { 201: json(GuardRequest, 'The request'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      await vaultExists(b.vault)
      return c.json(await guard().request(b.vault, b.operation, clean({ reason: b.reason })), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/guard/requests/{id}',
      summary: 'Show a guard request',
      request: { params: R },
      responses: { 200: json(GuardRequest, 'The request'), ...errorResponses },
    }),
    async (c) => c.json(await guard().get(c.req.valid('param').id), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/guard/requests/{id}/approve',
      summary: `Approve a pending request (not one's own); the approval is valid validHours (default ${APPROVAL_HOURS.default}) and used once`,
      request: {
        params: R,
        ...body(
          z
            .object({
              validHours: z.number().positive().max(APPROVAL_HOURS.max).optional(),
              reason: z.string().max(1000).optional(),
            })
            .openapi('GuardApproval'),
        ),
      },
      responses: { 200: json(GuardRequest, 'The request'), ...errorResponses },
    }),
    async (c) => {
      const { validHours, reason } = c.req.valid('json')
      return c.json(await guard().approve(c.req.valid('param').id, clean({ validHours, reason })), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/guard/requests/{id}/deny',
      summary: "Deny a pending request (not one's own)",
      request: {
        params: R,
        ...body(z.object({ reason: z.string().max(1000).optional() }).openapi('GuardDenial')),
      },
      responses: { 200: json(GuardRequest, 'The request'), ...errorResponses },
    }),
    async (c) =>
      c.json(await guard().deny(c.req.valid('param').id, clean({ reason: c.req.valid('json').reason })), 200),
  )
}
