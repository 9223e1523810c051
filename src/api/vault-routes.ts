import { createRoute, z } from '@hono/zod-openapi'
import type { VaultBackupRequest } from '../protection/index.js'
import type { VaultCredentials } from '../vault/index.js'
import { clean } from './_clean.js'
import { followJob } from './_follow-job.js'
import { Job } from './_job-schemas.js'
import { paginate } from './_page.js'
import {
  BackupRequest,
  CreateVaultRequest,
  PointParams,
  PruneReport,
  PruneRequest,
  RecoveryPoint,
  RecoveryPointList,
  RestoreRequest,
  Vault,
  VaultCopyRequest,
  VaultCredentialsRequest,
  VaultDeleted,
  VaultList,
  VaultParams,
  VaultUsage,
  VerifyRequest,
} from './_vault-schemas.js'
import { type ApiContext, vaultServiceOf } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json, PageQuery } from './schemas.js'

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
  const service = () => vaultServiceOf(ctx)
  const P = VaultParams
  const PR = PointParams

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults',
      summary: 'List vaults, by name',
      request: { query: PageQuery },
      responses: { 200: json(VaultList, 'Vaults'), ...errorResponses },
    }),
    async (c) =>
      c.json(
        paginate(await service().list(), (v) => [v.name], c.req.valid('query'), 'vaults'),
        200,
      ),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults',
      summary: 'Create a vault (encrypted when a passphrase or key file is given), or attach an existing one',
      request: body(CreateVaultRequest),
      responses: { 201: json(Vault, 'The vault'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const enc = credentials(b)
      const info = await service().create(b.name, {
        ...(b.location ? { location: b.location } : {}),
        ...(enc ? { encryption: enc } : {}),
        ...(b.attach ? { attach: true } : {}),
        ...(b.sameKeyAs ? { sameKeyAs: b.sameKeyAs } : {}),
        ...(b.redundancy ? { redundancy: b.redundancy } : {}),
        ...(b.pair ? { pair: b.pair } : {}),
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
        200: json(VaultDeleted, 'Deleted'),
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
      request: { params: P, ...body(VaultCredentialsRequest) },
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
      request: { params: P, ...body(VaultCredentialsRequest) },
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
        200: json(VaultUsage, 'Usage'),
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
        ...body(VerifyRequest),
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
        ...body(PruneRequest),
      },
      responses: {
        200: json(PruneReport, 'Prune report'),
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
      request: { params: P, query: PageQuery.extend({ item: z.string().optional() }) },
      responses: { 200: json(RecoveryPointList, 'Recovery points'), ...errorResponses },
    }),
    async (c) => {
      const { item, ...q } = c.req.valid('query')
      const points = await service().listRecoveryPoints(c.req.valid('param').vault, clean({ item }))
      return c.json(
        paginate(points, (rp) => [rp.createdAt, rp.id], q, 'recovery points'),
        200,
      )
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
      summary:
        'Delete a recovery point (gc frees its space): soft-deleted while soft delete is on and its retention runs (listed under softDeletedRecoveryPoints until purged); 409 RetentionLocked while an immutable vault retains it',
      request: { params: PR },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      await service().deletePoint(vault, rp)
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
        ...body(BackupRequest),
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
        ...body(RestoreRequest),
      },
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      const { vault, rp } = c.req.valid('param')
      return c.json(await service().restore(vault, rp, clean(c.req.valid('json'))), 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaultCopies',
      summary:
        "Copy recovery points from one vault into another (every point, a VM's, or the ones named): only the chunks the target lacks, as ciphertext when both vaults have the same key, each point committed after its chunks; answers a job (kind copy) that resumes after a restart",
      request: body(VaultCopyRequest),
      responses: { 202: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => {
      const { from, to, vm, points, ...rules } = c.req.valid('json')
      const retention = clean(rules)
      const job = await service().copy({
        from,
        to,
        ...clean({ vm, points }),
        ...(Object.keys(retention).length > 0 ? { retention } : {}),
      })
      return c.json(job, 202)
    },
  )
}
