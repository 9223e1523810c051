// Over ~600 lines on purpose: every protection use case is one method here (issue 13: routes, the
// scheduler and the CLI-over-API reach the same methods); the methods are short and share the item,
// policy and vault-settings checks. The work they start lives in _vm-backups.ts, vm-restores.ts and
// _undelete-item.ts.
import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import type { VaultSettings } from '../vault/index.js'
import { type UndeleteReport, undeleteItem } from './_undelete-item.js'
import { type BackupOptions, type PolicyCopyRequest, VmBackups } from './_vm-backups.js'
import { AgentClient, type AgentFor, type VmAgent } from './agent-client.js'
import { DiskGuard } from './disk-guard.js'
import type { JobBody, JobService, StartedJob } from './job-service.js'
import { planRetention, type RetentionPoint } from './plan-retention.js'
import { PointReconciler, type ReconcileReport } from './point-reconciler.js'
import { type BackupPolicy, POLICY_BOUNDS, validatePolicy } from './policy.js'
import type { ProtectedItem, ProtectionState, ProtectionStore, VmRecoveryPoint } from './protection-store.js'
import { QgaAgent } from './qga-agent.js'
import { mountedError } from './recovery-point-mounts.js'
import type { ReplicaItem, ReplicaItems } from './replica-items.js'
import type { ResourceGuard } from './resource-guard.js'
import { checkRetentionChange, retentionShortened } from './retention-change.js'
import type { VaultTransfer } from './vault-transfer.js'
import { refKey, type Vm, validateVm } from './vm.js'
import { diskExists, type ResolvedPoint, type RestoreTarget, removeDisks, VmRestores } from './vm-restores.js'

/** The mount that holds a recovery point (RecoveryPointMounts). */
export interface PointPin {
  id: string
  vm: string
  expiresAt: string
}

/** Options of a ProtectionService. */
export interface ProtectionServiceOptions {
  store: ProtectionStore
  disks: DiskStore
  /** Runs and records every backup and restore as a job. */
  jobs: JobService
  /** Without a vault, recovery points stay in the snapshot tier (and their snapshots are kept). */
  vault?: VaultTransfer
  logger?: Logger
  now?: () => number
  /** On-demand backups a VM may have a day (default 3, as the reference). */
  onDemandPerDay?: number
  /** Multi-user authorization: stopping protection with data deletion needs an approval on a guarded vault. */
  guard?: ResourceGuard
  /** The client of a VM's agent (default an AgentClient over HTTP; tests may hand their own). */
  agentFor?: AgentFor
  /** The client of a VM's QEMU guest agent (default a QgaAgent on the channel's socket). */
  qgaFor?: (channel: string) => VmAgent
  /**
   * A vault's soft-delete and immutability settings (undefined: a vault that is gone): every policy
   * change (a policy edited, an item moved to another policy, protected or resumed under another)
   * that shortens a retention is refused while the vault is immutable.
   */
  vaultSettings?: (vault: string) => Promise<VaultSettings | undefined>
  /**
   * The mount that holds a recovery point (see RecoveryPointMounts), if any: retention and snapshot
   * pruning pass a mounted point by until it is released, and deleting its data is refused
   * (`RecoveryPointMounted`).
   */
  pinned?: (pointId: string) => PointPin | undefined
  /**
   * Starts the copy job of a policy with `copy` after a backup reached its vault (the VaultService's
   * copy); without it, policies' copies are not made.
   */
  copyPoints?: (request: PolicyCopyRequest) => Promise<Job>
  /**
   * The VMs of replica vaults, read from their replicated points (cross-region restore): listed,
   * shown and restored under the vault's path; nothing of theirs is written to the catalog.
   */
  replicaItems?: ReplicaItems
}

export type { BackupOptions, PolicyCopyRequest } from './_vm-backups.js'

/** How a recovery point is restored, after the reference's recovery types. */
export interface RestoreRequest {
  /** AlternateLocation: a new VM; RestoreDisks: new disks; OriginalLocation: over the VM's disks. */
  recoveryType: 'AlternateLocation' | 'RestoreDisks' | 'OriginalLocation'
  /** AlternateLocation: the new VM's name (required). */
  targetVmName?: string
  /** RestoreDisks: the new disks' prefix (default `<vm>-restored`). */
  diskPrefix?: string
  /** RestoreDisks: which disks (default all). */
  disks?: (number | 'os')[]
  /**
   * AlternateLocation and RestoreDisks: the account and container of the new disks (default: those of
   * each source disk). A cross-region restore names one of this site's, as Azure's names a target
   * storage account in the secondary region.
   */
  target?: RestoreTarget
  startedBy?: string
}

