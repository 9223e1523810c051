import { createRoute, z } from '@hono/zod-openapi'
import type { VaultBackupRequest, VaultService } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import type { VaultCredentials } from '../vault/index.js'
import { clean } from './_clean.js'
import { followJob } from './_follow-job.js'
import type { ApiContext } from './api-context.js'
import { JobSchema } from './job-routes.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json } from './schemas.js'

const VaultName = z.string().openapi({ param: { name: 'vault', in: 'path' }, example: 'main' })
const RpId = z.string().openapi({ param: { name: 'rp', in: 'path' }, example: '20261122T195200123Z-3f2a' })

const Credentials = {
  passphrase: z.string().min(1).optional(),
  keyFile: z.string().optional().openapi({ description: 'Key file content, base64' }),
}

const Vault = z
  .object({
    name: z.string(),
    backend: z.string(),
    location: z.string(),
    encrypted: z.boolean(),
    createdAt: z.string(),
    unlocked: z.boolean(),
  })
  .openapi('Vault')

const Disk = z.object({
  name: z.string(),
  lun: z.number().optional(),
  size: z.number(),
  snapshot: z.string().optional(),
  mode: z.enum(['full', 'incremental', 'checksum']),
  root: z.string().nullable(),
  depth: z.number(),
  bytesScanned: z.number(),
  bytesNew: z.number(),
  chunksNew: z.number(),
  chunksReused: z.number(),
})

const RecoveryPoint = z
  .object({
    id: z.string(),
    source: z.object({
      kind: z.string(),
      name: z.string(),
      config: z.record(z.string(), z.unknown()).optional(),
    }),
    consistency: z.string(),
    createdAt: z.string(),
    completedAt: z.string(),
    expiresAt: z.string().nullable(),
    parent: z.string().nullable(),
    disks: z.array(Disk),
    packs: z.array(z.string()),
    bytesAdded: z.number(),
    durationMs: z.number(),
  })
  .openapi('RecoveryPoint')

const Job = JobSchema

const DiskRefBody = z.object({ account: z.string(), container: z.string(), disk: z.string() })

const Retention = z.object({
  keepLast: z.number().int().min(0).optional(),
  keepHourly: z.number().int().min(0).optional(),
  keepDaily: z.number().int().min(0).optional(),
  keepWeekly: z.number().int().min(0).optional(),
  keepMonthly: z.number().int().min(0).optional(),
  keepYearly: z.number().int().min(0).optional(),
})

function credentials(b: {
  passphrase?: string | undefined
  keyFile?: string | undefined
}): VaultCredentials | undefined {
  if (b.passphrase !== undefined) return { passphrase: b.passphrase }
  if (b.keyFile !== undefined) return { keyFile: Buffer.from(b.keyFile, 'base64') }
  return undefined
}

