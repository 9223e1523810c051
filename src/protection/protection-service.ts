import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import { type Consistency, newRecoveryPointId } from '../vault/index.js'
import { fromWall, toWall } from './_zoned-time.js'
import { AgentClient, type AgentQuiesce, type AgentThaw } from './agent-client.js'
import { DiskGuard } from './disk-guard.js'
import { diskLabel } from './disk-label.js'
import { expiredSnapshots, onDemandExpiry, planRetention } from './plan-retention.js'
import { PointReconciler, type ReconcileReport, vaultRef } from './point-reconciler.js'
import { type BackupPolicy, POLICY_BOUNDS } from './policy.js'
import type {
  Job,
  ProtectedItem,
  ProtectionStore,
  VmRecoveryPoint,
  VmRecoveryPointDisk,
} from './protection-store.js'
import { scheduledTimes } from './schedule.js'
import type { RunningJob, VaultTransfer } from './vault-transfer.js'
import { refKey, type VmSpec } from './vm.js'
import { type RunningEntry, VmRestores } from './vm-restores.js'

/** Options of a ProtectionService. */
export interface ProtectionServiceOptions {
  store: ProtectionStore
  disks: DiskStore
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
  signal?: AbortSignal
}

/**
 * Backups and restores of VMs: quiesce through the agent → one consistency-group snapshot of every
 * included disk → thaw → a recovery point in the snapshot tier → transfer to the vault (only the diff)
 * → "SnapshotAndVault" → snapshots past the instant-restore retention removed (the latest kept).
 * Every action is a job; one backup of a VM at a time.
 */
export class ProtectionService {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #vault: VaultTransfer | undefined
  readonly #log: Logger
  readonly #now: () => number
  readonly #onDemandPerDay: number
  readonly #running = new Map<string, RunningEntry>()
  readonly #busyVms = new Set<string>()
  /** Points a running backup is writing: reconciliation leaves them alone. */
  readonly #writing = new Set<string>()
  readonly #reconciler: PointReconciler
  readonly #restores: VmRestores
  /** Deletes of disks, snapshots, containers and accounts that protection depends on (refused unless forced). */
  readonly guard: DiskGuard

  constructor(options: ProtectionServiceOptions) {
    this.#store = options.store
    this.#disks = options.disks
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
      vault: this.#vault,
      reconciler: this.#reconciler,
      running: this.#running,
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
    return this.#reconciler.reconcile(vmName, { ...options, skip: this.#writing })
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
    const { job, run } = await this.#prepareBackup(vmName, options)
    void run().catch(() => {})
    return job
  }

  /** Runs a backup to its end; resolves with the finished job (Failed jobs resolve too). */
  async backup(vmName: string, options: BackupOptions = {}): Promise<Job> {
    const { job, run } = await this.#prepareBackup(vmName, options)
    await run().catch(() => {})
    return this.#store.getJob(job.id)
  }

  /** Asks a running job to stop; it ends Cancelled without leaving half a recovery point. */
  async cancel(jobId: string): Promise<Job> {
    const r = this.#running.get(jobId)
    if (!r) {
      const job = await this.#store.getJob(jobId)
      throw new CairnError('Cancelled', `Cannot cancel job "${jobId}": it is ${job.status}, not running`)
    }
    await this.#store.updateJob(jobId, { status: 'Cancelling' })
    r.abort.abort(new CairnError('Cancelled', `Job ${jobId} was cancelled`))
    await r.done.catch(() => {})
    return this.#store.getJob(jobId)
  }

