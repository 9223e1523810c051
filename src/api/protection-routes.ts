import { createRoute, z } from '@hono/zod-openapi'
import type { JobStatus, JobType, ProtectionStore } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import type { ApiApp } from './new-api-app.js'

// Protection resources, named after the reference: vms, vaults/{vault}/backupPolicies,
// vaults/{vault}/protectedItems/{vm}/recoveryPoints, backupJobs. Bodies are checked by the protection
// component (validateVm, validatePolicy) so that its messages name every problem at once.

const Json = z.record(z.string(), z.unknown()).openapi('Object')
const JsonList = z.object({ value: z.array(Json) }).openapi('List')
const Deleted = z.object({ deleted: z.boolean() })
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).openapi('Error')

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})
const errors = {
  400: json(ErrorBody, 'Invalid request'),
  404: json(ErrorBody, 'Not found'),
  409: json(ErrorBody, 'Conflict'),
}
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true as const },
})

const VmParam = z.object({ vm: z.string().min(1) })
const VaultParam = z.object({ vault: z.string().min(1) })
const PolicyParam = VaultParam.extend({ policy: z.string().min(1) })
const ItemParam = VaultParam.extend({ vm: z.string().min(1) })

const ProtectBody = z
  .object({
    vm: z.string().min(1),
    policy: z.string().min(1),
    includedLuns: z.array(z.number().int().min(0).max(63)).optional(),
    includeFutureDisks: z.boolean().optional(),
  })
  .openapi('ProtectRequest')

/** Turns store records into plain JSON objects for the response schemas. */
const plain = (v: unknown) => v as Record<string, unknown>

