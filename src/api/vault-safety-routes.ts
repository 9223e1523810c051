import { createRoute, z } from '@hono/zod-openapi'
import { CairnError } from '../util/index.js'
import { clean } from './_clean.js'
import { paginate } from './_page.js'
import { ProtectedItem } from './_protection-schemas.js'
import { PointParams, VaultName, VaultParams } from './_vault-schemas.js'
import { type ApiContext, vaultServiceOf } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json, Page, PageQuery } from './schemas.js'

// Backups that survive a stolen admin (docs/security.md): a vault's soft delete and immutability
// settings, its soft-deleted recovery points and their undelete, and the undelete of a VM's data.

const VmName = z
  .string()
  .min(1)
  .openapi({ param: { name: 'vm', in: 'path' }, example: 'web' })

export const Settings = z
  .object({
    softDelete: z.object({
      state: z.enum(['Enabled', 'Disabled', 'AlwaysOn']),
      retentionDays: z.number().int().openapi({ description: 'Days deleted data is kept (14–180)' }),
    }),
    immutability: z.object({ state: z.enum(['Disabled', 'Enabled', 'Locked']) }),
    updatedAt: z.string().optional(),
  })
  .openapi('VaultSettings')

export const SettingsChange = z
  .object({
    softDelete: z
      .object({
        state: z.enum(['Enabled', 'Disabled', 'AlwaysOn']).optional(),
        retentionDays: z.number().int().optional(),
      })
      .strict()
      .optional(),
    immutability: z
      .object({ state: z.enum(['Disabled', 'Enabled', 'Locked']).optional() })
      .strict()
      .optional(),
  })
  .strict()
  .openapi('VaultSettingsChange')

export const SoftDeleted = z
  .object({
    id: z.string(),
    state: z.literal('SoftDeleted'),
    source: z.object({ kind: z.string(), name: z.string() }).passthrough(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    retainUntil: z.string().nullable().optional(),
    deletedAt: z.string(),
    purgeAt: z.string().openapi({ description: 'When the point is purged for good' }),
  })
  .passthrough()
  .openapi('SoftDeletedRecoveryPoint')

export const UndeletedRecoveryPoint = z
  .object({ id: z.string() })
  .passthrough()
  .openapi('UndeletedRecoveryPoint')

export const UndeleteItemRequest = z
  .object({ policy: z.string().min(1).optional() })
  .openapi('UndeleteItemRequest')

export const UndeleteItemResult = z
  .object({ item: ProtectedItem, undeleted: z.array(z.string()) })
  .openapi('UndeleteResult')

/** Soft delete, immutability and undelete. */
export function registerVaultSafetyRoutes(app: ApiApp, ctx: ApiContext): void {
  const service = () => vaultServiceOf(ctx)
  const P = VaultParams
  const PR = PointParams

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/settings',
      summary:
        "A vault's soft delete (Enabled, Disabled, AlwaysOn; retention days) and immutability (Disabled, Enabled, Locked)",
      request: { params: P },
      responses: { 200: json(Settings, 'The settings'), ...errorResponses },
    }),
    async (c) => c.json(await service().settings(c.req.valid('param').vault), 200),
  )
  app.openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/vaults/{vault}/settings',
      summary:
        'Change soft delete or immutability. AlwaysOn and Locked cannot be undone (409 SettingIrreversible); the soft-delete retention is 14–180 days',
      request: { params: P, ...body(SettingsChange) },
      responses: { 200: json(Settings, 'The settings'), ...errorResponses },
    }),
    async (c) => {
      const { vault } = c.req.valid('param')
      return c.json(await service().updateSettings(vault, c.req.valid('json')), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/softDeletedRecoveryPoints',
      summary: 'List soft-deleted recovery points, oldest first, with when each will be purged',
      request: { params: P, query: PageQuery.extend({ item: z.string().optional() }) },
      responses: {
        200: json(Page(SoftDeleted).openapi('SoftDeletedRecoveryPointList'), 'Soft-deleted points'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { item, ...q } = c.req.valid('query')
      const points = await service().listSoftDeleted(c.req.valid('param').vault, item)
      return c.json(
        paginate(points, (p) => [p.createdAt, p.id], q, 'soft-deleted recovery points'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/softDeletedRecoveryPoints/{rp}/undelete',
      summary: 'Bring a soft-deleted recovery point back',
      request: { params: PR, ...body(z.object({}).strict().openapi('UndeleteRequest')) },
      responses: {
        200: json(UndeletedRecoveryPoint, 'The recovery point'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      return c.json(await service().undeletePoint(vault, rp), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/undelete',
      summary:
        "Bring back a VM's backup data deleted by stop protection under soft delete: its points return, the item in ProtectionStopped (resume to protect again)",
      request: {
        params: z.object({ vault: VaultName, vm: VmName }),
        ...body(UndeleteItemRequest),
      },
      responses: {
        200: json(UndeleteItemResult, 'The item and the points undeleted'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { vault, vm } = c.req.valid('param')
      if (!ctx.protection) throw new CairnError('ServiceUnavailable', 'This service runs no backup engine')
      const r = await ctx.protection.undelete(vm, { vault, ...clean({ policy: c.req.valid('json').policy }) })
      return c.json({ item: r.item, undeleted: r.undeleted }, 200)
    },
  )
}
