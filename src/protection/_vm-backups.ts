// Backups of protected VMs as jobs, from the agent's freeze to a recovery point in both tiers.
import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, diskLabel, isCairnError, type Logger } from '../util/index.js'
import { type BackupCheckpoint, type Consistency, newRecoveryPointId } from '../vault/index.js'
import { resumeOptions } from './_job-steps.js'
import { fromWall, toWall } from './_zoned-time.js'
import type { AgentFor, AgentQuiesce, AgentThaw, VmAgent } from './agent-client.js'
import { checkSnapshots } from './disk-backup.js'
import type { JobBody, JobContext, JobService, StartedJob } from './job-service.js'
import { expiredSnapshots, onDemandExpiry, planRetention } from './plan-retention.js'
import { type ReconcileReport, vaultRef } from './point-reconciler.js'
import type { BackupPolicy, RetentionRules } from './policy.js'
import type { ProtectionStore, VmRecoveryPoint, VmRecoveryPointDisk } from './protection-store.js'
import { scheduledTimes } from './schedule.js'
import type { VaultTransfer } from './vault-transfer.js'
import { refKey, type VmSpec } from './vm.js'

/** Options of one backup. */
export interface BackupOptions {
  kind?: 'Scheduled' | 'OnDemand'
  /** A scheduled backup: the policy slot it runs for (epoch ms), recorded in its point. */
  slot?: number
  /** On-demand expiry (default 30 days). */
  expiresAt?: Date
  /** Aborted when the caller (the scheduler) stops: the job ends Interrupted. */
  signal?: AbortSignal
  /** Who asks (default `local`). */
  startedBy?: string
}

/** The copy a policy asks for after a backup of a VM reached the policy's vault. */
export interface PolicyCopyRequest {
  from: string
  to: string
  vm: string
  /** Only points newer than the newest copy of the VM in `to`. */
  onlyNewer: true
  /** The copies' retention: the policy's time zone and the copy's rules (or the policy's own). */
  policy: { timeZone: string; retention: RetentionRules }
  startedBy: string
}

/** What one backup of a VM works with. */
interface BackupRun {
  vm: VmSpec & { id: string }
  itemId: string
  vault: string
  policy: BackupPolicy
  disks: { lun: number | 'os'; disk: DiskRef }[]
  kind: 'Scheduled' | 'OnDemand'
  options: BackupOptions
}

/**
 * Backups of VMs (ProtectionService's part for them): quiesce through the agent → one
 * consistency-group snapshot of every included disk → thaw → a recovery point in the snapshot tier →
 * transfer to the vault (only the diff) → "SnapshotAndVault" → snapshots past the instant-restore
 * retention removed (the latest kept). A recovery point is written only when its backup completes.
 */
export class VmBackups {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #jobs: JobService
  readonly #vault: VaultTransfer | undefined
  readonly #log: Logger
  readonly #now: () => number
  readonly #onDemandPerDay: number
  readonly #running: Map<string, Promise<Job>>
  readonly #busy: Set<string>
  readonly #reconcile: (vm: string, options: { vault?: boolean }) => Promise<ReconcileReport>
  readonly #agentFor: AgentFor
  readonly #qgaFor: (channel: string) => VmAgent
  readonly #copyPoints: ((request: PolicyCopyRequest) => Promise<Job>) | undefined

  readonly #pinned: (pointId: string) => boolean

  constructor(options: {
    store: ProtectionStore
    disks: DiskStore
    jobs: JobService
    vault?: VaultTransfer
    logger: Logger
    now: () => number
    /** On-demand backups a VM may have a day. */
    onDemandPerDay: number
    /** The service's running jobs (it waits for them at close). */
    running: Map<string, Promise<Job>>
    /** The VMs with a backup running or their data being deleted (shared with the service). */
    busy: Set<string>
    reconcile: (vm: string, options: { vault?: boolean }) => Promise<ReconcileReport>
    /** The client of a VM's agent. */
    agentFor: AgentFor
    /** True while a point must keep its data (it is mounted): its snapshots are not pruned. */
    pinned?: (pointId: string) => boolean
    /** The client of a VM's QEMU guest agent, by its channel (`unix:PATH` or `libvirt:DOMAIN`). */
    qgaFor: (channel: string) => VmAgent
    /** Starts a policy's copy job (see ProtectionServiceOptions.copyPoints). */
    copyPoints?: (request: PolicyCopyRequest) => Promise<Job>
  }) {
    this.#pinned = options.pinned ?? (() => false)
    this.#store = options.store
    this.#disks = options.disks
    this.#jobs = options.jobs
    this.#vault = options.vault
    this.#log = options.logger
    this.#now = options.now
    this.#onDemandPerDay = options.onDemandPerDay
    this.#running = options.running
    this.#busy = options.busy
    this.#reconcile = options.reconcile
    this.#agentFor = options.agentFor
    this.#qgaFor = options.qgaFor
    this.#copyPoints = options.copyPoints
  }

