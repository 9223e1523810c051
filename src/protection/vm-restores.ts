import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import type { DiskLabel } from '../util/index.js'
import { CairnError, diskLabel, isCairnError } from '../util/index.js'
import type { JobContext, JobService, StartedJob } from './job-service.js'
import { type PointReconciler, type ReconcileReport, vaultRef } from './point-reconciler.js'
import type {
  ProtectedItem,
  ProtectionStore,
  VmRecoveryPoint,
  VmRecoveryPointDisk,
} from './protection-store.js'
import type { VaultTransfer } from './vault-transfer.js'
import { refKey, validateVm } from './vm.js'

/** A point already found with its item (a replica vault's, which the catalog does not hold). */
export interface ResolvedPoint {
  item: ProtectedItem
  point: VmRecoveryPoint
}

/** Where restored disks go: an account and container of this site (default: each source disk's). */
export interface RestoreTarget {
  account?: string
  container?: string
}

/**
 * Restores of VM recovery points, as jobs: a new VM, disks only, or over the VM's own disks. Each disk
 * comes from its snapshot while the snapshot exists — no data copied — and from the vault otherwise,
 * whatever tier the record says: a snapshot deleted behind the point's back only makes it slower.
 */
export class VmRestores {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #jobs: JobService
  readonly #vault: VaultTransfer | undefined
  readonly #reconciler: PointReconciler
  readonly #running: Map<string, Promise<Job>>
  readonly #isBusy: (vm: string) => boolean
  readonly #reconcile: (vm: string) => Promise<ReconcileReport>

  constructor(options: {
    store: ProtectionStore
    disks: DiskStore
    jobs: JobService
    vault?: VaultTransfer
    reconciler: PointReconciler
    /** The service's running jobs (it waits for them at close). */
    running: Map<string, Promise<Job>>
    /** True while a backup of the VM runs. */
    isBusy: (vm: string) => boolean
    reconcile: (vm: string) => Promise<ReconcileReport>
  }) {
    this.#store = options.store
    this.#disks = options.disks
    this.#jobs = options.jobs
    this.#vault = options.vault
    this.#reconciler = options.reconciler
    this.#running = options.running
    this.#isBusy = options.isBusy
    this.#reconcile = options.reconcile
  }

