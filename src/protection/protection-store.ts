import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Catalog, CatalogSchema } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import { PolicyStore } from './_policy-store.js'
import {
  RecoveryPointStore,
  type RecoveryPointTier,
  type VmRecoveryPoint,
  type VmRecoveryPointDisk,
} from './_recovery-point-store.js'
import { toVm, vmDiskRows } from './_vm-rows.js'
import type { BackupPolicy } from './policy.js'
import type { SchedulableItem, SchedulerStore } from './scheduler.js'
import { type DiskSelection, type SelectedDisk, selectDisks, type Vm, type VmSpec } from './vm.js'

export type { RecoveryPointTier, VmRecoveryPoint, VmRecoveryPointDisk } from './_recovery-point-store.js'

/**
 * Protection state of an item, after the reference; `Replica`: a VM known only from the replicated
 * points of a GRS vault on this site (replica-items.ts), never a catalog row.
 */
export type ProtectionState = 'Protected' | 'ProtectionStopped' | 'Replica'

/** A VM under protection in a vault. */
export interface ProtectedItem extends DiskSelection {
  id: string
  vmName: string
  vmId: string
  vault: string
  /** Absent once protection stopped with its data deleted. */
  policyName?: string
  state: ProtectionState
  /** Data disks known when protection was set or last changed (for includeFutureDisks). */
  knownLuns: number[]
  protectedSince: string
  lastBackupAt?: string
  lastBackupStatus?: string
}

/**
 * The protection records in the catalog: VMs, backup policies, protected items and recovery points
 * (their jobs are the JobStore's). Also the scheduler's store (items with their policies and last slots).
 * Persistence only: it takes descriptions already checked (validateVm, validatePolicy) and keeps
 * records whole (a name once, a point only of an item, an item only while no point needs it); the
 * rules of protection are the ProtectionService's.
 */
export class ProtectionStore implements SchedulerStore {
  readonly #catalog: Catalog
  readonly #now: () => number
  readonly #points: RecoveryPointStore
  readonly #policies: PolicyStore

  constructor(catalog: Catalog, options: { now?: () => number } = {}) {
    this.#catalog = catalog
    this.#now = options.now ?? Date.now
    this.#points = new RecoveryPointStore(catalog, () => this.#iso())
    this.#policies = new PolicyStore(catalog, () => this.#iso())
  }

