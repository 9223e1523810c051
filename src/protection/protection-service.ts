import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import { type Consistency, newRecoveryPointId } from '../vault/index.js'
import { fromWall, toWall } from './_zoned-time.js'
import { AgentClient, type AgentQuiesce, type AgentThaw } from './agent-client.js'
import { DiskGuard } from './disk-guard.js'
import { diskLabel } from './disk-label.js'
import type { JobContext, JobService, StartedJob } from './job-service.js'
import { expiredSnapshots, onDemandExpiry, planRetention } from './plan-retention.js'
import { PointReconciler, type ReconcileReport, vaultRef } from './point-reconciler.js'
import { type BackupPolicy, POLICY_BOUNDS } from './policy.js'
import type {
  ProtectedItem,
  ProtectionStore,
  VmRecoveryPoint,
  VmRecoveryPointDisk,
} from './protection-store.js'
import { scheduledTimes } from './schedule.js'
import type { VaultTransfer } from './vault-transfer.js'
import { refKey, type VmSpec } from './vm.js'
import { diskExists, removeDisks, VmRestores } from './vm-restores.js'

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
}

/** Options of one backup. */
export interface BackupOptions {
  kind?: 'Scheduled' | 'OnDemand'
  /** On-demand expiry (default 30 days). */
  expiresAt?: Date
  /** Aborted when the caller (the scheduler) stops: the job ends Interrupted. */
  signal?: AbortSignal
  /** Who asks (default `local`). */
  startedBy?: string
}

/** A started job and the promise of its end. */
export type RunningJob = StartedJob

/**
 * Backups and restores of VMs: quiesce through the agent → one consistency-group snapshot of every
 * included disk → thaw → a recovery point in the snapshot tier → transfer to the vault (only the diff)
 * → "SnapshotAndVault" → snapshots past the instant-restore retention removed (the latest kept).
 * Every action is a job of the JobService; one backup of a VM at a time. A recovery point is written
 * only when its backup completes: a backup that fails, is cancelled or dies leaves none.
 */
export class ProtectionService {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #jobs: JobService
  readonly #vault: VaultTransfer | undefined
  readonly #log: Logger
  readonly #now: () => number
  readonly #onDemandPerDay: number
  readonly #running = new Map<string, Promise<Job>>()
  readonly #busyVms = new Set<string>()
  readonly #reconciler: PointReconciler
  /** Deletes of disks, snapshots, containers and accounts that protection depends on (refused unless forced). */
  readonly guard: DiskGuard
  readonly #restores: VmRestores

  constructor(options: ProtectionServiceOptions) {
    this.#store = options.store
    this.#disks = options.disks
    this.#jobs = options.jobs
    this.#vault = options.vault
    this.#log = options.logger ?? silentLogger
    this.#now = options.now ?? Date.now
    this.#onDemandPerDay = options.onDemandPerDay ?? POLICY_BOUNDS.onDemandPerDay
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
  }