/** Vaults, recovery points, backups and restores of files, verify/prune/gc/usage/key, and jobs. */
export function registerVaultRoutes(app: ApiApp, ctx: ApiContext): void {
  /** Every vault use case goes through the service; routes parse, call one method and answer. */
  const service = (): VaultService => {
    if (!ctx.vaultService) throw new CairnError('ServiceUnavailable', 'This service has no vaults')
    return ctx.vaultService
  }
  const P = z.object({ vault: VaultName })
  const PR = z.object({ vault: VaultName, rp: RpId })

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults',
      summary: 'List vaults',
      responses: { 200: json(z.object({ items: z.array(Vault) }), 'Vaults') },
    }),
    async (c) => c.json({ items: await service().list() }, 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults',
      summary: 'Create a vault (encrypted when a passphrase or key file is given), or attach an existing one',
      request: body(
        z.object({
          name: z.string(),
          location: z.string().optional().openapi({
            description:
              'An absolute folder (or file:/// URL), empty or absent (docs/security.md, docs/vault.md "Backends"); default DATA/vaults/NAME',
          }),
          attach: z.boolean().optional(),
          ...Credentials,
        }),
      ),
      responses: { 201: json(Vault, 'The vault'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const enc = credentials(b)
      const info = await service().create(b.name, {
        ...(b.location ? { location: b.location } : {}),
        ...(enc ? { encryption: enc } : {}),
        ...(b.attach ? { attach: true } : {}),
      })
      return c.json(info, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}',
      summary: 'Show a vault',
      request: { params: P },
      responses: { 200: json(Vault, 'The vault'), ...errorResponses },
    }),
    async (c) => c.json(await service().get(c.req.valid('param').vault), 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/vaults/{vault}',
      summary:
        'Forget a vault; deleteData=true also deletes the files of its layout (refused while it holds recovery points or protected items) and its folder when nothing else is left',
      request: { params: P, query: z.object({ deleteData: z.enum(['true', 'false']).optional() }) },
      responses: {
        200: json(
          z.object({
            name: z.string(),
            dataDeleted: z.boolean(),
            left: z
              .array(z.string())
              .openapi({ description: "Files in the folder that were not the vault's, left in place" }),
          }),
          'Deleted',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { vault } = c.req.valid('param')
      const deleteData = c.req.valid('query').deleteData === 'true'
      return c.json(await service().remove(vault, { deleteData }), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/unlock',
      summary: 'Open an encrypted vault with its passphrase or key file; the key stays in memory',
      request: { params: P, ...body(z.object(Credentials)) },
      responses: { 200: json(Vault, 'The vault'), ...errorResponses },
    }),
    async (c) => {
      const creds = credentials(c.req.valid('json'))
      return c.json(await service().unlock(c.req.valid('param').vault, creds), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/key',
      summary: 'Rewrap the vault key with a new passphrase or key file (no data is rewritten)',
      request: { params: P, ...body(z.object(Credentials)) },
      responses: { 200: json(Vault, 'The vault'), ...errorResponses },
    }),
    async (c) => {
      const creds = credentials(c.req.valid('json'))
      return c.json(await service().changeKey(c.req.valid('param').vault, creds), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/usage',
      summary:
        'Vault size: logical, stored and new bytes per recovery point, deduplication and compression (docs/vault.md defines the ratios)',
      request: { params: P },
      responses: {
        200: json(
          z.object({
            recoveryPoints: z.number(),
            packs: z.number(),
            storedBytes: z.number(),
            logicalBytes: z.number(),
            dataBytes: z.number(),
            dataStoredBytes: z.number(),
            uniqueBytes: z.number(),
            uniqueStoredBytes: z.number(),
            deduplicationRatio: z
              .number()
              .openapi({ description: 'logicalBytes / dataBytes (every stored copy counted)' }),
            compressionRatio: z.number().openapi({ description: 'dataBytes / dataStoredBytes' }),
            overallRatio: z.number().openapi({ description: 'logicalBytes / storedBytes' }),
            perRecoveryPoint: z.array(
              z.object({
                id: z.string(),
                createdAt: z.string(),
                logicalBytes: z.number(),
                bytesAdded: z.number(),
              }),
            ),
          }),
          'Usage',
        ),
        ...errorResponses,
      },
    }),
    async (c) => c.json(await service().usage(c.req.valid('param').vault), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/verify',
      summary:
        'Check that every recovery point can be restored, re-read, decrypt and re-hash all packs (or a sample); readData restores every point into a discarding target; answers a job',
      request: {
        params: P,
        ...body(z.object({ sample: z.number().min(0).max(1).optional(), readData: z.boolean().optional() })),
      },
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      const { sample, readData } = c.req.valid('json')
      const job = await service().verify(c.req.valid('param').vault, clean({ sample, readData }))
      return c.json(job, 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/prune',
      summary:
        'Remove expired recovery points and those no retention rule keeps. Points of protected VMs (source kind vm) follow their backup policy and are left alone (listed as skipped) unless includePolicyPoints is true',
      request: {
        params: P,
        ...body(
          Retention.extend({
            item: z.string().optional(),
            dryRun: z.boolean().optional(),
            includePolicyPoints: z.boolean().optional(),
          }),
        ),
      },
      responses: {
        200: json(
          z.object({
            kept: z.array(z.string()),
            removed: z.array(z.string()),
            skipped: z.array(z.string()),
            dryRun: z.boolean(),
          }),
          'Prune report',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { item, dryRun, includePolicyPoints, ...policy } = c.req.valid('json')
      const request = { policy, ...clean({ item, dryRun, includePolicyPoints }) }
      const report = await service().prune(c.req.valid('param').vault, request, followJob(c))
      return c.json(report, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/gc',
      summary: 'Reclaim the space of packs no recovery point needs; answers a job',
      request: { params: P },
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      return c.json(await service().gc(c.req.valid('param').vault), 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/recoveryPoints',
      summary: 'List recovery points, oldest first',
      request: { params: P, query: z.object({ item: z.string().optional() }) },
      responses: {
        200: json(z.object({ items: z.array(RecoveryPoint) }), 'Recovery points'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const filter = clean(c.req.valid('query'))
      return c.json({ items: await service().listRecoveryPoints(c.req.valid('param').vault, filter) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/recoveryPoints/{rp}',
      summary: 'Show a recovery point',
      request: { params: PR },
      responses: { 200: json(RecoveryPoint, 'The recovery point'), ...errorResponses },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      return c.json(await service().getRecoveryPoint(vault, rp), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/vaults/{vault}/recoveryPoints/{rp}',
      summary: 'Delete a recovery point (gc frees its space)',
      request: { params: PR },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      await service().deleteRecoveryPoint(vault, rp)
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/backups',
      summary:
        'Back up disk-store disks (snapshotted together; only the diff since the last recovery point is read) or a raw file under an --import-root of the service host; answers a job',
      request: {
        params: P,
        ...body(
          z.object({
            disks: z
              .array(
                DiskRefBody.extend({ lun: z.number().int().min(0).optional(), name: z.string().optional() }),
              )
              .optional(),
            path: z.string().optional(),
            item: z
              .string()
              .optional()
              .openapi({ description: 'Name of the protected item; default the file name' }),
            disk: z
              .string()
              .optional()
              .openapi({ description: 'Disk name inside the recovery point; default the file name' }),
            base: z
              .string()
              .optional()
              .openapi({ description: "'latest' (default), 'none' or a recovery point id" }),
            expiresAt: z.string().datetime().optional(),
          }),
        ),
      },
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      const { vault } = c.req.valid('param')
      const { disks, expiresAt, ...rest } = c.req.valid('json')
      const request: VaultBackupRequest = {
        ...clean(rest),
        ...(expiresAt ? { expiresAt: new Date(expiresAt) } : {}),
        ...(disks ? { disks: disks.map(({ lun, name, ...d }) => ({ ...d, ...clean({ lun, name }) })) } : {}),
      }
      return c.json(await service().backup(vault, request), 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/recoveryPoints/{rp}/restore',
      summary:
        'Restore a disk of a recovery point into a new (or, with overwrite, an existing) disk-store disk, or into a raw file (sparse) under an --export-root of the service host; answers a job',
      request: {
        params: PR,
        ...body(
          z.object({
            disk: z.string().optional(),
            target: DiskRefBody.optional(),
            path: z.string().optional(),
            overwrite: z.boolean().optional(),
          }),
        ),
      },
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      return c.json(await service().restore(vault, rp, clean(c.req.valid('json'))), 202)
    },
  )
}
