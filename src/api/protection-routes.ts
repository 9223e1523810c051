import { createRoute, z } from '@hono/zod-openapi'
import { type ProtectionService, parseDiskLabel } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { Job } from './_job-schemas.js'
import { decodeCursor, encodeCursor, pageLimit, paginate } from './_page.js'
import {
  BackupNowRequest,
  ChangePolicyRequest,
  Deleted,
  Policy,
  PolicyChangeRequest,
  PolicyList,
  PolicyRequest,
  ProtectedItem,
  ProtectedItemList,
  ProtectRequest,
  ResumeRequest,
  StopProtectionRequest,
  StopProtectionResult,
  Vm,
  VmList,
  VmRecoveryPoint,
  VmRecoveryPointList,
  VmRequest,
  VmRestoreRequest,
} from './_protection-schemas.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json, PageQuery } from './schemas.js'

// Protection resources, named after the reference: vms, vaults/{vault}/backupPolicies,
// vaults/{vault}/protectedItems/{vm}/recoveryPoints (their jobs are at /api/v1/jobs). Each route parses,
// calls one ProtectionService method and maps its answer; bodies are checked by the protection
// component (validateVm, validatePolicy) so that its messages name every problem at once.

const errors = errorResponses

/**
 * A body of the wrong shape for a VM or a policy answers the resource's own 400 code (VmInvalid,
 * PolicyInvalid) with every problem, as the service's own checks do.
 */
const invalid =
  (code: 'VmInvalid' | 'PolicyInvalid', what: string) =>
  (result: {
    success: boolean
    error?: { issues: { path: PropertyKey[]; message: string }[] }
  }): undefined => {
    if (result.success || !result.error) return undefined
    const problems = result.error.issues.map(
      (i) => `"${i.path.map(String).join('.') || 'body'}": ${i.message}`,
    )
    throw new CairnError(code, `Cannot accept ${what}: ${problems.join('; ')}`, { details: { problems } })
  }

const VmParam = z.object({ vm: z.string().min(1) })
const VaultParam = z.object({ vault: z.string().min(1) })
const PolicyParam = VaultParam.extend({ policy: z.string().min(1) })
const ItemParam = VaultParam.extend({ vm: z.string().min(1) })