  /** A VM's recovery points, oldest first, after bringing their tiers in line with what exists. */
  async listRecoveryPoints(vmName: string): Promise<VmRecoveryPoint[]> {
    await this.reconcile(vmName, { vault: true })
    return this.#store.listRecoveryPoints(vmName)
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
    return this.#store.createPolicy(vault, input)
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
    const existing = await this.#store.findItem(vmName)
    if (!existing) return { item: await this.#store.protect(vmName, options), created: true }
    if (existing.vault !== options.vault) {
      if (!this.#vault || (await this.#vault.hasVault(existing.vault)))
        throw new CairnError(
          'VmAlreadyProtected',
          `Cannot protect VM "${vmName}" in vault "${options.vault}": it is protected in vault "${existing.vault}" (${existing.state}); stop protection there first`,
        )
      await this.reconcile(vmName, { vault: true })
    }
    return { item: await this.#store.reprotect(vmName, options), created: false }
  }

  /** Resumes stopped protection (optionally under another policy); resuming a protected VM changes nothing. */
  async resume(vmName: string, policy?: string): Promise<ProtectedItem> {
    const item = await this.#store.getItem(vmName)
    if (item.state === 'Protected' && (policy === undefined || policy === item.policyName)) return item
    return this.#store.resume(vmName, policy)
  }

  /**
   * Stops protection. Keeping data leaves the points to their expiry. Deleting data checks first that
   * it can (no backup running, the vault open if it exists), then stops the item, deletes every
   * point's snapshots and vault copy — what is already gone counts as deleted, so a vault deleted or
   * recreated does not stop it — and drops the item. Running it again finishes what an interruption
   * left; on a VM no longer protected it answers NotProtected.
   */
  async stopProtection(
    vmName: string,
    options: { deleteData: boolean },
  ): Promise<{
    vmName: string
    state: 'Protected' | 'ProtectionStopped' | 'NotProtected'
    item?: ProtectedItem
    deletedPoints: string[]
  }> {
    const item = await this.#store.findItem(vmName)
    if (!item) {
      if (options.deleteData) return { vmName, state: 'NotProtected', deletedPoints: [] }
      throw new CairnError(
        'ProtectedItemNotFound',
        `Cannot stop protection of VM "${vmName}": it is not protected`,
      )
    }
    if (!options.deleteData) {
      const stopped = (await this.#store.stopProtection(vmName, { deleteData: false })).item
      return { vmName, state: stopped.state, item: stopped, deletedPoints: [] }
    }
    if (this.#busyVms.has(vmName))
      throw new CairnError(
        'BackupInProgress',
        `Cannot delete the backup data of VM "${vmName}": a backup of it is running; cancel it or wait`,
      )
    this.#busyVms.add(vmName)
    try {
      const points = await this.#store.listRecoveryPoints(vmName)
      const inVault = points.some((p) => p.disks.some((d) => d.vaultBackup))
      // A locked vault would stop the deletion half way: refuse before anything changes.
      if (this.#vault && inVault && (await this.#vault.hasVault(item.vault)))
        await this.#vault.openVault(item.vault)
      await this.#store.stopProtection(vmName, { deleteData: false })
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
   * Forgets a VM (its disks stay). Refused while it is protected or has recovery points; points whose
   * data is gone are dropped first, so a VM stranded by a lost vault can go once protection stopped.
   */
  async deleteVm(vmName: string): Promise<void> {
    if (await this.#store.findItem(vmName)) await this.reconcile(vmName, { vault: true })
    await this.#store.deleteVm(vmName)
  }

  async #needVault(vault: string, what: string): Promise<void> {
    if (this.#vault && !(await this.#vault.hasVault(vault)))
      throw new CairnError('VaultNotFound', `Cannot ${what}: vault "${vault}" does not exist`)
  }

  /** Starts a backup as a job and answers the job at once ("backup now" answers 202 with it). */
  async startBackup(vmName: string, options: BackupOptions = {}): Promise<Job> {
    return (await this.#startBackup(vmName, options)).job
  }

  /** Runs a backup to its end; resolves with the finished job (Failed jobs resolve too). */
  async backup(vmName: string, options: BackupOptions = {}): Promise<Job> {
    return (await this.#startBackup(vmName, options)).done
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

  async #startBackup(vmName: string, options: BackupOptions): Promise<StartedJob> {
    const vm = await this.#store.getVm(vmName)
    const item = await this.#store.getItem(vmName)
    if (item.state !== 'Protected') {
      throw new CairnError(
        'ProtectionStopped',
        `Cannot back up VM "${vmName}": its protection is stopped; resume it first`,
      )
    }
    if (this.#busyVms.has(vmName)) {
      throw new CairnError(
        'BackupInProgress',
        `Cannot back up VM "${vmName}": a backup of it is already running`,
      )
    }
    this.#busyVms.add(vmName)
    try {
      const policy = await this.#store.getPolicy(item.vault, item.policyName!)
      const disks = await this.#store.disksToBackUp(vmName)
      const kind = options.kind ?? 'OnDemand'
      if (kind === 'OnDemand') await this.#checkOnDemandLimit(vmName, policy)
      const b = { vm, itemId: item.id, vault: item.vault, policy, disks, kind, options }
      const started = await this.#jobs.start(
        {
          kind: 'backup',
          resource: `vms/${vmName}`,
          vm: vmName,
          itemId: item.id,
          vault: item.vault,
          startedBy: options.startedBy ?? (kind === 'Scheduled' ? 'scheduler' : 'local'),
          details: { kind, disks: disks.map((d) => diskLabel(d.lun)) },
        },
        (ctx) => this.#runBackup(ctx, b),
        options.signal ? { interruptOn: options.signal } : {},
      )
      const done = started.done.finally(() => {
        this.#busyVms.delete(vmName)
        this.#running.delete(started.job.id)
      })
      this.#running.set(started.job.id, done)
      return { job: started.job, done }
    } catch (err) {
      this.#busyVms.delete(vmName)
      throw err
    }
  }

  /**
   * Refuses an on-demand backup of a VM past the day's allowance (3, as the reference) in the policy's
   * time zone. Failed and cancelled attempts do not count.
   */
  async #checkOnDemandLimit(vmName: string, policy: BackupPolicy): Promise<void> {
    const now = this.#now()
    const wall = toWall(now, policy.timeZone)
    const dayStart = fromWall(wall.year, wall.month, wall.day, 0, 0, policy.timeZone)
    const { items } = await this.#jobs.list({
      kind: 'backup',
      vm: vmName,
      since: new Date(dayStart),
      state: ['Queued', 'Running', 'Completed'],
      limit: 1000,
    })
    const taken = items.filter((j) => j.details.kind === 'OnDemand').length
    if (taken >= this.#onDemandPerDay) {
      throw new CairnError(
        'OnDemandBackupLimit',
        `Cannot back up VM "${vmName}" on demand: it has had ${taken} on-demand backups today ` +
          `(${policy.timeZone}), the most a day allows; the next can run after midnight`,
      )
    }
  }

  async #runBackup(
    ctx: JobContext,
    b: {
      vm: VmSpec & { id: string }
      itemId: string
      vault: string
      policy: BackupPolicy
      disks: { lun: number | 'os'; disk: DiskRef }[]
      kind: 'Scheduled' | 'OnDemand'
      options: BackupOptions
    },
  ): Promise<Record<string, unknown>> {
    const { signal, details } = ctx
    const warnings: string[] = []
    let snapshots: { disk: DiskRef; snapshot: string }[] = []
    let point: VmRecoveryPoint | undefined
    try {
      // 1. Quiesce through the agent, if any. An unreachable agent means crash-consistent, said so.
      let quiesce: AgentQuiesce | undefined
      const agent = b.vm.agent ? new AgentClient({ url: b.vm.agent.url, token: b.vm.agent.token }) : undefined
      let consistency: Consistency = 'CrashConsistent'
      if (agent) {
        await ctx.phase('Quiesce')
        try {
          quiesce = await agent.quiesce(signal)
          consistency = quiesce.consistency
          details.preScript = quiesce.preScript
          details.freeze = quiesce.freeze
          if (quiesce.preScript.status === 'Error')
            warnings.push(`pre-script failed: ${quiesce.preScript.message}`)
          if (quiesce.freeze.status === 'Error') warnings.push(`freeze failed: ${quiesce.freeze.message}`)
        } catch (err) {
          if (!isCairnError(err) || err.code !== 'AgentUnreachable') throw err
          warnings.push(`${err.message}; the backup is crash-consistent`)
        }
      }
      // 2. One consistency-group snapshot of all included disks; 3. thaw at once, whatever happened.
      await ctx.phase('TakeSnapshot')
      const refs = b.disks.map((d) => d.disk)
      let thaw: AgentThaw | undefined
      try {
        signal.throwIfAborted()
        const infos = await this.#disks.snapshotGroup(refs)
        snapshots = infos.map((info, i) => ({ disk: refs[i]!, snapshot: info.snapshot! }))
        // Recorded before any data moves: a service that dies from here on leaves snapshots that the
        // next start removes (cleanInterrupted).
        details.snapshots = snapshots
      } finally {
        if (agent && quiesce) {
          try {
            thaw = await agent.thaw(quiesce.sessionId)
          } catch (err) {
            warnings.push(`thaw failed (${(err as Error).message}); the agent's watchdog thaws the guest`)
          }
        }
      }
      if (quiesce) {
        consistency = thaw ? thaw.consistency : 'CrashConsistent'
        if (thaw?.autoThawed)
          warnings.push('the agent thawed by itself before the snapshot finished; crash-consistent')
        if (thaw) details.postScript = thaw.postScript
        if (thaw?.error)
          throw new CairnError(
            thaw.error.code === 'ScriptTimeout' ? 'ScriptTimeout' : 'PostScriptExecutionFailed',
            thaw.error.message,
          )
        if (thaw?.postScript.status === 'Error')
          warnings.push(`post-script failed: ${thaw.postScript.message}`)
      }
      details.consistency = consistency
      await ctx.phase('SnapshotTaken')
      // 4. The point as it will be written, in the snapshot tier.
      const time = new Date(this.#now())
      const rpDisks: VmRecoveryPointDisk[] = snapshots.map((s, i) => {
        const lun = b.disks[i]!.lun
        return {
          name: diskLabel(lun),
          ...(lun !== 'os' ? { lun } : {}),
          source: s.disk,
          size: this.#disks.getDisk(s.disk, s.snapshot).size,
          snapshot: s.snapshot,
        }
      })
      const {
        id: _id,
        createdAt: _c,
        updatedAt: _u,
        ...vmSpec
      } = b.vm as VmSpec & { id: string; createdAt?: string; updatedAt?: string }
      const rp: VmRecoveryPoint = {
        // One id form for both tiers: the vault point of this recovery point gets the same id.
        id: await this.#newPointId(time),
        itemId: b.itemId,
        time: time.toISOString(),
        kind: b.kind,
        consistency,
        tier: 'Snapshot',
        disks: rpDisks,
        vm: vmSpec,
      }
      if (b.kind === 'OnDemand')
        rp.expiresAt = (b.options.expiresAt ?? new Date(onDemandExpiry(time.getTime()))).toISOString()
      // 5. Transfer to the vault, only what changed since the previous point still in both tiers.
      // Under an hourly policy only the day's last scheduled backup goes to the vault, as in the reference.
      const laterToday =
        b.kind === 'Scheduled' &&
        b.policy.schedule.frequency === 'Hourly' &&
        laterSlotToday(b.policy, time.getTime())
      if (laterToday) details.vault = 'skipped: a later scheduled backup today goes to the vault'
      if (this.#vault && !laterToday) {
        const sent = await this.#transfer(ctx, rp, b.vm.name, b.vault)
        rp.tier = 'SnapshotAndVault'
        rp.disks = sent.disks
        details.vaultPoint = sent.vaultPoint
        details.bytesAdded = sent.bytesAdded
        details.incremental = sent.incremental
        await ctx.phase('Commit')
      }
      // 6. The point exists now, whole: it is listed, restorable and the base of the next backup.
      signal.throwIfAborted()
      point = await this.#store.addRecoveryPoint(rp)
      details.recoveryPoint = point.id
      // 7. Snapshots past the instant-restore retention go (the latest always stays).
      await ctx.phase('SnapshotRetention')
      await this.#pruneSnapshots(b.vm.name, b.policy)
      await this.#store.recordBackup(b.itemId, warnings.length > 0 ? 'CompletedWithWarnings' : 'Completed')
      details.warnings = warnings
      return { recoveryPoint: point.id, tier: point.tier, warnings }
    } catch (err) {
      // Never half a point: snapshots taken for a point that was never written are removed, and a
      // vault point written for it is deleted.
      if (!point) {
        for (const s of snapshots) await this.#disks.deleteSnapshot(s.disk, s.snapshot).catch(() => {})
        if (typeof details.vaultPoint === 'string' && this.#vault)
          await this.#vault.deletePoint(b.vault, details.vaultPoint).catch(() => {})
      }
      details.warnings = warnings
      await this.#store.recordBackup(b.itemId, signal.aborted ? 'Cancelled' : 'Failed').catch(() => {})
      const e = isCairnError(err) ? err : new CairnError('Internal', (err as Error).message, { cause: err })
      this.#log.warn('backup failed', { vm: b.vm.name, job: ctx.job.id, code: e.code, message: e.message })
      throw e
    }
  }

  /** A new recovery point id (the vault's form, `20261204T195200123Z-7b55`), unused in the catalog. */
  async #newPointId(time: Date): Promise<string> {
    for (;;) {
      const id = newRecoveryPointId(time)
      if (!(await this.#store.findRecoveryPoint(id))) return id
    }
  }

  async #transfer(
    ctx: JobContext,
    point: VmRecoveryPoint,
    vmName: string,
    vault: string,
  ): Promise<{ disks: VmRecoveryPointDisk[]; vaultPoint: string; bytesAdded: number; incremental: boolean }> {
    const vaultApi = this.#vault!
    await ctx.phase('TransferToVault')
    // The vault may have lost points (deleted and recreated, pruned): the records learn it first, so
    // that the base is a point the vault still holds. A vault that is gone fails the job here.
    if (!(await vaultApi.hasVault(vault)))
      throw new CairnError(
        'VaultNotFound',
        `Cannot back up VM "${vmName}": vault "${vault}" does not exist; protect it into another vault`,
      )
    const report = await this.reconcile(vmName, { vault: true })
    if (report.vaultUnknown) throw new CairnError('VaultKeyRequired', report.vaultUnknown)
    // The base: the newest earlier point in both tiers whose snapshots all still exist.
    const previous = (await this.#store.listRecoveryPoints(vmName))
      .filter((p) => p.tier === 'SnapshotAndVault' && p.disks.every((d) => d.snapshot && d.vaultBackup))
      .at(-1)
    const total = point.disks.reduce((n, d) => n + d.size, 0)
    ctx.progress({ bytesDone: 0, bytesTotal: total })
    const { agent: _agent, ...config } = point.vm
    const request: Parameters<VaultTransfer['backupPoint']>[0] = {
      vault,
      id: point.id,
      item: { kind: 'vm', name: vmName, config: { ...config, job: ctx.job.id } },
      consistency: point.consistency,
      disks: point.disks.map((d) => {
        const prev = previous?.disks.find((p) => refKey(p.source) === refKey(d.source) && p.size === d.size)
        const disk: Parameters<VaultTransfer['backupPoint']>[0]['disks'][number] = {
          name: d.name,
          disk: d.source,
          snapshot: d.snapshot!,
          size: d.size,
        }
        if (d.lun !== undefined) disk.lun = d.lun
        if (prev?.snapshot) disk.baseSnapshot = prev.snapshot
        return disk
      }),
    }
    if (point.expiresAt) request.expiresAt = point.expiresAt
    const prevRef = previous ? vaultRef(previous.disks[0]!) : undefined
    if (prevRef) request.base = prevRef.point
    const res = await vaultApi.backupPoint(request, {
      signal: ctx.signal,
      onProgress: (p) => ctx.progress({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal || total }),
    })
    ctx.details.vaultPoint = res.id
    ctx.progress({ bytesDone: total, bytesTotal: total })
    const disks = point.disks.map((d) => ({ ...d, vaultBackup: `${res.id}/${d.name}` }))
    return { disks, vaultPoint: res.id, bytesAdded: res.bytesAdded, incremental: prevRef !== undefined }
  }

  /** Removes snapshots older than the instant-restore retention, for points the vault also holds. */
  async #pruneSnapshots(vmName: string, policy: BackupPolicy): Promise<void> {
    const points = await this.#store.listRecoveryPoints(vmName)
    const inSnapshots = points
      .filter((p) => p.tier !== 'Vault')
      .map((p) => ({ ...p, time: Date.parse(p.time), point: p }))
    for (const p of expiredSnapshots(inSnapshots, policy, this.#now())) {
      if (p.point.tier !== 'SnapshotAndVault') continue
      for (const d of p.point.disks)
        if (d.snapshot) await this.#disks.deleteSnapshot(d.source, d.snapshot).catch(() => {})
      await this.#store.updateRecoveryPoint(p.point.id, {
        tier: 'Vault',
        disks: p.point.disks.map(({ snapshot: _s, ...rest }) => rest),
      })
    }
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
          const r: { id: string; time: number; kind: 'Scheduled' | 'OnDemand'; expiresAt?: number } = {
            id: p.id,
            time: Date.parse(p.time),
            kind: p.kind,
          }
          if (p.expiresAt) r.expiresAt = Date.parse(p.expiresAt)
          return r
        }),
        policy,
        this.#now(),
      )
      for (const v of plan.expire) {
        const p = points.find((x) => x.id === v.id)!
        await this.deletePointData(item.vault, p)
        await this.#store.deleteRecoveryPoint(p.id)
        pruned++
        vaults.add(item.vault)
      }
    }
    return { pruned, vaults: [...vaults] }
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

/** True when the policy has another slot later on the same calendar day (in its zone) as `at`. */
function laterSlotToday(policy: BackupPolicy, at: number): boolean {
  const day = toWall(at, policy.timeZone)
  return scheduledTimes(policy, at + 1, at + 86_400_000).some((t) => {
    const w = toWall(t, policy.timeZone)
    return w.year === day.year && w.month === day.month && w.day === day.day
  })
}
