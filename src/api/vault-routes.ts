import { createRoute, z } from '@hono/zod-openapi'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { backupDisks, type JobContext, type JobService, restoreToDisk } from '../protection/index.js'
import { CairnError, type HostPaths } from '../util/index.js'
import {
  fileSink,
  fileSource,
  type VaultCredentials,
  type VaultProgress,
  type VaultRegistry,
} from '../vault/index.js'
import { runAsJob } from './_run-as-job.js'
import type { ApiContext } from './api-context.js'
import { JobSchema } from './job-routes.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses } from './schemas.js'

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

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
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
  const vaults = (): VaultRegistry => {
    if (!ctx.vaults) throw new CairnError('ServiceUnavailable', 'This service has no vault registry')
    return ctx.vaults
  }
  const jobs = (): JobService => {
    if (!ctx.jobs) throw new CairnError('ServiceUnavailable', 'This service has no job service')
    return ctx.jobs
  }
  /** Starts a vault job and answers it (202). */
  const startJob = async (
    spec: { kind: 'backup' | 'restore' | 'verify' | 'gc'; vault: string; resource?: string },
    body: (ctx: JobContext) => Promise<unknown>,
  ) => {
    const started = await jobs().start(
      { kind: spec.kind, vault: spec.vault, resource: spec.resource ?? `vaults/${spec.vault}` },
      body,
    )
    return started.job
  }
  const hostPaths = (): HostPaths => {
    if (!ctx.hostPaths)
      throw new CairnError('PathNotAllowed', 'Cannot use a host path: this service has no host-path roots')
    return ctx.hostPaths
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
    async (c) => c.json({ items: await vaults().list() }, 200),
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
      const info = await vaults().create(b.name, {
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
    async (c) => c.json(await vaults().get(c.req.valid('param').vault), 200),
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
      const { left } = await vaults().remove(vault, { deleteData })
      return c.json({ name: vault, dataDeleted: deleteData, left }, 200)
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
      if (!creds)
        throw new CairnError('InvalidRequest', 'Cannot unlock the vault: give passphrase or keyFile')
      return c.json(await vaults().unlock(c.req.valid('param').vault, creds), 200)
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
      const { vault } = c.req.valid('param')
      const creds = credentials(c.req.valid('json'))
      if (!creds) throw new CairnError('InvalidRequest', 'Cannot change the key: give passphrase or keyFile')
      await (await vaults().open(vault)).changeKey(creds)
      return c.json(await vaults().get(vault), 200)
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
    async (c) => c.json(await (await vaults().open(c.req.valid('param').vault)).usage(), 200),
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
      const { vault } = c.req.valid('param')
      const { sample, readData } = c.req.valid('json')
      const v = await vaults().open(vault)
      const job = await startJob({ kind: 'verify', vault }, (ctl) =>
        v.verify({
          signal: ctl.signal,
          onProgress: progressTo(ctl),
          ...(sample !== undefined ? { sample } : {}),
          ...(readData ? { readData } : {}),
        }),
      )
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
      const { vault } = c.req.valid('param')
      const v = await vaults().open(vault)
      // A prune is quick (it deletes manifests): it runs as a job, kept in the history, and answers its report.
      // The points of protected VMs follow their policy: left alone unless includePolicyPoints.
      const report = await runAsJob(ctx, c, { kind: 'prune', vault, resource: `vaults/${vault}` }, () =>
        v.prune({
          policy,
          ...(item !== undefined ? { item } : {}),
          ...(dryRun ? { dryRun } : {}),
          ...(includePolicyPoints ? {} : { leaveKinds: ['vm'] }),
        }),
      )
      // VM points removed on request: their recovery points lose the vault tier now, not at next read.
      if (includePolicyPoints && !dryRun && report.removed.length > 0)
        await ctx.backups?.reconcileVault(vault)
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
      const { vault } = c.req.valid('param')
      const v = await vaults().open(vault)
      return c.json(await startJob({ kind: 'gc', vault }, (ctl) => v.gc({ signal: ctl.signal })), 202)
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
      const { item } = c.req.valid('query')
      const v = await vaults().open(c.req.valid('param').vault)
      return c.json({ items: await v.listRecoveryPoints(item !== undefined ? { item } : {}) }, 200)
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
      return c.json(await (await vaults().open(vault)).getRecoveryPoint(rp), 200)
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
      await (await vaults().open(vault)).deleteRecoveryPoint(rp)
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
      const b = c.req.valid('json')
      const v = await vaults().open(vault)
      if (b.disks && b.path)
        throw new CairnError('InvalidRequest', 'Cannot back up: give either disks or path, not both')
      if (b.disks) {
        const store = ctx.diskStore
        const disks = b.disks
        if (disks.length === 0) throw new CairnError('InvalidRequest', 'Cannot back up: disks is empty')
        for (const d of disks) store.getDisk(d)
        const item = b.item ?? disks[0]!.disk
        const job = await startJob({ kind: 'backup', vault }, (ctl) =>
          backupDisks(
            v,
            store,
            disks.map((d) => ({
              ref: { account: d.account, container: d.container, disk: d.disk },
              ...(d.name ? { name: d.name } : {}),
              ...(d.lun !== undefined ? { lun: d.lun } : {}),
            })),
            {
              item: { kind: 'disks', name: item, config: { disks } },
              ...(b.base === 'none' ? { base: null } : b.base && b.base !== 'latest' ? { base: b.base } : {}),
              ...(b.expiresAt ? { expiresAt: new Date(b.expiresAt) } : {}),
              signal: ctl.signal,
              onProgress: progressTo(ctl),
            },
          ),
        )
        return c.json(job, 202)
      }
      if (!b.path) throw new CairnError('InvalidRequest', 'Cannot back up: give disks or path')
      const path = await hostPaths().checkImport(b.path)
      const fileName = path.split('/').pop() || 'disk'
      const item = b.item ?? fileName
      const job = await startJob({ kind: 'backup', vault }, async (ctl) => {
        let base: string | undefined
        if (b.base === undefined || b.base === 'latest') base = (await v.latestRecoveryPoint(item))?.id
        else if (b.base !== 'none') base = b.base
        const source = await fileSource(path, { name: b.disk ?? fileName })
        try {
          return await v.backup({
            item: { kind: 'file', name: item, config: { path } },
            sources: [source],
            ...(base ? { base } : {}),
            ...(b.expiresAt ? { expiresAt: new Date(b.expiresAt) } : {}),
            signal: ctl.signal,
            onProgress: progressTo(ctl),
          })
        } finally {
          await source.close?.()
        }
      })
      return c.json(job, 202)
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
      const b = c.req.valid('json')
      const v = await vaults().open(vault)
      const point = await v.getRecoveryPoint(rp)
      const disk = b.disk ?? point.disks[0]?.name
      const d = point.disks.find((x) => x.name === disk)
      if (!d) {
        throw new CairnError(
          'RecoveryPointDiskNotFound',
          `Cannot restore: recovery point "${rp}" holds no disk "${disk ?? ''}"`,
        )
      }
      if (b.target && b.path)
        throw new CairnError('InvalidRequest', 'Cannot restore: give either target or path, not both')
      if (b.target) {
        const target = b.target
        const resource = `vaults/${vault}/recoveryPoints/${rp}`
        const job = await startJob({ kind: 'restore', vault, resource }, async (ctl) => {
          // A disk this restore creates is named in the job first: if the service dies, the next
          // start removes it rather than leave half a disk.
          if (!diskExists(ctx.diskStore, target)) {
            ctl.details.createdDisks = [target]
            await ctl.phase('Restore')
          }
          const result = await restoreToDisk(v, ctx.diskStore, rp, d.name, target, {
            signal: ctl.signal,
            onProgress: progressTo(ctl),
            ...(b.overwrite ? { overwrite: true } : {}),
          })
          delete ctl.details.createdDisks
          return result
        })
        return c.json(job, 202)
      }
      if (!b.path) throw new CairnError('InvalidRequest', 'Cannot restore: give target or path')
      const path = b.path
      const paths = hostPaths()
      // The rules are checked before the job starts, so a refusal is the answer, not a failed job.
      await paths.checkExport(path, { ...(b.overwrite ? { overwrite: true } : {}) })
      const resource = `vaults/${vault}/recoveryPoints/${rp}`
      const job = await startJob({ kind: 'restore', vault, resource }, (ctl) =>
        paths.export(path, { ...(b.overwrite ? { overwrite: true } : {}) }, async (temporary) => {
          const sink = await fileSink(temporary, { size: d.size })
          try {
            return await v.restore(rp, d.name, sink, { signal: ctl.signal, onProgress: progressTo(ctl) })
          } finally {
            await sink.close?.()
          }
        }),
      )
      return c.json(job, 202)
    },
  )
}

/** Vault progress as job progress. */
function progressTo(ctl: JobContext): (p: VaultProgress) => void {
  return (p) => ctl.progress({ phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal })
}

function diskExists(store: DiskStore, ref: DiskRef): boolean {
  try {
    store.getDisk(ref)
    return true
  } catch (err) {
    if (err instanceof CairnError && err.code === 'DiskNotFound') return false
    throw err
  }
}
