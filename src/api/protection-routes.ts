import { createRoute, z } from '@hono/zod-openapi'
import { type ProtectionService, parseDiskLabel } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { JobSchema } from './job-routes.js'
import type { ApiApp } from './new-api-app.js'
import { body, ErrorBody, json } from './schemas.js'

// Protection resources, named after the reference: vms, vaults/{vault}/backupPolicies,
// vaults/{vault}/protectedItems/{vm}/recoveryPoints (their jobs are at /api/v1/jobs). Each route parses,
// calls one ProtectionService method and maps its answer; bodies are checked by the protection
// component (validateVm, validatePolicy) so that its messages name every problem at once.

const Json = z.record(z.string(), z.unknown()).openapi('Object')
const JsonList = z.object({ value: z.array(Json) }).openapi('List')
const Deleted = z.object({ deleted: z.boolean() })

const errors = {
  400: json(ErrorBody, 'Invalid request'),
  404: json(ErrorBody, 'Not found'),
  409: json(ErrorBody, 'Conflict'),
}

const VmParam = z.object({ vm: z.string().min(1) })
const VaultParam = z.object({ vault: z.string().min(1) })
const PolicyParam = VaultParam.extend({ policy: z.string().min(1) })
const ItemParam = VaultParam.extend({ vm: z.string().min(1) })

const ProtectBody = z
  .object({
    vm: z.string().min(1),
    policy: z.string().min(1),
    includedLuns: z
      .array(z.union([z.number().int().min(0).max(63), z.string().regex(/^(lun)?\d{1,2}$/)]))
      .optional(),
    includeFutureDisks: z.boolean().optional(),
  })
  .openapi('ProtectRequest')

/** Turns store records into plain JSON objects for the response schemas. */
const plain = (v: unknown) => v as Record<string, unknown>