  get #db() {
    return this.#catalog.db
  }

  #iso(): string {
    return new Date(this.#now()).toISOString()
  }

  // --- VMs ---

  /** Records a VM (a checked description, see validateVm); its disks are disk-store disks. */
  /** Records a VM; `host`: the process whose disk store holds its disks (on a shared catalog). */
  async createVm(spec: VmSpec, options: { host?: string } = {}): Promise<Vm> {
    if (await this.#findVm(spec.name))
      throw new CairnError('VmAlreadyExists', `Cannot create VM "${spec.name}": it exists`)
    const now = this.#iso()
    const id = randomUUID()
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('vms')
        .values({
          id,
          name: spec.name,
          vm_size: spec.vmSize,
          os_type: spec.osType,
          os_name: spec.osName ?? null,
          configuration_json: JSON.stringify(spec.configuration),
          agent_url: spec.agent?.url ?? null,
          agent_token: spec.agent?.token ?? null,
          // Set only for a QGA VM: a VM without one writes the columns of every catalog version since 1.
          ...(spec.qga === undefined ? {} : { qga_channel: spec.qga }),
          ...(options.host === undefined ? {} : { host: options.host }),
          created_at: now,
          updated_at: now,
        })
        .execute()
      await trx.insertInto('vm_disks').values(vmDiskRows(id, spec)).execute()
    })
    return this.getVm(spec.name)
  }

  async getVm(name: string): Promise<Vm> {
    const vm = await this.#findVm(name)
    if (!vm) throw new CairnError('VmNotFound', `Cannot find VM "${name}": no VM has this name`)
    return vm
  }

  async listVms(): Promise<Vm[]> {
    const rows = await this.#db.selectFrom('vms').selectAll().orderBy('name').execute()
    const byVm = new Map<string, CatalogSchema['vm_disks'][]>()
    for (const d of await this.#db.selectFrom('vm_disks').selectAll().execute()) {
      const list = byVm.get(d.vm_id)
      if (list) list.push(d)
      else byVm.set(d.vm_id, [d])
    }
    return rows.map((r) => toVm(r, byVm.get(r.id) ?? []))
  }

  /**
   * One page of the VMs by name, read as a page from the catalog (keyset: the names after `after`, at
   * most `limit`): `more` says whether a next page exists. Names compare byte by byte on both catalogs
   * (PostgreSQL's `COLLATE "C"`, SQLite's default), the order of the API's cursors.
   */
  async listVmsPage(options: { after?: string; limit: number }): Promise<{ vms: Vm[]; more: boolean }> {
    const name = this.#catalog.dialect === 'postgres' ? sql<string>`name collate "C"` : sql<string>`name`
    let q = this.#db
      .selectFrom('vms')
      .selectAll()
      .orderBy(name)
      .limit(options.limit + 1)
    if (options.after !== undefined) q = q.where(name, '>', options.after)
    const rows = await q.execute()
    const more = rows.length > options.limit
    const page = rows.slice(0, options.limit)
    const byVm = new Map<string, CatalogSchema['vm_disks'][]>()
    if (page.length > 0)
      for (const d of await this.#db
        .selectFrom('vm_disks')
        .selectAll()
        .where(
          'vm_id',
          'in',
          page.map((r) => r.id),
        )
        .execute()) {
        const list = byVm.get(d.vm_id)
        if (list) list.push(d)
        else byVm.set(d.vm_id, [d])
      }
    return { vms: page.map((r) => toVm(r, byVm.get(r.id) ?? [])), more }
  }

  /** Replaces a VM's disks (restore "replace existing", attaching a disk); `spec` is its checked description. */
  async setVmDisks(name: string, spec: VmSpec): Promise<Vm> {
    const vm = await this.getVm(name)
    await this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('vm_disks').where('vm_id', '=', vm.id).execute()
      await trx.insertInto('vm_disks').values(vmDiskRows(vm.id, spec)).execute()
      await trx.updateTable('vms').set({ updated_at: this.#iso() }).where('id', '=', vm.id).execute()
    })
    return this.getVm(name)
  }

  /**
   * Removes a VM's record (not its disks) with its protected item; refused while recovery points of it
   * remain (they would lose their VM).
   */
  async deleteVm(name: string): Promise<void> {
    const vm = await this.getVm(name)
    const item = await this.#db
      .selectFrom('protected_items')
      .select(['id'])
      .where('vm_id', '=', vm.id)
      .executeTakeFirst()
    if (item) {
      const points = await this.#points.countOfItem(item.id)
      if (points > 0)
        throw new CairnError(
          'VmIsProtected',
          `Cannot delete VM "${name}": ${points} recovery point(s) remain; delete them with protection stop ${name} --delete-data`,
        )
    }
    await this.#db.transaction().execute(async (trx) => {
      if (item) await trx.deleteFrom('protected_items').where('id', '=', item.id).execute()
      await trx.deleteFrom('vms').where('id', '=', vm.id).execute()
    })
  }

  async #findVm(name: string): Promise<Vm | undefined> {
    const row = await this.#db.selectFrom('vms').selectAll().where('name', '=', name).executeTakeFirst()
    if (!row) return undefined
    const disks = await this.#db.selectFrom('vm_disks').selectAll().where('vm_id', '=', row.id).execute()
    return toVm(row, disks)
  }

  // --- Policies (PolicyStore) ---

  /** Records a backup policy of a vault (a checked one, see validatePolicy); one name per vault. */
  createPolicy(vault: string, policy: BackupPolicy): Promise<BackupPolicy> {
    return this.#policies.create(vault, policy)
  }

  getPolicy(vault: string, name: string): Promise<BackupPolicy> {
    return this.#policies.get(vault, name)
  }

  listPolicies(vault?: string): Promise<(BackupPolicy & { vault: string })[]> {
    return this.#policies.list(vault)
  }

  /** Replaces the definition of a policy (a checked one named `name`). */
  updatePolicy(vault: string, name: string, policy: BackupPolicy): Promise<BackupPolicy> {
    return this.#policies.update(vault, name, policy)
  }

  /** Deletes a policy; refused while an item refers to it (PolicyInUse). */
  deletePolicy(vault: string, name: string): Promise<void> {
    return this.#policies.delete(vault, name)
  }

  // --- Protected items ---

  /** Records the protection of a VM with a policy in a vault; selective disks by LUN (each one the VM has, checked by the service). */
  async protect(
    vmName: string,
    options: { vault: string; policy: string; includedLuns?: number[]; includeFutureDisks?: boolean },
  ): Promise<ProtectedItem> {
    const vm = await this.getVm(vmName)
    const policy = await this.#policyToProtect(vmName, options)
    const existing = await this.#db
      .selectFrom('protected_items')
      .selectAll()
      .where('vm_id', '=', vm.id)
      .executeTakeFirst()
    if (existing) {
      throw new CairnError(
        'VmAlreadyProtected',
        `Cannot protect VM "${vmName}": it is already a protected item in vault "${existing.vault}" (${existing.state})`,
      )
    }
    const disks = protectedDisks(vm, options)
    const now = this.#iso()
    const id = randomUUID()
    await this.#db
      .insertInto('protected_items')
      .values({
        id,
        vm_id: vm.id,
        vault: options.vault,
        policy_id: policy.id,
        state: 'Protected',
        ...disks,
        protected_since: this.#now(),
        last_slot: null,
        last_backup_at: null,
        last_backup_status: null,
        created_at: now,
        updated_at: now,
      })
      .execute()
    return this.getItem(vmName)
  }

  /** The policy a protect or reprotect names, or PolicyNotFound. */
  async #policyToProtect(vmName: string, options: { vault: string; policy: string }) {
    const policy = await this.#policies.findRow(options.vault, options.policy)
    if (!policy) {
      throw new CairnError(
        'PolicyNotFound',
        `Cannot protect VM "${vmName}": vault "${options.vault}" has no policy "${options.policy}"`,
      )
    }
    return policy
  }

  /**
   * Protects a VM that already has an item again: same or (when its vault is gone) another vault, the
   * given policy and disks, state Protected. Its recovery points stay with it.
   */
  async reprotect(
    vmName: string,
    options: { vault: string; policy: string; includedLuns?: number[]; includeFutureDisks?: boolean },
  ): Promise<ProtectedItem> {
    const vm = await this.getVm(vmName)
    const item = await this.getItem(vmName)
    const policy = await this.#policyToProtect(vmName, options)
    const disks = protectedDisks(vm, options)
    const restart = item.state !== 'Protected' || item.vault !== options.vault
    await this.#db
      .updateTable('protected_items')
      .set({
        vault: options.vault,
        policy_id: policy.id,
        state: 'Protected',
        ...disks,
        ...(restart ? { protected_since: this.#now(), last_slot: null } : {}),
        updated_at: this.#iso(),
      })
      .where('id', '=', item.id)
      .execute()
    return this.getItem(vmName)
  }

  /** The protected item of a VM, or undefined. */
  async findItem(vmName: string): Promise<ProtectedItem | undefined> {
    const vm = await this.getVm(vmName)
    const row = (await this.#itemRows({ vmId: vm.id }))[0]
    return row ? toItem(row) : undefined
  }

  /** The protected item of a VM. */
  async getItem(vmName: string): Promise<ProtectedItem> {
    const vm = await this.getVm(vmName)
    const row = (await this.#itemRows({ vmId: vm.id }))[0]
    if (!row)
      throw new CairnError(
        'ProtectedItemNotFound',
        `Cannot find protection of VM "${vmName}": it is not protected`,
      )
    return toItem(row)
  }

  async getItemById(id: string): Promise<ProtectedItem> {
    const row = (await this.#itemRows({ id }))[0]
    if (!row) throw new CairnError('ProtectedItemNotFound', `Cannot find protected item "${id}"`)
    return toItem(row)
  }

  async listItems(filter: { vault?: string; state?: ProtectionState } = {}): Promise<ProtectedItem[]> {
    return (await this.#itemRows())
      .filter(
        (r) =>
          (filter.vault === undefined || r.vault === filter.vault) &&
          (filter.state === undefined || r.state === filter.state),
      )
      .map(toItem)
  }

  /** The disks the next backup of a VM takes. */
  async disksToBackUp(vmName: string): Promise<SelectedDisk[]> {
    const vm = await this.getVm(vmName)
    const item = await this.getItem(vmName)
    return selectDisks(vm, item, item.knownLuns)
  }

  /** Moves a protected item to another policy of its vault. */
  async changePolicy(vmName: string, policyName: string): Promise<ProtectedItem> {
    const item = await this.getItem(vmName)
    const policy = await this.#policies.findRow(item.vault, policyName)
    if (!policy)
      throw new CairnError(
        'PolicyNotFound',
        `Cannot change the policy of VM "${vmName}": vault "${item.vault}" has no policy "${policyName}"`,
      )
    await this.#db
      .updateTable('protected_items')
      .set({ policy_id: policy.id, updated_at: this.#iso() })
      .where('id', '=', item.id)
      .execute()
    return this.getItem(vmName)
  }

  /** Marks an item ProtectionStopped: the scheduler leaves it out; its points stay. */
  async stopProtection(vmName: string): Promise<ProtectedItem> {
    const item = await this.getItem(vmName)
    await this.#db
      .updateTable('protected_items')
      .set({ state: 'ProtectionStopped', updated_at: this.#iso() })
      .where('id', '=', item.id)
      .execute()
    return { ...item, state: 'ProtectionStopped' }
  }

  /** Drops a stopped item once its recovery points are gone. */
  async removeItem(vmName: string): Promise<void> {
    const item = await this.getItem(vmName)
    const left = await this.#points.countOfItem(item.id)
    if (left > 0) {
      throw new CairnError(
        'VmIsProtected',
        `Cannot remove the protection of VM "${vmName}": ${left} recovery point(s) remain`,
      )
    }
    await this.#db.deleteFrom('protected_items').where('id', '=', item.id).execute()
  }

  /** Resumes a stopped item, optionally under another policy; the schedule starts afresh. */
  async resume(vmName: string, policyName?: string): Promise<ProtectedItem> {
    const item = await this.getItem(vmName)
    const name = policyName ?? item.policyName
    const policy = name === undefined ? undefined : await this.#policies.findRow(item.vault, name)
    if (!policy)
      throw new CairnError(
        'PolicyNotFound',
        `Cannot resume protection of VM "${vmName}": name a policy of vault "${item.vault}"`,
      )
    await this.#db
      .updateTable('protected_items')
      .set({
        state: 'Protected',
        policy_id: policy.id,
        protected_since: this.#now(),
        last_slot: null,
        updated_at: this.#iso(),
      })
      .where('id', '=', item.id)
      .execute()
    return this.getItem(vmName)
  }

  /** Records the outcome of a backup on its item. */
  async recordBackup(itemId: string, status: string): Promise<void> {
    await this.#db
      .updateTable('protected_items')
      .set({ last_backup_at: this.#iso(), last_backup_status: status })
      .where('id', '=', itemId)
      .execute()
  }

  /** The items with their VM's name and policy; `only` narrows to one VM or one item (one indexed row). */
  #itemRows(only: { vmId?: string; id?: string } = {}) {
    let q = this.#db
      .selectFrom('protected_items as i')
      .innerJoin('vms as v', 'v.id', 'i.vm_id')
      .leftJoin('backup_policies as p', 'p.id', 'i.policy_id')
      .selectAll('i')
      .select(['v.name as vm_name', 'p.name as policy_name', 'p.definition_json as policy_json'])
    if (only.vmId !== undefined) q = q.where('i.vm_id', '=', only.vmId)
    if (only.id !== undefined) q = q.where('i.id', '=', only.id)
    return q.orderBy('v.name').execute()
  }

  // --- The scheduler's store ---

  /** Items under active protection with their policies, for the scheduler. */
  async listSchedulable(): Promise<SchedulableItem[]> {
    return (await this.#itemRows())
      .filter((r) => r.state === 'Protected' && r.policy_json !== null)
      .map((r) => {
        const item: SchedulableItem = {
          id: r.id,
          policy: JSON.parse(r.policy_json!) as BackupPolicy,
          protectedSince: r.protected_since,
        }
        if (r.last_slot !== null) item.lastSlot = r.last_slot
        return item
      })
  }

  async recordRun(itemId: string, slot: number): Promise<void> {
    await this.#db.updateTable('protected_items').set({ last_slot: slot }).where('id', '=', itemId).execute()
  }

  /** Marks `slot` fired for the item, once: one conditional update, so two schedulers never both win. */
  async claimSlot(itemId: string, slot: number): Promise<boolean> {
    const r = await this.#db
      .updateTable('protected_items')
      .set({ fired_slot: slot })
      .where('id', '=', itemId)
      .where((eb) => eb.or([eb('fired_slot', 'is', null), eb('fired_slot', '<', slot)]))
      .executeTakeFirst()
    return Number(r.numUpdatedRows) === 1
  }

  async lastMaintenance(): Promise<number | undefined> {
    const v = await this.#catalog.getSetting('protection.last_maintenance')
    return v === undefined ? undefined : Number(v)
  }

  async recordMaintenance(at: number): Promise<void> {
    await this.#catalog.setSetting('protection.last_maintenance', String(at))
  }

  // --- Recovery points (RecoveryPointStore) ---

  /** Adds a recovery point (written only once its snapshot exists: never half a point). */
  addRecoveryPoint(point: Omit<VmRecoveryPoint, 'id'> & { id?: string }): Promise<VmRecoveryPoint> {
    return this.#points.add(point)
  }

  /** A recovery point by id (or by the UUID it had before ids took the vault's form). */
  async getRecoveryPoint(id: string): Promise<VmRecoveryPoint> {
    const p = await this.#points.find(id)
    if (!p) throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${id}"`)
    return p
  }

  /** A recovery point by id or legacy UUID, or undefined. */
  findRecoveryPoint(id: string): Promise<VmRecoveryPoint | undefined> {
    return this.#points.find(id)
  }

  /** A VM's recovery points, oldest first. */
  async listRecoveryPoints(vmName: string): Promise<VmRecoveryPoint[]> {
    return this.#points.listOfItem((await this.getItem(vmName)).id)
  }

  /** Updates a point's tier and disks (after the vault transfer, or when its snapshots are removed). */
  updateRecoveryPoint(
    id: string,
    change: { tier: RecoveryPointTier; disks: VmRecoveryPointDisk[] },
  ): Promise<void> {
    return this.#points.update(id, change)
  }

  deleteRecoveryPoint(id: string): Promise<void> {
    return this.#points.delete(id)
  }
}

function toItem(
  r: CatalogSchema['protected_items'] & { vm_name: string; policy_name: string | null },
): ProtectedItem {
  const item: ProtectedItem = {
    id: r.id,
    vmName: r.vm_name,
    vmId: r.vm_id,
    vault: r.vault,
    state: r.state as ProtectionState,
    knownLuns: JSON.parse(r.known_luns_json) as number[],
    includeFutureDisks: r.include_future_disks === 1,
    protectedSince: new Date(r.protected_since).toISOString(),
  }
  if (r.policy_name !== null) item.policyName = r.policy_name
  if (r.included_luns_json !== null) item.includedLuns = JSON.parse(r.included_luns_json) as number[]
  if (r.last_backup_at !== null) item.lastBackupAt = r.last_backup_at
  if (r.last_backup_status !== null) item.lastBackupStatus = r.last_backup_status
  return item
}

/** The disk columns of a protected item: the LUNs chosen and the LUNs known now. */
function protectedDisks(
  vm: Vm,
  options: { includedLuns?: number[]; includeFutureDisks?: boolean },
): { included_luns_json: string | null; known_luns_json: string; include_future_disks: number } {
  const luns = vm.dataDisks.map((d) => d.lun)
  return {
    included_luns_json: options.includedLuns
      ? JSON.stringify([...new Set(options.includedLuns)].sort((a, b) => a - b))
      : null,
    known_luns_json: JSON.stringify(luns),
    include_future_disks: options.includeFutureDisks ? 1 : 0,
  }
}