  /**
   * Restores a recovery point as a new VM: new disks (from the snapshot tier when it still holds the
   * point — no data copied — otherwise from the vault) plus the saved configuration. When the VM
   * cannot be registered the disks stay restored and the job says so.
   */
  async restoreVm(
    pointId: string | ResolvedPoint,
    options: { as: string; startedBy?: string | undefined; target?: RestoreTarget },
  ): Promise<StartedJob> {
    const { point, item } = await this.#pointWithItem(pointId)
    const { target, ...spec } = options
    return this.#runJob(
      { resource: `vms/${options.as}`, vm: item.vmName, itemId: item.id, vault: item.vault, ...spec },
      async (ctx, details) => {
        const restored = await this.#restoreDisks(ctx, point, item.vault, {
          name: (d) => `${options.as}-${d.name}`,
          ...(target ? { target } : {}),
        })
        details.disks = restored.map(restoredDetail)
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
          // The new VM's disks are in this process's store: it is their host (scale-out).
          const host = this.#jobs.owner
          await this.#store.createVm(validateVm(spec), host === undefined ? {} : { host })
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
    pointId: string | ResolvedPoint,
    options: { prefix: string; disks?: (number | 'os')[]; startedBy?: string; target?: RestoreTarget },
  ): Promise<StartedJob> {
    const { point, item } = await this.#pointWithItem(pointId)
    const only = options.disks?.map(diskLabel)
    const unknown = (only ?? []).filter((l) => !point.disks.some((d) => d.name === l))
    if (unknown.length > 0) {
      throw new CairnError(
        'RecoveryPointDiskNotFound',
        `Cannot restore disk ${unknown.join(', ')}: recovery point ${point.id} holds ${point.disks.map((d) => d.name).join(', ')}`,
      )
    }
    return this.#runJob(
      {
        resource: `vms/${item.vmName}`,
        vm: item.vmName,
        itemId: item.id,
        vault: item.vault,
        startedBy: options.startedBy,
      },
      async (ctx, details) => {
        const restored = await this.#restoreDisks(ctx, point, item.vault, {
          name: (d) => `${options.prefix}-${d.name}`,
          only,
          ...(options.target ? { target: options.target } : {}),
        })
        details.disks = restored.map(restoredDetail)
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
  ): Promise<StartedJob> {
    const vm = await this.#store.getVm(vmName)
    const owner = this.#jobs.owner
    if (vm.host !== undefined && owner !== undefined && vm.host !== owner)
      // Its disks are in that process's store; a disk of the same name here is another VM's.
      throw new CairnError(
        'VmOnAnotherHost',
        `Cannot replace the disks of VM "${vmName}": they are in the disk store of ${vm.host}; send the restore to that process`,
      )
    const { point, item } = await this.#pointWithItem(pointId)
    if (item.vmName !== vmName)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot replace the disks of VM "${vmName}": recovery point ${pointId} belongs to VM "${item.vmName}"`,
      )
    if (this.#isBusy(vmName))
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
        const done: { name: string; disk: string; from: 'Snapshot' | 'Vault' }[] = []
        for (const d of point.disks) {
          signal.throwIfAborted()
          const fromSnapshot =
            d.snapshot !== undefined && this.#reconciler.snapshotExists(d.source, d.snapshot)
          if (fromSnapshot) {
            await this.#disks.promote(d.source, d.snapshot!)
          } else {
            const temp = { ...d.source, disk: `${d.source.disk}-restore-${job.id.slice(0, 8)}` }
            details.createdDisks = [temp]
            await ctx.phase('RestoreDisks')
            try {
              await this.#fromVault(item.vault, point, d, temp, signal)
              signal.throwIfAborted()
              await this.#disks.copyDisk({ ref: temp }, d.source, { overwrite: true })
            } finally {
              await this.#disks.deleteDisk(temp).catch(() => {})
              details.createdDisks = []
            }
          }
          done.push({ name: d.name, disk: refKey(d.source), from: fromSnapshot ? 'Snapshot' : 'Vault' })
        }
        details.replaced = done
      },
    )
  }

  async #restoreDisks(
    ctx: JobContext,
    point: VmRecoveryPoint,
    vault: string,
    o: { name: (d: VmRecoveryPointDisk) => string; only?: DiskLabel[] | undefined; target?: RestoreTarget },
  ): Promise<Restored[]> {
    const { signal, details } = ctx
    const wanted = point.disks.filter((d) => !o.only || o.only.includes(d.name))
    // The disks this restore creates, recorded before any is made: a cancelled, failed or
    // interrupted restore removes them (nothing half-restored is left behind).
    const created: DiskRef[] = wanted.map((d) => ({ ...d.source, ...o.target, disk: o.name(d) }))
    for (const ref of created) {
      if (diskExists(this.#disks, ref))
        throw new CairnError('DiskAlreadyExists', `Cannot restore into disk ${refKey(ref)}: it exists`)
    }
    details.createdDisks = created
    await ctx.phase('RestoreDisks')
    ctx.progress({ bytesDone: 0, bytesTotal: wanted.reduce((n, d) => n + d.size, 0) })
    const out: Restored[] = []
    let bytes = 0
    try {
      for (const [i, d] of wanted.entries()) {
        signal.throwIfAborted()
        const target = created[i]!
        // From the snapshot while it exists (no data copied), from the vault otherwise.
        let from: 'Snapshot' | 'Vault' = 'Vault'
        if (d.snapshot && this.#reconciler.snapshotExists(d.source, d.snapshot)) {
          try {
            await this.#disks.copyDisk({ ref: d.source, snapshot: d.snapshot }, target)
            from = 'Snapshot'
          } catch (err) {
            // Deleted between the check and the copy: the vault has it.
            if (!isCairnError(err) || err.code !== 'SnapshotNotFound') throw err
          }
        }
        if (from === 'Vault') await this.#fromVault(vault, point, d, target, signal)
        out.push({ name: d.name, lun: d.name === 'os' ? 'os' : d.lun!, disk: target, from })
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
    point: VmRecoveryPoint,
    d: VmRecoveryPointDisk,
    target: DiskRef,
    signal: AbortSignal,
  ): Promise<void> {
    const ref = vaultRef(d)
    if (!ref || !this.#vault) {
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot restore disk ${d.name} of recovery point ${point.id}: its snapshot is gone and the point never reached vault "${vault}"`,
      )
    }
    await this.#vault.restoreDisk(
      { vault, point: ref.point, disk: ref.disk, target, size: d.size },
      { signal },
    )
  }

  /** The point, its tiers reconciled with the disk store first, and its item. */
  async #pointWithItem(pointId: string | ResolvedPoint): Promise<ResolvedPoint> {
    if (typeof pointId !== 'string') return pointId
    const found = await this.#store.getRecoveryPoint(pointId)
    const item = await this.#store.getItemById(found.itemId)
    await this.#reconcile(item.vmName)
    const point = await this.#store.getRecoveryPoint(found.id)
    return { point, item }
  }

  /** Starts a restore as a job; answers the job at once and a promise of the finished job. */
  async #runJob(
    spec: { resource: string; vm: string; itemId: string; vault: string; startedBy?: string | undefined },
    work: (ctx: JobContext, details: Record<string, unknown>) => Promise<void>,
  ): Promise<StartedJob> {
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
}

/** One restored disk. */
interface Restored {
  name: DiskLabel
  lun: number | 'os'
  disk: DiskRef
  from: 'Snapshot' | 'Vault'
}

/** A restored disk as the job details name it. */
const restoredDetail = (r: Restored) => ({ name: r.name, disk: refKey(r.disk), from: r.from })

/** Deletes disks a restore made (those that exist). */
export async function removeDisks(store: DiskStore, refs: DiskRef[]): Promise<void> {
  for (const r of refs) await store.deleteDisk(r).catch(() => {})
}

/** True when the disk exists. */
export function diskExists(store: DiskStore, ref: DiskRef): boolean {
  try {
    store.getDisk(ref)
    return true
  } catch (err) {
    if (isCairnError(err) && err.code === 'DiskNotFound') return false
    throw err
  }
}