/** Registers VM, policy, protected item and recovery point routes over the ProtectionService. */
export function registerProtectionRoutes(app: ApiApp, service: ProtectionService): void {
  // --- VMs ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vms',
      summary: 'Register a VM: size, OS, configuration, OS disk, data disks by LUN, temp disk, agent',
      request: body(VmRequest),
      responses: { 201: json(Vm, 'The VM'), ...errors },
    }),
    async (c) => c.json(redactVm(await service.registerVm(c.req.valid('json'))), 201),
    invalid('VmInvalid', 'the VM'),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms',
      summary: 'List VMs, by name',
      request: { query: PageQuery },
      responses: { 200: json(VmList, 'VMs'), ...errors },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, 'VMs')[0]
      const { vms, more } = await service.listVmsPage({ ...(after ? { after } : {}), limit: pageLimit(q) })
      const last = vms.at(-1)
      const items = vms.map(redactVm)
      return c.json(more && last ? { items, nextCursor: encodeCursor([last.name]) } : { items }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms/{vm}',
      summary: 'Show a VM',
      request: { params: VmParam },
      responses: { 200: json(Vm, 'The VM'), ...errors },
    }),
    async (c) => c.json(redactVm(await service.getVm(c.req.valid('param').vm)), 200),
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
      responses: { 200: json(ProtectedItem, 'The protected item'), ...errors },
    }),
    async (c) => c.json(await service.getItem(c.req.valid('param').vm), 200),
  )

  // --- Backup policies ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/backupPolicies',
      summary:
        'Create a backup policy (Standard daily/weekly or Enhanced hourly) within the reference bounds',
      request: { params: VaultParam, ...body(PolicyRequest) },
      responses: { 201: json(Policy, 'The policy'), ...errors },
    }),
    async (c) => {
      const vault = c.req.valid('param').vault
      return c.json(await service.createPolicy(vault, c.req.valid('json')), 201)
    },
    invalid('PolicyInvalid', 'the backup policy'),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/backupPolicies',
      summary: 'List the backup policies of a vault, by name',
      request: { params: VaultParam, query: PageQuery },
      responses: { 200: json(PolicyList, 'Policies'), ...errors },
    }),
    async (c) => {
      const policies = await service.listPolicies(c.req.valid('param').vault)
      return c.json(
        paginate(policies, (p) => [p.name], c.req.valid('query'), 'backup policies'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/backupPolicies/{policy}',
      summary: 'Show a backup policy',
      request: { params: PolicyParam },
      responses: { 200: json(Policy, 'The policy'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(await service.getPolicy(p.vault, p.policy), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/vaults/{vault}/backupPolicies/{policy}',
      summary: 'Change a backup policy (an Enhanced policy stays Enhanced)',
      request: { params: PolicyParam, ...body(PolicyChangeRequest) },
      responses: { 200: json(Policy, 'The policy'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(await service.updatePolicy(p.vault, p.policy, c.req.valid('json')), 200)
    },
    invalid('PolicyInvalid', 'the backup policy'),
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
      request: { params: VaultParam, ...body(ProtectRequest) },
      responses: {
        200: json(ProtectedItem, 'The protected item, changed'),
        201: json(ProtectedItem, 'The protected item, new'),
        ...errors,
      },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const vault = c.req.valid('param').vault
      const options: Parameters<ProtectionService['protect']>[1] = { vault, policy: b.policy }
      if (b.includedLuns) options.includedLuns = b.includedLuns.map((l) => labelToLun(l))
      if (b.includeFutureDisks !== undefined) options.includeFutureDisks = b.includeFutureDisks
      const { item, created } = await service.protect(b.vm, options)
      return created ? c.json(item, 201) : c.json(item, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems',
      summary: 'List the protected items of a vault, by VM name',
      request: { params: VaultParam, query: PageQuery },
      responses: { 200: json(ProtectedItemList, 'Protected items'), ...errors },
    }),
    async (c) => {
      const items = await service.listItems({ vault: c.req.valid('param').vault })
      return c.json(
        paginate(items, (i) => [i.vmName], c.req.valid('query'), 'protected items'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}',
      summary: 'Show the protection of a VM',
      request: { params: ItemParam },
      responses: { 200: json(ProtectedItem, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      return c.json(await service.getItem(p.vm, { vault: p.vault }), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}',
      summary: 'Change the policy of a protected item',
      request: { params: ItemParam, ...body(ChangePolicyRequest) },
      responses: { 200: json(ProtectedItem, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const item = await service.changePolicy(p.vm, c.req.valid('json').policy, { vault: p.vault })
      return c.json(item, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/stopProtection',
      summary:
        'Stop protection, retaining the backup data or deleting it (idempotent; completes when the vault or its points are gone)',
      request: { params: ItemParam, ...body(StopProtectionRequest) },
      responses: {
        200: json(
          StopProtectionResult,
          'The protected item, or {vmName, state: NotProtected, deletedPoints}',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const deleteData = c.req.valid('json').deleteData
      const r = await service.stopProtection(p.vm, { deleteData, vault: p.vault })
      return c.json(r.item ?? { vmName: r.vmName, state: r.state, deletedPoints: r.deletedPoints }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/resume',
      summary: 'Resume stopped protection, optionally under another policy',
      request: { params: ItemParam, ...body(ResumeRequest) },
      responses: { 200: json(ProtectedItem, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const item = await service.resume(p.vm, c.req.valid('json').policy, { vault: p.vault })
      return c.json(item, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints',
      summary: 'List the recovery points of a protected VM, oldest first',
      request: { params: ItemParam, query: PageQuery },
      responses: { 200: json(VmRecoveryPointList, 'Recovery points'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const points = (await service.listRecoveryPoints(p.vm, { vault: p.vault })).map((r) => ({
        ...r,
        vm: redactVm(r.vm),
      }))
      return c.json(
        paginate(points, (r) => [r.time, r.id], c.req.valid('query'), 'recovery points'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}',
      summary: 'Show a recovery point',
      request: { params: ItemParam.extend({ rp: z.string().min(1) }) },
      responses: { 200: json(VmRecoveryPoint, 'The recovery point'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const rp = await service.getRecoveryPoint(p.vm, p.rp, { vault: p.vault })
      return c.json({ ...rp, vm: redactVm(rp.vm) }, 200)
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
            'application/json': { schema: BackupNowRequest },
          },
          required: false,
        },
      },
      responses: { 202: json(Job, 'The started job'), ...errors },
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
        ...body(VmRestoreRequest),
      },
      responses: { 202: json(Job, 'The started job'), ...errors },
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
      if (b.targetAccount !== undefined || b.targetContainer !== undefined)
        request.target = {
          ...(b.targetAccount !== undefined ? { account: b.targetAccount } : {}),
          ...(b.targetContainer !== undefined ? { container: b.targetContainer } : {}),
        }
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