  /**
   * Starts a backup of a VM as a job; one backup of a VM at a time. On a shared catalog a VM whose disks
   * are on another process (`vm.host`) gets its job queued for that process, which claims and runs it.
   */
  async start(vmName: string, options: BackupOptions): Promise<StartedJob> {
    const vm = await this.#store.getVm(vmName)
    const item = await this.#store.getItem(vmName)
    if (item.state !== 'Protected') {
      throw new CairnError(
        'ProtectionStopped',
        `Cannot back up VM "${vmName}": its protection is stopped; resume it first`,
      )
    }
    const kind = options.kind ?? 'OnDemand'
    const spec = (disks: { lun: number | 'os' }[]) => ({
      kind: 'backup' as const,
      resource: `vms/${vmName}`,
      vm: vmName,
      itemId: item.id,
      vault: item.vault,
      startedBy: options.startedBy ?? (kind === 'Scheduled' ? 'scheduler' : 'local'),
      details: {
        kind,
        disks: disks.map((d) => diskLabel(d.lun)),
        ...(kind === 'Scheduled' && options.slot !== undefined
          ? { slot: new Date(options.slot).toISOString() }
          : {}),
        ...(options.expiresAt ? { expiresAt: options.expiresAt.toISOString() } : {}),
      },
    })
    const owner = this.#jobs.owner
    if (vm.host !== undefined && owner !== undefined && vm.host !== owner) {
      // Its disks are in another process's disk store: that process runs the backup.
      await this.#checkNotQueued(vmName)
      const policy = await this.#store.getPolicy(item.vault, item.policyName!)
      if (kind === 'OnDemand') await this.#checkOnDemandLimit(vmName, policy)
      return this.#jobs.queue(spec(await this.#store.disksToBackUp(vmName)), vm.host)
    }
    if (this.#busy.has(vmName)) {
      throw new CairnError(
        'BackupInProgress',
        `Cannot back up VM "${vmName}": a backup of it is already running`,
      )
    }
    this.#busy.add(vmName)
    try {
      const policy = await this.#store.getPolicy(item.vault, item.policyName!)
      const disks = await this.#store.disksToBackUp(vmName)
      if (kind === 'OnDemand') await this.#checkOnDemandLimit(vmName, policy)
      const b = { vm, itemId: item.id, vault: item.vault, policy, disks, kind, options }
      const started = await this.#jobs.start(
        spec(disks),
        (ctx) => this.#runBackup(ctx, b),
        options.signal ? { interruptOn: options.signal } : {},
      )
      return this.#track(vmName, started)
    } catch (err) {
      this.#busy.delete(vmName)
      throw err
    }
  }

  /**
   * The work of a backup another process queued for this one (its disks are here), claimed by this
   * process's worker: a backup as `start` runs it, with the kind and expiry the job records.
   */
  async startQueued(job: Job): Promise<JobBody | undefined> {
    if (job.kind !== 'backup' || !job.vm) return undefined
    const vmName = job.vm
    const vm = await this.#store.getVm(vmName)
    const item = await this.#store.getItem(vmName)
    if (item.state !== 'Protected')
      throw new CairnError(
        'ProtectionStopped',
        `Cannot back up VM "${vmName}": its protection stopped while the backup was queued`,
      )
    if (this.#busy.has(vmName))
      throw new CairnError(
        'BackupInProgress',
        `Cannot back up VM "${vmName}": a backup of it is already running`,
      )
    const policy = await this.#store.getPolicy(item.vault, item.policyName!)
    const disks = await this.#store.disksToBackUp(vmName)
    const kind = job.details.kind === 'Scheduled' ? 'Scheduled' : 'OnDemand'
    const expiresAt = typeof job.details.expiresAt === 'string' ? new Date(job.details.expiresAt) : undefined
    const slot =
      kind === 'Scheduled' && typeof job.details.slot === 'string' ? Date.parse(job.details.slot) : undefined
    const options: BackupOptions = {
      kind,
      ...(expiresAt ? { expiresAt } : {}),
      ...(slot !== undefined ? { slot } : {}),
    }
    const b: BackupRun = { vm, itemId: item.id, vault: item.vault, policy, disks, kind, options }
    this.#busy.add(vmName)
    return async (ctx) => {
      try {
        return await this.#runBackup(ctx, b)
      } finally {
        this.#busy.delete(vmName)
      }
    }
  }

  /** Keeps a started backup in the service's running jobs and its VM busy until it ends. */
  #track(vmName: string, started: StartedJob): StartedJob {
    const done = started.done.finally(() => {
      this.#busy.delete(vmName)
      this.#running.delete(started.job.id)
    })
    this.#running.set(started.job.id, done)
    return { job: started.job, done }
  }

  /** Refuses a backup of a VM while another one is queued or running anywhere (the catalog's jobs). */
  async #checkNotQueued(vmName: string): Promise<void> {
    const { items } = await this.#jobs.list({
      kind: 'backup',
      vm: vmName,
      state: ['Queued', 'Running'],
      limit: 1,
    })
    if (items.length > 0)
      throw new CairnError(
        'BackupInProgress',
        `Cannot back up VM "${vmName}": backup job ${items[0]!.id} of it is ${items[0]!.state.toLowerCase()}`,
      )
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

  /**
   * At start-up, the work that resumes a VM backup the last run left in its vault transfer: the point
   * it planned (`details.point`) goes on from the vault's last checkpoint, reading the snapshots it
   * took (BackupSnapshotMissing when one is gone). Answers undefined for any other job: it ends
   * Interrupted.
   */
  async resume(job: Job): Promise<JobBody | undefined> {
    const planned = job.details.point as VmRecoveryPoint | undefined
    const snapshots = (job.details.snapshots ?? []) as { disk: DiskRef; snapshot: string }[]
    if (job.kind !== 'backup' || !job.vm || !job.vault || !planned || snapshots.length === 0) return undefined
    const vmName = job.vm
    checkSnapshots(
      this.#disks,
      snapshots.map((s) => s.disk),
      snapshots.map((s) => s.snapshot),
      `the backup of VM "${vmName}"`,
    )
    const vm = await this.#store.getVm(vmName)
    const item = await this.#store.getItem(vmName)
    const policy = await this.#store.getPolicy(item.vault, item.policyName!)
    const kind = planned.kind
    const b: BackupRun = { vm, itemId: item.id, vault: job.vault, policy, disks: [], kind, options: {} }
    this.#busy.add(vmName)
    return async (ctx) => {
      try {
        return await this.#runBackup(ctx, b, planned)
      } finally {
        this.#busy.delete(vmName)
      }
    }
  }

  /** Steps 1–7 of a backup; `planned`: a resumed backup's point, which goes on at its vault transfer. */
  async #runBackup(
    ctx: JobContext,
    b: BackupRun,
    planned?: VmRecoveryPoint,
  ): Promise<Record<string, unknown>> {
    const { signal, details } = ctx
    const warnings: string[] = planned ? [...((details.warnings ?? []) as string[])] : []
    let snapshots = (planned ? details.snapshots : []) as { disk: DiskRef; snapshot: string }[]
    let point: VmRecoveryPoint | undefined
    try {
      const rp = planned ?? (await this.#capture(ctx, b, warnings, (s) => (snapshots = s)))
      // 5. Transfer to the vault, only what changed since the previous point still in both tiers.
      // Under an hourly policy only the day's last scheduled backup goes to the vault, as in the reference.
      const laterToday =
        !planned &&
        b.kind === 'Scheduled' &&
        b.policy.schedule.frequency === 'Hourly' &&
        laterSlotToday(b.policy, rp.slot !== undefined ? Date.parse(rp.slot) : Date.parse(rp.time))
      if (laterToday) details.vault = 'skipped: a later scheduled backup today goes to the vault'
      if (this.#vault && !laterToday) {
        // The planned point is recorded before data moves: a service that dies resumes from it.
        details.point = rp
        details.warnings = warnings
        const sent = await this.#transfer(ctx, rp, b.vm.name, b.vault, b.policy)
        rp.tier = 'SnapshotAndVault'
        rp.disks = sent.disks
        details.vaultPoint = sent.vaultPoint
        details.bytesAdded = sent.bytesAdded
        details.incremental = sent.incremental
        delete details.point
        delete details.checkpoint
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
      // 8. A policy with a copy: a copy job brings the VM's new points to the other vault.
      if (b.policy.copy && typeof details.vaultPoint === 'string') await this.#startCopy(ctx, b)
      return { recoveryPoint: point.id, tier: point.tier, warnings }
    } catch (err) {
      // A service that stops during the vault transfer leaves the backup, snapshots and all, to
      // resume at its next start.
      if (!point && details.point && signal.aborted && ctx.suspend()) throw err
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

  /** Starts the policy's copy job; a copy that cannot start is recorded, the backup stands. */
  async #startCopy(ctx: JobContext, b: BackupRun): Promise<void> {
    const copy = b.policy.copy!
    if (!this.#copyPoints) return
    try {
      const job = await this.#copyPoints({
        from: b.vault,
        to: copy.vault,
        vm: b.vm.name,
        onlyNewer: true,
        // Without rules of its own, the copy keeps the policy's ranges (judged on the copy's side).
        policy: { timeZone: b.policy.timeZone, retention: copy.retention ?? b.policy.retention },
        startedBy: `policy:${b.policy.name}`,
      })
      ctx.details.copyJob = job.id
    } catch (err) {
      const e = isCairnError(err) ? err : new CairnError('Internal', String(err))
      ctx.details.copyError = { code: e.code, message: e.message }
      this.#log.warn('the copy of a backup could not start', { vm: b.vm.name, code: e.code })
    }
  }

  /** Steps 1–4: quiesce, one snapshot group, thaw; the point as it will be written (snapshot tier). */
  async #capture(
    ctx: JobContext,
    b: BackupRun,
    warnings: string[],
    took: (snapshots: { disk: DiskRef; snapshot: string }[]) => void,
  ): Promise<VmRecoveryPoint> {
    const { signal, details } = ctx
    let snapshots: { disk: DiskRef; snapshot: string }[] = []
    {
      // 1. Quiesce through the agent, if any. An unreachable agent means crash-consistent, said so.
      let quiesce: AgentQuiesce | undefined
      const agent = b.vm.qga
        ? this.#qgaFor(b.vm.qga)
        : b.vm.agent
          ? this.#agentFor({ url: b.vm.agent.url, token: b.vm.agent.token })
          : undefined
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
        took(snapshots)
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
        ...(b.kind === 'Scheduled' && b.options.slot !== undefined
          ? { slot: new Date(b.options.slot).toISOString() }
          : {}),
        consistency,
        tier: 'Snapshot',
        disks: rpDisks,
        vm: vmSpec,
      }
      if (b.kind === 'OnDemand')
        rp.expiresAt = (b.options.expiresAt ?? new Date(onDemandExpiry(time.getTime()))).toISOString()
      return rp
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
    policy: BackupPolicy,
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
    const report = await this.#reconcile(vmName, { vault: true })
    if (report.vaultUnknown) throw new CairnError('VaultKeyRequired', report.vaultUnknown)
    // The base: the newest earlier point in both tiers whose snapshots all still exist. A resumed
    // transfer keeps the base its checkpoint was made on (the diff must be against that point's snapshots).
    const checkpoint = ctx.details.checkpoint as BackupCheckpoint | undefined
    const previous = (await this.#store.listRecoveryPoints(vmName))
      .filter((p) => p.tier === 'SnapshotAndVault' && p.disks.every((d) => d.snapshot && d.vaultBackup))
      .filter((p) => !checkpoint || vaultRef(p.disks[0]!)?.point === checkpoint.base)
      .at(-1)
    // The total is what the transfer must read (the diff since the base, or the allocated data for a
    // full backup), which the vault engine tells with its first progress; never the disks' size.
    ctx.progress({ bytesDone: 0, bytesTotal: 0 })
    let total = 0
    const { agent: _agent, ...config } = point.vm
    const request: Parameters<VaultTransfer['backupPoint']>[0] = {
      vault,
      id: point.id,
      // The policy and kind let `undelete` rebuild the point's record from the vault alone.
      item: {
        kind: 'vm',
        name: vmName,
        config: {
          ...config,
          job: ctx.job.id,
          policy: policy.name,
          pointKind: point.kind,
          ...(point.slot !== undefined ? { slot: point.slot } : {}),
        },
      },
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
    // The retention the policy gives this point now (it is the day's point that goes to the vault): an
    // immutable vault holds it that long whatever the policy becomes.
    const time = Date.parse(point.time)
    const [verdict] = planRetention(
      [
        {
          id: point.id,
          time,
          kind: point.kind,
          ...(point.slot !== undefined ? { slot: Date.parse(point.slot) } : {}),
          ...(point.expiresAt ? { expiresAt: Date.parse(point.expiresAt) } : {}),
        },
      ],
      policy,
      time,
    ).keep
    if (verdict) request.retainUntil = new Date(verdict.expiresAt).toISOString()
    const prevRef = previous ? vaultRef(previous.disks[0]!) : undefined
    if (prevRef) request.base = prevRef.point
    const res = await vaultApi.backupPoint(request, {
      signal: ctx.signal,
      onProgress: (p) => {
        total = p.bytesTotal
        ctx.progress({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal })
      },
      ...resumeOptions(ctx),
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
      if (p.point.tier !== 'SnapshotAndVault' || this.#pinned(p.point.id)) continue
      for (const d of p.point.disks)
        if (d.snapshot) await this.#disks.deleteSnapshot(d.source, d.snapshot).catch(() => {})
      await this.#store.updateRecoveryPoint(p.point.id, {
        tier: 'Vault',
        disks: p.point.disks.map(({ snapshot: _s, ...rest }) => rest),
      })
    }
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