/** Registers VM, policy, protected item and recovery point routes over the ProtectionService. */
export function registerProtectionRoutes(app: ApiApp, service: ProtectionService): void {
  // --- VMs ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vms',
      summary: 'Register a VM: size, OS, configuration, OS disk, data disks by LUN, temp disk, agent',
      request: body(Json),
      responses: { 201: json(Json, 'The VM'), ...errors },
    }),
    async (c) => c.json(plain(redactVm(await service.registerVm(c.req.valid('json')))), 201),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms',
      summary: 'List VMs',
      responses: { 200: json(JsonList, 'VMs') },
    }),
    async (c) => c.json({ value: (await service.listVms()).map((v) => plain(redactVm(v))) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms/{vm}',
      summary: 'Show a VM',
      request: { params: VmParam },
      responses: { 200: json(Json, 'The VM'), ...errors },
    }),
    async (c) => c.json(plain(redactVm(await service.getVm(c.req.valid('param').vm))), 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/vms/{vm}',
      summary: 'Forget a VM (its disks stay); refused while it has backup data',
      request: { params: VmParam },
      responses: { 200: json(Deleted, 'Deleted'), ...errors },
    }),
    async (c) => {
      await service.deleteVm(c.req.valid('param').vm)
      return c.json({ deleted: true }, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms/{vm}/protectedItem',
      summary: 'Show the protection of a VM, whichever vault holds it',
      request: { params: VmParam },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => c.json(plain(await service.getItem(c.req.valid('param').vm)), 200),
  )

  // --- Backup policies ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/backupPolicies',
      summary:
        'Create a backup policy (Standard daily/weekly or Enhanced hourly) within the reference bounds',
      request: { params: VaultParam, ...body(Json) },
      responses: { 201: json(Json, 'The policy'), ...errors },
    }),
    async (c) => {
      const vault = c.req.valid('param').vault
      return c.json(plain(await service.createPolicy(vault, c.req.valid('json'))), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/backupPolicies',
      summary: 'List the backup policies of a vault',
      request: { params: VaultParam },
      responses: { 200: json(JsonList, 'Policies') },
    }),
    async (c) => c.json({ value: (await service.listPolicies(c.req.valid('param').vault)).map(plain) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/backupPolicies/{policy}',
      summary: 'Show a backup policy',
      request: { params: PolicyParam },
      responses: { 200: json(Json, 'The policy'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(plain(await service.getPolicy(p.vault, p.policy)), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/vaults/{vault}/backupPolicies/{policy}',
      summary: 'Change a backup policy (an Enhanced policy stays Enhanced)',
      request: { params: PolicyParam, ...body(Json) },
      responses: { 200: json(Json, 'The policy'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(plain(await service.updatePolicy(p.vault, p.policy, c.req.valid('json'))), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/vaults/{vault}/backupPolicies/{policy}',
      summary: 'Delete a backup policy no item uses',
      request: { params: PolicyParam },
      responses: { 200: json(Deleted, 'Deleted'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await service.deletePolicy(p.vault, p.policy)
      return c.json({ deleted: true }, 200)
    },
  )

  // --- Protected items ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems',
      summary:
        'Enable protection of a VM with a policy; selective disks by LUN (the OS disk always). Idempotent: protecting a protected VM again in its vault applies the policy and disks (200); an item stranded in a deleted vault moves here',
      request: { params: VaultParam, ...body(ProtectBody) },
      responses: { 200: json(Json, 'The protected item'), 201: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const vault = c.req.valid('param').vault
      const options: Parameters<ProtectionService['protect']>[1] = { vault, policy: b.policy }
      if (b.includedLuns) options.includedLuns = b.includedLuns.map((l) => labelToLun(l))
      if (b.includeFutureDisks !== undefined) options.includeFutureDisks = b.includeFutureDisks
      const { item, created } = await service.protect(b.vm, options)
      return c.json(plain(item), created ? 201 : 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems',
      summary: 'List the protected items of a vault',
      request: { params: VaultParam },
      responses: { 200: json(JsonList, 'Protected items') },
    }),
    async (c) =>
      c.json({ value: (await service.listItems({ vault: c.req.valid('param').vault })).map(plain) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}',
      summary: 'Show the protection of a VM',
      request: { params: ItemParam },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(plain(await service.getItem(p.vm, { vault: p.vault })), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}',
      summary: 'Change the policy of a protected item',
      request: { params: ItemParam, ...body(z.object({ policy: z.string().min(1) })) },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const item = await service.changePolicy(p.vm, c.req.valid('json').policy, { vault: p.vault })
      return c.json(plain(item), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/stopProtection',
      summary:
        'Stop protection, retaining the backup data or deleting it (idempotent; completes when the vault or its points are gone)',
      request: { params: ItemParam, ...body(z.object({ deleteData: z.boolean() })) },
      responses: {
        200: json(Json, 'The protected item, or {vmName, state: NotProtected, deletedPoints}'),
        ...errors,
      },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const deleteData = c.req.valid('json').deleteData
      const r = await service.stopProtection(p.vm, { deleteData, vault: p.vault })
      return c.json(
        plain(r.item ?? { vmName: r.vmName, state: r.state, deletedPoints: r.deletedPoints }),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/resume',
      summary: 'Resume stopped protection, optionally under another policy',
      request: { params: ItemParam, ...body(z.object({ policy: z.string().min(1).optional() })) },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const item = await service.resume(p.vm, c.req.valid('json').policy, { vault: p.vault })
      return c.json(plain(item), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints',
      summary: 'List the recovery points of a protected VM, oldest first',
      request: { params: ItemParam },
      responses: { 200: json(JsonList, 'Recovery points'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const points = await service.listRecoveryPoints(p.vm, { vault: p.vault })
      return c.json({ value: points.map((r) => plain({ ...r, vm: redactVm(r.vm) })) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}',
      summary: 'Show a recovery point',
      request: { params: ItemParam.extend({ rp: z.string().min(1) }) },
      responses: { 200: json(Json, 'The recovery point'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const rp = await service.getRecoveryPoint(p.vm, p.rp, { vault: p.vault })
      return c.json(plain({ ...rp, vm: redactVm(rp.vm) }), 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/backup',
      summary: 'Back up now (on-demand, own expiry, default 30 days); answers 202 with the job',
      request: {
        params: ItemParam,
        body: {
          content: {
            'application/json': {
              schema: z.object({ expiresAt: z.string().datetime({ offset: true }).optional() }),
            },
          },
          required: false,
        },
      },
      responses: { 202: json(JobSchema, 'The started job'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const text = await c.req.text()
      const raw = text.trim() === '' ? {} : (JSON.parse(text) as { expiresAt?: string })
      const options: { vault: string; expiresAt?: Date } = { vault: p.vault }
      if (raw.expiresAt !== undefined) options.expiresAt = new Date(raw.expiresAt)
      return c.json((await service.startBackup(p.vm, options)).job, 202)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/restore',
      summary:
        'Restore: AlternateLocation (a new VM), RestoreDisks (new disks plus the saved configuration) or OriginalLocation (replace the VM disks, snapshotting them first); 202 with the job',
      request: {
        params: ItemParam.extend({ rp: z.string().min(1) }),
        ...body(
          z.object({
            recoveryType: z.enum(['AlternateLocation', 'RestoreDisks', 'OriginalLocation']),
            targetVmName: z.string().min(1).optional(),
            diskPrefix: z.string().min(1).optional(),
            disks: z
              .array(z.string())
              .optional()
              .openapi({ description: 'RestoreDisks: which disks, by label ("os", "lun0", …); default all' }),
            luns: z
              .array(z.union([z.number().int(), z.string()]))
              .optional()
              .openapi({ description: 'The older form of "disks" (0, "os"), still accepted' }),
          }),
        ),
      },
      responses: { 202: json(JobSchema, 'The started job'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const b = c.req.valid('json')
      const request: Parameters<ProtectionService['restore']>[2] = {
        vault: p.vault,
        recoveryType: b.recoveryType,
      }
      if (b.targetVmName !== undefined) request.targetVmName = b.targetVmName
      if (b.diskPrefix !== undefined) request.diskPrefix = b.diskPrefix
      const chosen = b.disks ?? b.luns
      if (chosen) request.disks = chosen.map((d) => parseDiskLabel(d, 'disk'))
      return c.json((await service.restore(p.vm, p.rp, request)).job, 202)
    },
  )
}

/** A data-disk LUN given as a number, "N" or "lunN". */
function labelToLun(v: number | string): number {
  const lun = parseDiskLabel(v, 'LUN')
  if (lun === 'os')
    throw new CairnError('InvalidRequest', 'The OS disk is always included; name data disks only')
  return lun
}

/** The agent token never leaves the service. */
function redactVm<T extends { agent?: { url: string; token: string } }>(vm: T): T {
  return vm.agent ? { ...vm, agent: { url: vm.agent.url, token: '***' } } : vm
}