/** Registers VM, policy, protected item, recovery point and job routes over a ProtectionStore. */
export function registerProtectionRoutes(app: ApiApp, store: ProtectionStore): void {
  // --- VMs ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vms',
      summary: 'Register a VM: size, OS, configuration, OS disk, data disks by LUN, temp disk, agent',
      request: body(Json),
      responses: { 201: json(Json, 'The VM'), ...errors },
    }),
    async (c) => c.json(plain(redactVm(await store.createVm(c.req.valid('json')))), 201),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms',
      summary: 'List VMs',
      responses: { 200: json(JsonList, 'VMs') },
    }),
    async (c) => c.json({ value: (await store.listVms()).map((v) => plain(redactVm(v))) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vms/{vm}',
      summary: 'Show a VM',
      request: { params: VmParam },
      responses: { 200: json(Json, 'The VM'), ...errors },
    }),
    async (c) => c.json(plain(redactVm(await store.getVm(c.req.valid('param').vm))), 200),
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
      await store.deleteVm(c.req.valid('param').vm)
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
    async (c) => c.json(plain(await store.getItem(c.req.valid('param').vm)), 200),
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
    async (c) =>
      c.json(plain(await store.createPolicy(c.req.valid('param').vault, c.req.valid('json'))), 201),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/backupPolicies',
      summary: 'List the backup policies of a vault',
      request: { params: VaultParam },
      responses: { 200: json(JsonList, 'Policies') },
    }),
    async (c) => c.json({ value: (await store.listPolicies(c.req.valid('param').vault)).map(plain) }, 200),
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
      return c.json(plain(await store.getPolicy(p.vault, p.policy)), 200)
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
      return c.json(plain(await store.updatePolicy(p.vault, p.policy, c.req.valid('json'))), 200)
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
      await store.deletePolicy(p.vault, p.policy)
      return c.json({ deleted: true }, 200)
    },
  )

  // --- Protected items ---
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems',
      summary: 'Enable protection of a VM with a policy; selective disks by LUN (the OS disk always)',
      request: { params: VaultParam, ...body(ProtectBody) },
      responses: { 201: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const options: Parameters<ProtectionStore['protect']>[1] = {
        vault: c.req.valid('param').vault,
        policy: b.policy,
      }
      if (b.includedLuns) options.includedLuns = b.includedLuns
      if (b.includeFutureDisks !== undefined) options.includeFutureDisks = b.includeFutureDisks
      return c.json(plain(await store.protect(b.vm, options)), 201)
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
      c.json({ value: (await store.listItems({ vault: c.req.valid('param').vault })).map(plain) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}',
      summary: 'Show the protection of a VM',
      request: { params: ItemParam },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => c.json(plain(await itemIn(store, c.req.valid('param'))), 200),
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
      await itemIn(store, p)
      return c.json(plain(await store.changePolicy(p.vm, c.req.valid('json').policy)), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/protectedItems/{vm}/stopProtection',
      summary: 'Stop protection, retaining the backup data (deleting it needs the vault engine)',
      request: { params: ItemParam, ...body(z.object({ deleteData: z.boolean() })) },
      responses: { 200: json(Json, 'The protected item'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await itemIn(store, p)
      if (c.req.valid('json').deleteData) {
        const points = await store.listRecoveryPoints(p.vm)
        if (points.length > 0) {
          throw new CairnError(
            'ServiceUnavailable',
            `Cannot delete the backup data of VM "${p.vm}": ${points.length} recovery point(s) live in the snapshot tier and the vault, and this service has no vault engine wired yet; stop with deleteData false`,
          )
        }
        await store.stopProtection(p.vm, { deleteData: true })
        await store.removeItem(p.vm)
        return c.json({ vmName: p.vm, state: 'NotProtected' }, 200)
      }
      return c.json(plain((await store.stopProtection(p.vm, { deleteData: false })).item), 200)
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
      await itemIn(store, p)
      return c.json(plain(await store.resume(p.vm, c.req.valid('json').policy)), 200)
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
      await itemIn(store, p)
      return c.json(
        { value: (await store.listRecoveryPoints(p.vm)).map((r) => plain({ ...r, vm: redactVm(r.vm) })) },
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
      responses: { 200: json(Json, 'The recovery point'), ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param')
      const item = await itemIn(store, p)
      const rp = await store.getRecoveryPoint(p.rp)
      if (rp.itemId !== item.id) {
        throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${p.rp}" of VM "${p.vm}"`)
      }
      return c.json(plain({ ...rp, vm: redactVm(rp.vm) }), 200)
    },
  )

  // --- Jobs ---
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/backupJobs',
      summary: 'List backup, restore and maintenance jobs, newest first',
      request: {
        query: z.object({
          status: z
            .enum(['InProgress', 'Completed', 'CompletedWithWarnings', 'Failed', 'Cancelling', 'Cancelled'])
            .optional(),
          type: z.enum(['Backup', 'Restore', 'DeleteBackupData', 'Maintenance']).optional(),
          entity: z.string().optional(),
          since: z.string().datetime({ offset: true }).optional(),
          limit: z.coerce.number().int().min(1).max(1000).optional(),
        }),
      },
      responses: { 200: json(JsonList, 'Jobs'), ...errors },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const filter: Parameters<ProtectionStore['listJobs']>[0] = {}
      if (q.status) filter.status = q.status as JobStatus
      if (q.type) filter.type = q.type as JobType
      if (q.entity) filter.entity = q.entity
      if (q.since) filter.since = new Date(q.since)
      if (q.limit) filter.limit = q.limit
      return c.json({ value: (await store.listJobs(filter)).map(plain) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/backupJobs/{id}',
      summary: 'Show a job: status, phase, progress (bytes, percent, ETA), times, error',
      request: { params: z.object({ id: z.string().min(1) }) },
      responses: { 200: json(Json, 'The job'), ...errors },
    }),
    async (c) => c.json(plain(await store.getJob(c.req.valid('param').id)), 200),
  )
}

async function itemIn(store: ProtectionStore, p: { vault: string; vm: string }) {
  const item = await store.getItem(p.vm)
  if (item.vault !== p.vault) {
    throw new CairnError(
      'ProtectedItemNotFound',
      `Cannot find VM "${p.vm}" in vault "${p.vault}": it is protected in vault "${item.vault}"`,
    )
  }
  return item
}

/** The agent token never leaves the service. */
function redactVm<T extends { agent?: { url: string; token: string } }>(vm: T): T {
  return vm.agent ? { ...vm, agent: { url: vm.agent.url, token: '***' } } : vm
}