  /** Cancels every running job and waits for them to end (service shutdown). */
  async close(): Promise<void> {
    for (const r of this.#running.values())
      r.abort.abort(new CairnError('Cancelled', 'The service is stopping'))
    await this.idle()
  }

  /** Resolves when no job runs. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()].map((r) => r.done))
  }

  async #prepareBackup(vmName: string, options: BackupOptions) {
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
      const job = await this.#store.createJob({
        type: 'Backup',
        entity: vmName,
        itemId: item.id,
        vault: item.vault,
        phase: 'Queued',
        details: { kind, disks: disks.map((d) => diskLabel(d.lun)) },
      })
      const abort = new AbortController()
      if (options.signal)
        options.signal.addEventListener('abort', () => abort.abort(options.signal!.reason), { once: true })
      const run = async () => {
        try {
          await this.#runBackup(
            job,
            { vm, itemId: item.id, vault: item.vault, policy, disks, kind, options },
            abort.signal,
          )
        } finally {
          this.#busyVms.delete(vmName)
          this.#running.delete(job.id)
        }
      }
      let resolveDone!: () => void
      const done = new Promise<void>((r) => {
        resolveDone = r
      })
      this.#running.set(job.id, { job, abort, done })
      return { job, run: () => run().finally(resolveDone) }
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
    const jobs = await this.#store.listJobs({ type: 'Backup', entity: vmName, since: new Date(dayStart) })
    const taken = jobs.filter(
      (j) => j.details.kind === 'OnDemand' && j.status !== 'Failed' && j.status !== 'Cancelled',
    ).length
    if (taken >= this.#onDemandPerDay) {
      throw new CairnError(
        'OnDemandBackupLimit',
        `Cannot back up VM "${vmName}" on demand: it has had ${taken} on-demand backups today ` +
          `(${policy.timeZone}), the most a day allows; the next can run after midnight`,
      )
    }
  }

  async #runBackup(
    job: Job,
    b: {
      vm: VmSpec & { id: string }
      itemId: string
      vault: string
      policy: BackupPolicy
      disks: { lun: number | 'os'; disk: DiskRef }[]
      kind: 'Scheduled' | 'OnDemand'
      options: BackupOptions
    },
    signal: AbortSignal,
  ): Promise<void> {
    const warnings: string[] = []
    const details: Record<string, unknown> = { ...job.details }
    let snapshots: { disk: DiskRef; snapshot: string }[] = []
    let point: VmRecoveryPoint | undefined
    try {
      // 1. Quiesce through the agent, if any. An unreachable agent means crash-consistent, said so.
      let quiesce: AgentQuiesce | undefined
      const agent = b.vm.agent ? new AgentClient({ url: b.vm.agent.url, token: b.vm.agent.token }) : undefined
      let consistency: Consistency = 'CrashConsistent'
      if (agent) {
        await this.#store.updateJob(job.id, { phase: 'Quiesce' })
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
      await this.#store.updateJob(job.id, { phase: 'TakeSnapshot' })
      const refs = b.disks.map((d) => d.disk)
      let thaw: AgentThaw | undefined
      try {
        signal.throwIfAborted()
        const infos = await this.#disks.snapshotGroup(refs)
        snapshots = infos.map((info, i) => ({ disk: refs[i]!, snapshot: info.snapshot! }))
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
      // 4. The recovery point exists now, in the snapshot tier: instant restore works at once.
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
        // One id format for both tiers: the vault point of this recovery point gets the same id.
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
      this.#writing.add(rp.id)
      point = await this.#store.addRecoveryPoint(rp)
      details.recoveryPoint = point.id
      // 5. Transfer to the vault, only what changed since the previous point still in both tiers.
      // Under an hourly policy only the day's last scheduled backup goes to the vault, as in the reference.
      const laterToday =
        b.kind === 'Scheduled' &&
        b.policy.schedule.frequency === 'Hourly' &&
        laterSlotToday(b.policy, time.getTime())
      if (laterToday) details.vault = 'skipped: a later scheduled backup today goes to the vault'
      if (this.#vault && !laterToday) {
        Object.assign(details, await this.#transfer(job, point, b.vault, signal))
        point = await this.#store.getRecoveryPoint(point.id)
      }
      // 6. Snapshots past the instant-restore retention go (the latest always stays).
      await this.#store.updateJob(job.id, { phase: 'SnapshotRetention' })
      await this.#pruneSnapshots(b.vm.name, b.policy)
      await this.#store.recordBackup(b.itemId, warnings.length > 0 ? 'CompletedWithWarnings' : 'Completed')
      details.warnings = warnings
      await this.#store.finishJob(job.id, {
        status: warnings.length > 0 ? 'CompletedWithWarnings' : 'Completed',
        details,
      })
    } catch (err) {
      // Never half a point: a point without its vault copy stays a whole snapshot-tier point; snapshots
      // taken for a point that was never written are removed.
      if (!point) {
        for (const s of snapshots) await this.#disks.deleteSnapshot(s.disk, s.snapshot).catch(() => {})
      }
      const cancelled = signal.aborted
      const e = isCairnError(err) ? err : new CairnError('Internal', (err as Error).message, { cause: err })
      details.warnings = warnings
      await this.#store.recordBackup(b.itemId, cancelled ? 'Cancelled' : 'Failed')
      await this.#store.finishJob(job.id, {
        status: cancelled ? 'Cancelled' : 'Failed',
        error: cancelled
          ? { code: 'Cancelled', message: 'The backup was cancelled' }
          : { code: e.code, message: e.message },
        details,
      })
      this.#log.warn('backup failed', { vm: b.vm.name, job: job.id, code: e.code, message: e.message })
      throw e
    } finally {
      if (point) this.#writing.delete(point.id)
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
    job: Job,
    point: VmRecoveryPoint,
    vault: string,
    signal: AbortSignal,
  ): Promise<{ vaultPoint: string; bytesAdded: number; incremental: boolean }> {
    const vaultApi = this.#vault!
    await this.#store.updateJob(job.id, { phase: 'TransferToVault' })
    const item = await this.#store.getItemById(point.itemId)
    // The vault may have lost points (deleted and recreated, pruned): the records learn it first, so
    // that the base is a point the vault still holds. A vault that is gone fails the job here.
    if (!(await vaultApi.hasVault(vault)))
      throw new CairnError(
        'VaultNotFound',
        `Cannot transfer recovery point ${point.id} of VM "${item.vmName}": vault "${vault}" does not exist; the point stays in the snapshot tier`,
      )
    const report = await this.reconcile(item.vmName, { vault: true })
    if (report.vaultUnknown) throw new CairnError('VaultKeyRequired', report.vaultUnknown)
    // The base: the newest earlier point in both tiers whose snapshots all still exist.
    const previous = (await this.#store.listRecoveryPoints(item.vmName))
      .filter(
        (p) =>
          p.id !== point.id &&
          p.tier === 'SnapshotAndVault' &&
          p.disks.every((d) => d.snapshot && d.vaultBackup),
      )
      .at(-1)
    const total = point.disks.reduce((n, d) => n + d.size, 0)
    await this.#store.updateJob(job.id, { bytesDone: 0, bytesTotal: total })
    let last = 0
    const { agent: _agent, ...config } = point.vm
    const request: Parameters<VaultTransfer['backupPoint']>[0] = {
      vault,
      id: point.id,
      item: { kind: 'vm', name: item.vmName, config: { ...config, recoveryPoint: point.id } },
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
      signal,
      onProgress: (p) => {
        if (Date.now() - last < 200) return
        last = Date.now()
        void this.#store.updateJob(job.id, { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal || total })
      },
    })
    const disks = point.disks.map((d) => ({ ...d, vaultBackup: `${res.id}/${d.name}` }))
    await this.#store.updateRecoveryPoint(point.id, { tier: 'SnapshotAndVault', disks })
    await this.#store.updateJob(job.id, { bytesDone: total, bytesTotal: total })
    return { vaultPoint: res.id, bytesAdded: res.bytesAdded, incremental: prevRef !== undefined }
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
   * Restores a recovery point as a new VM: new disks (from the snapshot tier when it still holds the
   * point — no data copied — otherwise from the vault) plus the saved configuration. When the VM
   * cannot be registered the disks stay restored and the job says so.
   */
  restoreVm(pointId: string, options: { as: string; signal?: AbortSignal }): Promise<RunningJob> {
    return this.#restores.restoreVm(pointId, options)
  }

  /** Restores chosen disks (all by default) of a recovery point as new disks `<prefix>-os`, `<prefix>-lunN`. */
  restoreDisks(
    pointId: string,
    options: { prefix: string; disks?: (number | 'os')[]; signal?: AbortSignal },
  ): Promise<RunningJob> {
    return this.#restores.restoreDisks(pointId, options)
  }

  /**
   * Replaces the disks of an existing VM with those of a recovery point. The current disks are
   * snapshotted first and those snapshots kept (named in the job), then each disk takes the point's content.
   */
  replaceDisks(vmName: string, pointId: string, options: { signal?: AbortSignal } = {}): Promise<RunningJob> {
    if (this.#busyVms.has(vmName))
      throw new CairnError(
        'BackupInProgress',
        `Cannot replace the disks of VM "${vmName}": a backup of it is running`,
      )
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
