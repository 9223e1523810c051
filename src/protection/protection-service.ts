import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore, LongOperationOptions } from '../diskstore/index.js'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import type { Consistency } from '../vault/index.js'
import { fromWall, toWall } from './_zoned-time.js'
import { AgentClient, type AgentQuiesce, type AgentThaw } from './agent-client.js'
import type { JobContext, JobService, StartedJob } from './job-service.js'
import { expiredSnapshots, onDemandExpiry, planRetention } from './plan-retention.js'
import { type BackupPolicy, POLICY_BOUNDS } from './policy.js'
import type { ProtectionStore, VmRecoveryPoint, VmRecoveryPointDisk } from './protection-store.js'
import { scheduledTimes } from './schedule.js'
import { refKey, type VmSpec } from './vm.js'

/**
 * What protection needs from the vault engine: store every disk of a snapshot-tier point as one vault
 * recovery point, reading only what changed since a base the vault holds; restore a disk; delete.
 */
export interface VaultTransfer {
  backupPoint(
    request: {
      vault: string
      item: { kind: string; name: string; config: Record<string, unknown> }
      consistency: Consistency
      expiresAt?: string
      disks: {
        name: string
        lun?: number
        disk: DiskRef
        snapshot: string
        size: number
        baseSnapshot?: string
      }[]
      /** The vault point of an earlier point whose snapshots still exist: only the diff is read. */
      base?: string
    },
    options: LongOperationOptions,
  ): Promise<{ id: string; bytesAdded: number }>
  restoreDisk(
    request: { vault: string; point: string; disk: string; target: DiskRef; size: number },
    options: LongOperationOptions,
  ): Promise<void>
  deletePoint(vault: string, point: string): Promise<void>
}

/** Name of a recovery point's disk inside its vault point: `os`, `lun0`, … */
const vaultDiskName = (lun: number | 'os') => (lun === 'os' ? 'os' : `lun${lun}`)