/** What stopping protection did: the item kept (data retained) or NotProtected with the points deleted. */
export interface StopReport {
  vmName: string
  state: 'Protected' | 'ProtectionStopped' | 'NotProtected'
  item?: ProtectedItem
  deletedPoints: string[]
}

/** Where a caller expects a VM's protection: a request under a vault's path names it. */
export interface InVault {
  /** Answered ProtectedItemNotFound when the VM is protected in another vault. */
  vault?: string
}

/** A started job and the promise of its end. */
export type RunningJob = StartedJob

/**
 * VM protection: protect, stop (with or without its data), resume, retention, and the backups
 * (`VmBackups`: agent freeze, one consistency-group snapshot, a recovery point in the snapshot tier,
 * the diff to the vault) and restores (`VmRestores`) of VMs. Every backup and restore is a job of the
 * JobService; one backup of a VM at a time. A recovery point is written only when its backup
 * completes: a backup that fails, is cancelled or dies leaves none.
 */
export class ProtectionService {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #jobs: JobService
  readonly #vault: VaultTransfer | undefined
  readonly #guard: ResourceGuard | undefined
  readonly #log: Logger
  readonly #now: () => number
  readonly #vaultSettings: ((vault: string) => Promise<VaultSettings | undefined>) | undefined
  readonly #running = new Map<string, Promise<Job>>()
  readonly #busyVms = new Set<string>()
  readonly #reconciler: PointReconciler
  /** Deletes of disks, snapshots, containers and accounts that protection depends on (refused unless forced). */
  readonly guard: DiskGuard
  readonly #restores: VmRestores
  readonly #backups: VmBackups
  readonly #listeners = new Set<() => void>()
  readonly #pinned: (pointId: string) => PointPin | undefined
  readonly #replicas: ReplicaItems | undefined

  constructor(options: ProtectionServiceOptions) {
    this.#store = options.store
    this.#disks = options.disks
    this.#jobs = options.jobs
    this.#vault = options.vault
    this.#guard = options.guard
    this.#log = options.logger ?? silentLogger
    this.#now = options.now ?? Date.now
    this.#vaultSettings = options.vaultSettings
    this.#pinned = options.pinned ?? (() => undefined)
    this.#replicas = options.replicaItems
    this.#reconciler = new PointReconciler({
      store: this.#store,
      disks: this.#disks,
      ...(this.#vault ? { vault: this.#vault } : {}),
      logger: this.#log,
    })
    this.guard = new DiskGuard({ store: this.#store, disks: this.#disks, reconciler: this.#reconciler })
    this.#restores = new VmRestores({
      store: this.#store,
      disks: this.#disks,
      jobs: this.#jobs,
      ...(this.#vault ? { vault: this.#vault } : {}),
      reconciler: this.#reconciler,
      running: this.#running,
      isBusy: (vm) => this.#busyVms.has(vm),
      reconcile: (vm) => this.reconcile(vm),
    })
    this.#backups = new VmBackups({
      store: this.#store,
      disks: this.#disks,
      jobs: this.#jobs,
      ...(this.#vault ? { vault: this.#vault } : {}),
      logger: this.#log,
      now: this.#now,
      onDemandPerDay: options.onDemandPerDay ?? POLICY_BOUNDS.onDemandPerDay,
      agentFor: options.agentFor ?? ((a) => new AgentClient(a)),
      pinned: (id) => this.#pinned(id) !== undefined,
      qgaFor: options.qgaFor ?? ((channel) => new QgaAgent({ channel })),
      running: this.#running,
      busy: this.#busyVms,
      reconcile: (vm, o) => this.reconcile(vm, o),
      ...(options.copyPoints ? { copyPoints: options.copyPoints } : {}),
    })
  }

  /**
   * Calls `listener` after every change the scheduler must see (protect, a policy changed, stop,
   * resume); answers the function that unsubscribes it. The scheduler subscribes to re-read its items.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #changed(): void {
    for (const listener of this.#listeners) {
      try {
        listener()
      } catch (err) {
        this.#log.warn('a protection change listener failed', { message: String(err) })
      }
    }
  }

  // --- VMs ---

  /**
   * Registers a VM; every disk it names must exist in the disk store (DiskNotFound names the first that
   * does not). On a shared catalog the VM names this process as its host: its backups run here.
   */
  async registerVm(input: unknown): Promise<Vm> {
    const spec = validateVm(input)
    for (const d of [
      spec.osDisk,
      ...spec.dataDisks.map((x) => x.disk),
      ...(spec.tempDisk ? [spec.tempDisk] : []),
    ])
      this.#disks.getDisk(d)
    const host = this.#jobs.owner
    return this.#store.createVm(spec, host === undefined ? {} : { host })
  }

  /** Every registered VM, by name. */
  listVms(): Promise<Vm[]> {
    return this.#store.listVms()
  }

  /** One page of the VMs by name, after `after` (a page of the catalog, not of the whole list). */
  listVmsPage(options: { after?: string; limit: number }): Promise<{ vms: Vm[]; more: boolean }> {
    return this.#store.listVmsPage(options)
  }

  /** A VM by name (VmNotFound otherwise). */
  getVm(name: string): Promise<Vm> {
    return this.#store.getVm(name)
  }

  // --- Policies ---

  /** The backup policies of a vault (of every vault without one). */
  listPolicies(vault?: string): Promise<(BackupPolicy & { vault: string })[]> {
    return this.#store.listPolicies(vault)
  }

  /** A policy of a vault (PolicyNotFound otherwise). */
  getPolicy(vault: string, name: string): Promise<BackupPolicy> {
    return this.#store.getPolicy(vault, name)
  }

  /** Changes a policy (an Enhanced policy cannot become Standard, as in the reference); its items follow its new schedule. */
  async updatePolicy(vault: string, name: string, input: unknown): Promise<BackupPolicy> {
    const before = await this.#store.getPolicy(vault, name)
    const policy = validatePolicy({ ...(input as object), name })
    if (before.policyType === 'Enhanced' && policy.policyType === 'Standard')
      throw new CairnError(
        'PolicyInvalid',
        `Cannot change policy "${name}": an Enhanced policy cannot become Standard`,
      )
    await this.#checkRetention(vault, before, policy, `Cannot change policy "${name}"`)
    await this.#checkCopy(vault, policy, `Cannot change policy "${name}"`)
    const updated = await this.#store.updatePolicy(vault, name, policy)
    this.#changed()
    return updated
  }

  /** Deletes a policy no item uses (PolicyInUse otherwise). */
  deletePolicy(vault: string, name: string): Promise<void> {
    return this.#store.deletePolicy(vault, name)
  }

  // --- Protected items ---

  /**
   * The protected item of a VM. With `vault`, one protected in another vault is ProtectedItemNotFound
   * (a request under `/vaults/{vault}` sees only that vault's items).
   */
  async getItem(vmName: string, where: InVault = {}): Promise<ProtectedItem> {
    return (await this.#itemOrReplica(vmName, where)).item
  }

  /**
   * The VM's item from the catalog or, when the catalog has none for it under a replica vault's path,
   * the VM of that name known from the vault's replicated points (with them).
   */
  async #itemOrReplica(
    vmName: string,
    where: InVault,
  ): Promise<{ item: ProtectedItem; replica?: ReplicaItem }> {
    try {
      return { item: await this.#catalogItem(vmName, where) }
    } catch (err) {
      const missing = isCairnError(err) && (err.code === 'VmNotFound' || err.code === 'ProtectedItemNotFound')
      const replica =
        missing && where.vault !== undefined ? await this.#replicas?.find(where.vault, vmName) : undefined
      if (!replica) throw err
      return { item: replica.item, replica }
    }
  }

  /** The VM's item in the catalog (in `where.vault` when given). */
  async #catalogItem(vmName: string, where: InVault): Promise<ProtectedItem> {
    const item = await this.#store.getItem(vmName)
    if (where.vault !== undefined && item.vault !== where.vault)
      throw new CairnError(
        'ProtectedItemNotFound',
        `Cannot find VM "${vmName}" in vault "${where.vault}": it is protected in vault "${item.vault}"`,
      )
    return item
  }

  /** The protected items, of one vault or in one state if asked. */
  async listItems(filter: { vault?: string; state?: ProtectionState } = {}): Promise<ProtectedItem[]> {
    const items = await this.#store.listItems(filter)
    if (filter.vault === undefined || !this.#replicas || (filter.state && filter.state !== 'Replica'))
      return items
    // A replica vault: its VMs are known from its points (those the catalog has an item of come first).
    const have = new Set(items.map((i) => i.vmName))
    const replicas = (await this.#replicas.items(filter.vault)).filter((r) => !have.has(r.item.vmName))
    return [...items, ...replicas.map((r) => r.item)].sort((a, b) =>
      a.vmName < b.vmName ? -1 : a.vmName > b.vmName ? 1 : 0,
    )
  }

  /** Moves a protected item to another policy of its vault. */
  async changePolicy(vmName: string, policy: string, where: InVault = {}): Promise<ProtectedItem> {
    const before = await this.#catalogItem(vmName, where)
    await this.#checkSwap(before, before.vault, policy, `Cannot change the policy of VM "${vmName}"`)
    const item = await this.#store.changePolicy(vmName, policy)
    this.#changed()
    return item
  }

  // --- Recovery points ---

  /** A VM's recovery points, oldest first, after bringing their tiers in line with what exists. */
  async listRecoveryPoints(vmName: string, where: InVault = {}): Promise<VmRecoveryPoint[]> {
    const { replica } = await this.#itemOrReplica(vmName, where)
    if (replica) return replica.points
    await this.reconcile(vmName, { vault: true })
    return this.#store.listRecoveryPoints(vmName)
  }

  /** One recovery point of a VM, its tier brought in line with what exists first. */
  async getRecoveryPoint(vmName: string, pointId: string, where: InVault = {}): Promise<VmRecoveryPoint> {
    const { replica } = await this.#itemOrReplica(vmName, where)
    if (replica) return pointOfReplica(replica, pointId)
    await this.reconcile(vmName, { vault: true })
    return this.#pointOf(vmName, pointId, where)
  }

  async #pointOf(vmName: string, pointId: string, where: InVault): Promise<VmRecoveryPoint> {
    const item = await this.#catalogItem(vmName, where)
    const rp = await this.#store.findRecoveryPoint(pointId)
    if (!rp || rp.itemId !== item.id)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot find recovery point "${pointId}" of VM "${vmName}"`,
      )
    return rp
  }

  /** Reconciles the points of every VM protected in a vault with it (after points left it). */
  async reconcileVault(vault: string): Promise<void> {
    for (const item of await this.#store.listItems({ vault }))
      await this.reconcile(item.vmName, { vault: true })
  }

  /** Brings a VM's recovery points in line with the disk store (and, with `vault`, its vault). */
  reconcile(vmName: string, options: { vault?: boolean } = {}): Promise<ReconcileReport> {
    return this.#reconciler.reconcile(vmName, options)
  }

  /** Adds a backup policy to a vault that exists (VaultNotFound otherwise), within the reference bounds. */
  async createPolicy(vault: string, input: unknown): Promise<BackupPolicy> {
    await this.#needVault(vault, `create a backup policy in vault "${vault}"`)
    const policy = validatePolicy(input)
    await this.#checkCopy(vault, policy, `Cannot create policy "${policy.name}"`)
    return this.#store.createPolicy(vault, policy)
  }

  /** A policy's copy goes to another vault that exists. */
  async #checkCopy(vault: string, policy: BackupPolicy, what: string): Promise<void> {
    if (!policy.copy) return
    if (policy.copy.vault === vault)
      throw new CairnError('PolicyInvalid', `${what}: "copy.vault" must be another vault than "${vault}"`)
    if (this.#vault && !(await this.#vault.hasVault(policy.copy.vault)))
      throw new CairnError('VaultNotFound', `${what}: its copy vault "${policy.copy.vault}" does not exist`)
  }

  /**
   * Protects a VM in a vault with a policy. Idempotent: protecting it again in the same vault applies
   * the policy and disks and resumes it. An item stranded in a vault that no longer exists moves to
   * the new vault: its snapshot-tier points stay, the points only the old vault held are dropped.
   */
  async protect(
    vmName: string,
    options: { vault: string; policy: string; includedLuns?: number[]; includeFutureDisks?: boolean },
  ): Promise<{ item: ProtectedItem; created: boolean }> {
    await this.#needVault(options.vault, `protect VM "${vmName}"`)
    await this.#replicas?.assertWritable(options.vault, `protect VM "${vmName}"`)
    const vm = await this.#store.getVm(vmName)
    const luns = vm.dataDisks.map((d) => d.lun)
    const unknown = (options.includedLuns ?? []).filter((l) => !luns.includes(l))
    if (unknown.length > 0)
      throw new CairnError(
        'VmInvalid',
        `Cannot protect VM "${vmName}": it has no data disk at LUN ${unknown.join(', ')}`,
      )
    const existing = await this.#store.findItem(vmName)
    if (!existing) {
      const item = await this.#store.protect(vmName, options)
      this.#changed()
      return { item, created: true }
    }
    if (existing.vault !== options.vault) {
      if (!this.#vault || (await this.#vault.hasVault(existing.vault)))
        throw new CairnError(
          'VmAlreadyProtected',
          `Cannot protect VM "${vmName}" in vault "${options.vault}": it is protected in vault "${existing.vault}" (${existing.state}); stop protection there first`,
        )
      await this.reconcile(vmName, { vault: true })
    } else
      await this.#checkSwap(
        existing,
        options.vault,
        options.policy,
        `Cannot protect VM "${vmName}" under policy "${options.policy}"`,
      )
    const item = await this.#store.reprotect(vmName, options)
    this.#changed()
    return { item, created: false }
  }

  /** Resumes stopped protection (optionally under another policy); resuming a protected VM changes nothing. */
  async resume(vmName: string, policy?: string, where: InVault = {}): Promise<ProtectedItem> {
    const item = await this.#catalogItem(vmName, where)
    if (item.state === 'Protected' && (policy === undefined || policy === item.policyName)) return item
    const name = policy ?? item.policyName
    if (name !== undefined)
      await this.#checkSwap(
        item,
        item.vault,
        name,
        `Cannot resume protection of VM "${vmName}" under policy "${name}"`,
      )
    const resumed = await this.#store.resume(vmName, policy)
    this.#changed()
    return resumed
  }

  /**
   * Stops protection. Keeping data leaves the points to their expiry. Deleting data checks first that
   * it can (no backup running, the vault open if it exists), then stops the item, deletes every
   * point's snapshots and vault copy — what is already gone counts as deleted, so a vault deleted or
   * recreated does not stop it — and drops the item. Running it again finishes what an interruption
   * left; on a VM no longer protected it answers NotProtected (from any vault: `vault` checks only
   * a VM still protected).
   */
  async stopProtection(vmName: string, options: { deleteData: boolean } & InVault): Promise<StopReport> {
    const item = await this.#store.findItem(vmName)
    if (item && options.vault !== undefined) await this.#catalogItem(vmName, options)
    try {
      return await this.#stop(vmName, item, options.deleteData)
    } finally {
      // Even a deletion cut short has stopped the item: the scheduler re-reads either way.
      this.#changed()
    }
  }

  async #stop(vmName: string, item: ProtectedItem | undefined, deleteData: boolean): Promise<StopReport> {
    if (!item) {
      if (deleteData) return { vmName, state: 'NotProtected', deletedPoints: [] }
      throw new CairnError(
        'ProtectedItemNotFound',
        `Cannot stop protection of VM "${vmName}": it is not protected`,
      )
    }
    if (!deleteData) {
      const stopped = await this.#store.stopProtection(vmName)
      return { vmName, state: 'ProtectionStopped', item: stopped, deletedPoints: [] }
    }
    if (this.#busyVms.has(vmName))
      throw new CairnError(
        'BackupInProgress',
        `Cannot delete the backup data of VM "${vmName}": a backup of it is running; cancel it or wait`,
      )
    this.#busyVms.add(vmName)
    try {
      const points = await this.#store.listRecoveryPoints(vmName)
      for (const p of points) {
        const pin = this.#pinned(p.id)
        if (pin) throw mountedError(`the backup data of VM "${vmName}" (recovery point ${p.id})`, pin)
      }
      const inVault = points.some((p) => p.disks.some((d) => d.vaultBackup))
      // A locked vault, or an immutable one that still retains a point, would stop the deletion half
      // way: refuse before anything changes.
      if (this.#vault && inVault && (await this.#vault.hasVault(item.vault))) {
        await this.#vault.openVault(item.vault)
        await this.#reconciler.checkDeletable(item.vault, points)
      }
      // Last of the checks: a guarded vault uses up the requester's approval here.
      await this.#guard?.authorize(
        item.vault,
        'stopProtectionDeleteData',
        `Cannot delete the backup data of VM "${vmName}"`,
      )
      await this.#store.stopProtection(vmName)
      const deleted: string[] = []
      for (const p of points) {
        await this.#reconciler.deletePointData(item.vault, p)
        await this.#store.deleteRecoveryPoint(p.id)
        deleted.push(p.id)
      }
      await this.#store.removeItem(vmName)
      this.#log.info('protection stopped and backup data deleted', { vm: vmName, points: deleted.length })
      return { vmName, state: 'NotProtected', deletedPoints: deleted }
    } finally {
      this.#busyVms.delete(vmName)
    }
  }

  /**
   * Brings back the backup data of a VM whose protection was stopped with its data deleted while the
   * vault's soft delete was on: its soft-deleted vault points are undeleted and listed again, the item
   * in ProtectionStopped (made under `policy`, default the policy its points were taken under).
   */
  async undelete(vmName: string, options: { vault: string; policy?: string }): Promise<UndeleteReport> {
    if (!this.#vault)
      throw new CairnError('ServiceUnavailable', `Cannot undelete VM "${vmName}": this service has no vaults`)
    const report = await undeleteItem(
      { store: this.#store, vault: this.#vault, log: this.#log },
      vmName,
      options,
    )
    this.#changed()
    return report
  }

  /**
   * Forgets a VM (its disks stay). Refused while it is protected or has recovery points; points whose
   * data is gone are dropped first, so a VM stranded by a lost vault can go once protection stopped.
   */
  async deleteVm(vmName: string): Promise<void> {
    const item = await this.#store.findItem(vmName)
    if (item?.state === 'Protected')
      throw new CairnError(
        'VmIsProtected',
        `Cannot delete VM "${vmName}": it is protected in vault "${item.vault}"; stop protection first (protection stop ${vmName} --delete-data)`,
      )
    if (item) await this.reconcile(vmName, { vault: true })
    await this.#store.deleteVm(vmName)
  }

  /**
   * Refuses going from policy `from` to `to` if it shortens a retention: RetentionLocked while the vault
   * is immutable, ApprovalRequired on a guarded vault without a `reduceRetention` approval.
   */
  async #checkRetention(vault: string, from: BackupPolicy, to: BackupPolicy, what: string): Promise<void> {
    if (retentionShortened(from, to).length === 0) return
    if (this.#vaultSettings) checkRetentionChange(await this.#vaultSettings(vault), vault, from, to, what)
    // A guarded vault also wants an approval to shorten a retention (used once the vault allowed it).
    await this.#guard?.authorize(vault, 'reduceRetention', what)
  }

  /** The same for an item moving from its policy to policy `to` of `vault` (a policy not found is the store's answer). */
  async #checkSwap(item: ProtectedItem, vault: string, to: string, what: string): Promise<void> {
    if (item.policyName === undefined || (!this.#vaultSettings && !this.#guard)) return
    const policies = await this.#store.listPolicies(vault)
    const from = policies.find((p) => p.name === item.policyName)
    const next = policies.find((p) => p.name === to)
    if (from && next) await this.#checkRetention(vault, from, next, what)
  }

  async #needVault(vault: string, what: string): Promise<void> {
    if (this.#vault && !(await this.#vault.hasVault(vault)))
      throw new CairnError('VaultNotFound', `Cannot ${what}: vault "${vault}" does not exist`)
  }

  /**
   * Starts a backup of a VM as a job and answers it with the promise of its end: "back up now" (the
   * API answers 202 with the job) and the scheduler (`backupScheduled`, which waits) both come here.
   * An on-demand expiry must lie in the future.
   */
  async startBackup(vmName: string, options: BackupOptions & InVault = {}): Promise<RunningJob> {
    const { vault, ...backup } = options
    if (vault !== undefined) await this.#catalogItem(vmName, { vault })
    if (backup.expiresAt !== undefined && !(backup.expiresAt.getTime() > this.#now()))
      throw new CairnError('InvalidRequest', `Cannot back up VM "${vmName}": expiresAt must be a future time`)
    return this.#backups.start(vmName, backup)
  }

  /**
   * The scheduler's backup of a protected item; resolves with the finished job (Failed jobs too), or,
   * when it is queued for the process that holds the VM's disks (scale-out), with the queued job.
   */
  async backupScheduled(itemId: string, signal: AbortSignal, slot?: number): Promise<Job> {
    const item = await this.#store.getItemById(itemId)
    const started = await this.startBackup(item.vmName, {
      kind: 'Scheduled',
      signal,
      ...(slot !== undefined ? { slot } : {}),
    })
    return started.queuedFor === undefined ? started.done : started.job
  }

  /** Runs a backup to its end; resolves with the finished job (Failed jobs resolve too). */
  async backup(vmName: string, options: BackupOptions = {}): Promise<Job> {
    return (await this.startBackup(vmName, options)).done
  }

  /** Scale-out: the work of a job another process queued for this one (a backup of a VM whose disks are here). */
  startQueued(job: Job): Promise<JobBody | undefined> {
    return this.#backups.startQueued(job)
  }

  /** At start-up, the work that resumes a VM backup cut short in its vault transfer (else undefined). */
  resumeBackup(job: Job): Promise<JobBody | undefined> {
    return this.#backups.resume(job)
  }

  /** Cancels a running job; it ends Cancelled without leaving a recovery point or its snapshots. */
  async cancel(jobId: string): Promise<Job> {
    return this.#jobs.cancel(jobId)
  }

  /** Waits for the running backups and restores (the JobService interrupts them at shutdown). */
  async close(): Promise<void> {
    await this.idle()
  }

  /** Resolves when no backup or restore of this service runs. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()])
  }

  /**
   * Cleans what a backup cut short by a dead service left: the snapshots it took (recorded in its
   * job before any data moved) unless a recovery point holds them. Its vault data is the vault's
   * (a backup's packs without a manifest are reclaimed by GC once its lock is stale).
   */
  async cleanInterrupted(job: Job): Promise<string[]> {
    if (job.kind === 'restore') {
      const made = (job.details.createdDisks ?? []) as DiskRef[]
      const removed = made.filter((r) => diskExists(this.#disks, r)).map(refKey)
      await removeDisks(this.#disks, made)
      return removed
    }
    if (job.kind !== 'backup' || !job.vm) return []
    const orphan = job.details.vaultPoint
    if (typeof orphan === 'string' && job.vault && this.#vault) {
      // The vault committed the point but the service died before the recovery point was written.
      const points = await this.#store.listRecoveryPoints(job.vm).catch(() => [])
      if (!points.some((p) => p.disks.some((d) => d.vaultBackup?.startsWith(`${orphan}/`))))
        await this.#vault.deletePoint(job.vault, orphan).catch(() => {})
    }
    const taken = (job.details.snapshots ?? []) as { disk: DiskRef; snapshot: string }[]
    if (taken.length === 0) return []
    const held = new Set<string>()
    try {
      for (const p of await this.#store.listRecoveryPoints(job.vm))
        for (const d of p.disks) if (d.snapshot) held.add(`${refKey(d.source)}@${d.snapshot}`)
    } catch {
      // The VM or its item is gone: no point holds the snapshots.
    }
    const removed: string[] = []
    for (const s of taken) {
      const key = `${refKey(s.disk)}@${s.snapshot}`
      if (held.has(key)) continue
      try {
        await this.#disks.deleteSnapshot(s.disk, s.snapshot)
        removed.push(key)
      } catch {
        // Already gone.
      }
    }
    return removed
  }

  /**
   * Applies retention to every protected item: expired recovery points are removed from both tiers
   * (the latest always kept). Answers how many points were pruned and the vaults that lost points
   * (whose space a vault GC reclaims).
   */
  async applyRetention(signal?: AbortSignal): Promise<{ pruned: number; vaults: string[] }> {
    let pruned = 0
    const vaults = new Set<string>()
    for (const item of await this.#store.listItems()) {
      signal?.throwIfAborted()
      if (!item.policyName) continue
      const policy = await this.#store.getPolicy(item.vault, item.policyName)
      const points = await this.#store.listRecoveryPoints(item.vmName)
      const plan = planRetention(
        points.map((p) => {
          const r: RetentionPoint = { id: p.id, time: Date.parse(p.time), kind: p.kind }
          if (p.slot !== undefined) r.slot = Date.parse(p.slot)
          if (p.expiresAt) r.expiresAt = Date.parse(p.expiresAt)
          return r
        }),
        policy,
        this.#now(),
      )
      for (const v of plan.expire) {
        const p = points.find((x) => x.id === v.id)!
        if (this.#pinned(p.id) !== undefined) {
          this.#log.info('a mounted recovery point is kept past its retention', { point: p.id })
          continue
        }
        try {
          await this.deletePointData(item.vault, p)
        } catch (err) {
          // An immutable vault holds the point to the retention recorded at its backup (a policy
          // shortened since): it stays until then.
          if (isCairnError(err) && err.code === 'RetentionLocked') {
            this.#log.info('an immutable vault still retains an expired point', { point: p.id })
            continue
          }
          throw err
        }
        await this.#store.deleteRecoveryPoint(p.id)
        pruned++
        vaults.add(item.vault)
      }
      // The policy's copies expire by the copy's own retention, judged in the copy vault.
      if (policy.copy && this.#vault) {
        try {
          const gone = await this.#vault.removeExpiredCopies(policy.copy.vault, item.vmName)
          pruned += gone.length
          if (gone.length > 0) vaults.add(policy.copy.vault)
        } catch (err) {
          // A locked or broken copy vault does not stop the retention of the others.
          this.#log.warn('cannot apply the retention of copies', {
            vault: policy.copy.vault,
            vm: item.vmName,
            message: (err as Error).message,
          })
        }
      }
    }
    return { pruned, vaults: [...vaults] }
  }

  /**
   * Restores a recovery point of a VM by the reference's recovery type: AlternateLocation (a new VM
   * named `targetVmName`), RestoreDisks (new disks `<diskPrefix>-os`, `…-lunN`; default prefix
   * `<vm>-restored`) or OriginalLocation (over the VM's disks, snapshotted first). Answers the job.
   */
  async restore(vmName: string, pointId: string, request: RestoreRequest & InVault): Promise<RunningJob> {
    const { item, replica } = await this.#itemOrReplica(vmName, request)
    // A replica vault's point is not in the catalog: the restore takes it whole (Azure's cross-region
    // restore: a new VM or disks, never over the original VM, which is on the other site).
    const rp: string | ResolvedPoint = replica
      ? { item, point: pointOfReplica(replica, pointId) }
      : (await this.#pointOf(vmName, pointId, request)).id
    if (replica && request.recoveryType === 'OriginalLocation')
      throw new CairnError(
        'InvalidRequest',
        `Cannot restore VM "${vmName}" over its own disks here: vault "${item.vault}" is a replica and the VM is on its primary's site; restore a new VM (AlternateLocation) or its disks (RestoreDisks)`,
      )
    const by = request.startedBy !== undefined ? { startedBy: request.startedBy } : {}
    const target = request.target ? { target: request.target } : {}
    switch (request.recoveryType) {
      case 'AlternateLocation':
        if (!request.targetVmName)
          throw new CairnError('InvalidRequest', 'Cannot restore as a new VM without "targetVmName"')
        return this.#restores.restoreVm(rp, { as: request.targetVmName, ...by, ...target })
      case 'RestoreDisks':
        return this.#restores.restoreDisks(rp, {
          ...target,
          prefix: request.diskPrefix ?? `${vmName}-restored`,
          ...(request.disks ? { disks: request.disks } : {}),
          ...by,
        })
      case 'OriginalLocation':
        return this.replaceDisks(vmName, rp as string, by)
    }
  }

  /**
   * Restores a recovery point as a new VM: new disks (each from its snapshot while it exists — no data
   * copied — otherwise from the vault) plus the saved configuration (see VmRestores).
   */
  restoreVm(pointId: string, options: { as: string; startedBy?: string }): Promise<RunningJob> {
    return this.#restores.restoreVm(pointId, options)
  }

  /** Restores chosen disks (all by default) of a recovery point as new disks `<prefix>-os`, `<prefix>-lunN`. */
  restoreDisks(
    pointId: string,
    options: { prefix: string; disks?: (number | 'os')[]; startedBy?: string },
  ): Promise<RunningJob> {
    return this.#restores.restoreDisks(pointId, options)
  }

  /** Replaces the disks of an existing VM with those of a recovery point (its current disks snapshotted first). */
  replaceDisks(vmName: string, pointId: string, options: { startedBy?: string } = {}): Promise<RunningJob> {
    return this.#restores.replaceDisks(vmName, pointId, options)
  }

  /** Removes a recovery point's snapshots and vault backups (its record is the caller's); what is gone counts as removed. */
  deletePointData(vault: string, p: VmRecoveryPoint): Promise<void> {
    return this.#reconciler.deletePointData(vault, p)
  }
}

/** One point of a VM of a replica vault (RecoveryPointNotFound). */
function pointOfReplica(replica: ReplicaItem, pointId: string): VmRecoveryPoint {
  const point = replica.points.find((p) => p.id === pointId)
  if (!point)
    throw new CairnError(
      'RecoveryPointNotFound',
      `Cannot find recovery point "${pointId}" of VM "${replica.item.vmName}" in vault "${replica.item.vault}" on this site`,
    )
  return point
}