/** Splits a disk's `vaultBackup` (`<vault point>/<disk>`). */
function vaultRef(d: VmRecoveryPointDisk): { point: string; disk: string } | undefined {
  if (!d.vaultBackup) return undefined
  const i = d.vaultBackup.lastIndexOf('/')
  return { point: d.vaultBackup.slice(0, i), disk: d.vaultBackup.slice(i + 1) }
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

  constructor(options: ProtectionServiceOptions) {
    this.#store = options.store
    this.#disks = options.disks
    this.#jobs = options.jobs
    this.#vault = options.vault
    this.#log = options.logger ?? silentLogger
    this.#now = options.now ?? Date.now
    this.#onDemandPerDay = options.onDemandPerDay ?? POLICY_BOUNDS.onDemandPerDay
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
          details: { kind, disks: disks.map((d) => d.lun) },
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
      const rpDisks: VmRecoveryPointDisk[] = snapshots.map((s, i) => ({
        lun: b.disks[i]!.lun,
        source: s.disk,
        size: this.#disks.getDisk(s.disk, s.snapshot).size,
        snapshot: s.snapshot,
      }))
      const {
        id: _id,
        createdAt: _c,
        updatedAt: _u,
        ...vmSpec
      } = b.vm as VmSpec & { id: string; createdAt?: string; updatedAt?: string }
      const rp: Omit<VmRecoveryPoint, 'id'> = {
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

  async #transfer(
    ctx: JobContext,
    point: Omit<VmRecoveryPoint, 'id'>,
    vmName: string,
    vault: string,
  ): Promise<{ disks: VmRecoveryPointDisk[]; vaultPoint: string; bytesAdded: number; incremental: boolean }> {
    const vaultApi = this.#vault!
    await ctx.phase('TransferToVault')
    // The base: the newest earlier point in both tiers whose snapshots all still exist.
    const previous = (await this.#store.listRecoveryPoints(vmName))
      .filter((p) => p.tier === 'SnapshotAndVault' && p.disks.every((d) => d.snapshot && d.vaultBackup))
      .at(-1)
    const total = point.disks.reduce((n, d) => n + d.size, 0)
    ctx.progress({ bytesDone: 0, bytesTotal: total })
    const { agent: _agent, ...config } = point.vm
    const request: Parameters<VaultTransfer['backupPoint']>[0] = {
      vault,
      item: { kind: 'vm', name: vmName, config: { ...config, job: ctx.job.id } },
      consistency: point.consistency,
      disks: point.disks.map((d) => {
        const prev = previous?.disks.find((p) => refKey(p.source) === refKey(d.source) && p.size === d.size)
        const disk: Parameters<VaultTransfer['backupPoint']>[0]['disks'][number] = {
          name: vaultDiskName(d.lun),
          disk: d.source,
          snapshot: d.snapshot!,
          size: d.size,
        }
        if (d.lun !== 'os') disk.lun = d.lun
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
    const disks = point.disks.map((d) => ({ ...d, vaultBackup: `${res.id}/${vaultDiskName(d.lun)}` }))
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
   * Restores a recovery point as a new VM: new disks (from the snapshot tier when it still holds the
   * point — no data copied — otherwise from the vault) plus the saved configuration. When the VM
   * cannot be registered the disks stay restored and the job says so.
   */
  async restoreVm(pointId: string, options: { as: string; startedBy?: string }): Promise<RunningJob> {
    const { point, item } = await this.#pointWithItem(pointId)
    return this.#runJob(
      { resource: `vms/${options.as}`, vm: item.vmName, itemId: item.id, vault: item.vault, ...options },
      async (ctx, details) => {
        const restored = await this.#restoreDisks(ctx, point, item.vault, {
          name: (lun) => `${options.as}-${lun === 'os' ? 'os' : `lun${lun}`}`,
        })
        details.disks = restored.map((r) => ({ lun: r.lun, disk: refKey(r.disk), from: r.from }))
        const os = restored.find((r) => r.lun === 'os')
        const spec: Record<string, unknown> = {
          ...point.vm,
          name: options.as,
          osDisk: os?.disk,
          dataDisks: restored.filter((r) => r.lun !== 'os').map((r) => ({ lun: r.lun, disk: r.disk })),
          configuration: {
            ...point.vm.configuration,
            restoredFrom: { vm: item.vmName, recoveryPoint: point.id, time: point.time },
          },
        }
        delete spec.agent
        delete spec.tempDisk
        try {
          await this.#store.createVm(spec)
          details.vm = options.as
        } catch (err) {
          details.warnings = [
            `the disks are restored but VM "${options.as}" was not created: ${(err as Error).message}`,
          ]
        }
      },
    )
  }

  /** Restores chosen disks (all by default) of a recovery point as new disks named `<prefix>-os`, `<prefix>-lunN`. */
  async restoreDisks(
    pointId: string,
    options: { prefix: string; luns?: (number | 'os')[]; startedBy?: string },
  ): Promise<RunningJob> {
    const { point, item } = await this.#pointWithItem(pointId)
    const unknown = (options.luns ?? []).filter((l) => !point.disks.some((d) => d.lun === l))
    if (unknown.length > 0) {
      throw new CairnError(
        'DiskNotFound',
        `Cannot restore LUN ${unknown.join(', ')}: recovery point ${point.id} holds ${point.disks.map((d) => d.lun).join(', ')}`,
      )
    }
    return this.#runJob(
      { resource: `vms/${item.vmName}`, vm: item.vmName, itemId: item.id, vault: item.vault, ...options },
      async (ctx, details) => {
        const restored = await this.#restoreDisks(ctx, point, item.vault, {
          name: (lun) => `${options.prefix}-${lun === 'os' ? 'os' : `lun${lun}`}`,
          only: options.luns,
        })
        details.disks = restored.map((r) => ({ lun: r.lun, disk: refKey(r.disk), from: r.from }))
        // The reference hands out a template with the disks: here the saved VM description.
        details.vmConfiguration = point.vm
      },
    )
  }

  /**
   * Replaces the disks of an existing VM with those of a recovery point. The current disks are
   * snapshotted first and those snapshots kept (named in the job), then each disk takes the point's content.
   */
  async replaceDisks(
    vmName: string,
    pointId: string,
    options: { startedBy?: string } = {},
  ): Promise<RunningJob> {
    const vm = await this.#store.getVm(vmName)
    const { point, item } = await this.#pointWithItem(pointId)
    if (item.vmName !== vmName)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot replace the disks of VM "${vmName}": recovery point ${pointId} belongs to VM "${item.vmName}"`,
      )
    if (this.#busyVms.has(vmName))
      throw new CairnError(
        'BackupInProgress',
        `Cannot replace the disks of VM "${vmName}": a backup of it is running`,
      )
    return this.#runJob(
      { resource: `vms/${vmName}`, vm: vmName, itemId: item.id, vault: item.vault, ...options },
      async (ctx, details) => {
        const { job, signal } = ctx
        await ctx.phase('SnapshotCurrentDisks')
        const current = [vm.osDisk, ...vm.dataDisks.map((d) => d.disk)]
        const kept = await this.#disks.snapshotGroup(current)
        details.keptSnapshots = kept.map((k, i) => ({ disk: refKey(current[i]!), snapshot: k.snapshot }))
        await ctx.phase('RestoreDisks')
        const done: string[] = []
        for (const d of point.disks) {
          signal.throwIfAborted()
          if (d.snapshot) {
            await this.#disks.promote(d.source, d.snapshot)
          } else {
            const temp = { ...d.source, disk: `${d.source.disk}-restore-${job.id.slice(0, 8)}` }
            details.createdDisks = [temp]
            await ctx.phase('RestoreDisks')
            try {
              await this.#fromVault(item.vault, d, temp, signal)
              signal.throwIfAborted()
              await this.#disks.copyDisk({ ref: temp }, d.source, { overwrite: true })
            } finally {
              await this.#disks.deleteDisk(temp).catch(() => {})
              details.createdDisks = []
            }
          }
          done.push(refKey(d.source))
        }
        details.replaced = done
      },
    )
  }

  async #restoreDisks(
    ctx: JobContext,
    point: VmRecoveryPoint,
    vault: string,
    o: { name: (lun: number | 'os') => string; only?: (number | 'os')[] | undefined },
  ): Promise<{ lun: number | 'os'; disk: DiskRef; from: 'Snapshot' | 'Vault' }[]> {
    const { signal, details } = ctx
    const wanted = point.disks.filter((d) => !o.only || o.only.includes(d.lun))
    // The disks this restore creates, recorded before any is made: a cancelled, failed or
    // interrupted restore removes them (nothing half-restored is left behind).
    const created: DiskRef[] = wanted.map((d) => ({ ...d.source, disk: o.name(d.lun) }))
    for (const ref of created) {
      if (diskExists(this.#disks, ref))
        throw new CairnError('DiskAlreadyExists', `Cannot restore into disk ${refKey(ref)}: it exists`)
    }
    details.createdDisks = created
    await ctx.phase('RestoreDisks')
    ctx.progress({ bytesDone: 0, bytesTotal: wanted.reduce((n, d) => n + d.size, 0) })
    const out: { lun: number | 'os'; disk: DiskRef; from: 'Snapshot' | 'Vault' }[] = []
    let bytes = 0
    try {
      for (const [i, d] of wanted.entries()) {
        signal.throwIfAborted()
        const target = created[i]!
        if (d.snapshot) {
          await this.#disks.copyDisk({ ref: d.source, snapshot: d.snapshot }, target)
          out.push({ lun: d.lun, disk: target, from: 'Snapshot' })
        } else {
          await this.#fromVault(vault, d, target, signal)
          out.push({ lun: d.lun, disk: target, from: 'Vault' })
        }
        bytes += d.size
        ctx.progress({ bytesDone: bytes })
      }
      signal.throwIfAborted()
    } catch (err) {
      await removeDisks(this.#disks, created.slice(0, out.length + 1))
      details.createdDisks = []
      throw err
    }
    return out
  }

  async #fromVault(
    vault: string,
    d: VmRecoveryPointDisk,
    target: DiskRef,
    signal: AbortSignal,
  ): Promise<void> {
    const ref = vaultRef(d)
    if (!ref || !this.#vault) {
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot restore disk ${refKey(d.source)}: the point is in neither the snapshot tier nor the vault`,
      )
    }
    await this.#vault.restoreDisk(
      { vault, point: ref.point, disk: ref.disk, target, size: d.size },
      { signal },
    )
  }

  async #pointWithItem(pointId: string) {
    const point = await this.#store.getRecoveryPoint(pointId)
    const item = await this.#store.getItemById(point.itemId)
    return { point, item }
  }

  /** Starts a restore as a job; answers the job at once and a promise of the finished job. */
  async #runJob(
    spec: { resource: string; vm: string; itemId: string; vault: string; startedBy?: string | undefined },
    work: (ctx: JobContext, details: Record<string, unknown>) => Promise<void>,
  ): Promise<RunningJob> {
    const started = await this.#jobs.start(
      {
        kind: 'restore',
        resource: spec.resource,
        vm: spec.vm,
        itemId: spec.itemId,
        vault: spec.vault,
        startedBy: spec.startedBy ?? 'local',
      },
      async (ctx) => {
        await work(ctx, ctx.details)
        const { createdDisks: _c, ...result } = ctx.details
        return result
      },
    )
    const done = started.done.finally(() => this.#running.delete(started.job.id))
    this.#running.set(started.job.id, done)
    return { job: started.job, done }
  }

  /** Removes a recovery point's snapshots and vault backups (its record is the caller's). */
  async deletePointData(vault: string, p: VmRecoveryPoint): Promise<void> {
    const points = new Set<string>()
    for (const d of p.disks) {
      if (d.snapshot) await this.#disks.deleteSnapshot(d.source, d.snapshot).catch(() => {})
      const ref = vaultRef(d)
      if (ref) points.add(ref.point)
    }
    if (this.#vault) for (const point of points) await this.#vault.deletePoint(vault, point)
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

/** Deletes disks a restore made (those that exist). */
async function removeDisks(store: DiskStore, refs: DiskRef[]): Promise<void> {
  for (const r of refs) await store.deleteDisk(r).catch(() => {})
}

/** True when the disk exists. */
function diskExists(store: DiskStore, ref: DiskRef): boolean {
  try {
    store.getDisk(ref)
    return true
  } catch (err) {
    if (isCairnError(err) && err.code === 'DiskNotFound') return false
    throw err
  }
}
