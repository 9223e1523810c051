import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError } from '../util/index.js'
import { type DiskLabel, diskLabel } from './disk-label.js'
import type { ReconcileReport } from './point-reconciler.js'
import { type PointReconciler, vaultRef } from './point-reconciler.js'
import type {
  Job,
  ProtectedItem,
  ProtectionStore,
  VmRecoveryPoint,
  VmRecoveryPointDisk,
} from './protection-store.js'
import type { RunningJob, VaultTransfer } from './vault-transfer.js'
import { refKey } from './vm.js'

/** A job the service can cancel: its abort controller and the promise of its end. */
export interface RunningEntry {
  job: Job
  abort: AbortController
  done: Promise<unknown>
}

/** One restored disk, as the job details name it. */
interface Restored {
  name: DiskLabel
  lun: number | 'os'
  disk: DiskRef
  from: 'Snapshot' | 'Vault'
}

const lunOf = (d: VmRecoveryPointDisk): number | 'os' => (d.name === 'os' ? 'os' : d.lun!)

/**
 * Restores of VM recovery points (new VM, disks only, over the VM's own disks). Each disk comes from
 * its snapshot while the snapshot exists — no data copied — and from the vault otherwise, whatever
 * tier the record says: a snapshot deleted behind the point's back only makes the restore slower.
 */
export class VmRestores {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #vault: VaultTransfer | undefined
  readonly #reconciler: PointReconciler
  readonly #running: Map<string, RunningEntry>
  readonly #reconcile: (vmName: string) => Promise<ReconcileReport>

  constructor(options: {
    store: ProtectionStore
    disks: DiskStore
    vault: VaultTransfer | undefined
    reconciler: PointReconciler
    running: Map<string, RunningEntry>
    reconcile: (vmName: string) => Promise<ReconcileReport>
  }) {
    this.#store = options.store
    this.#disks = options.disks
    this.#vault = options.vault
    this.#reconciler = options.reconciler
    this.#running = options.running
    this.#reconcile = options.reconcile
  }

  async restoreVm(pointId: string, options: { as: string; signal?: AbortSignal }): Promise<RunningJob> {
    const { point, item } = await this.#pointWithItem(pointId)
    return this.#runJob(
      { type: 'Restore', entity: options.as, itemId: item.id, vault: item.vault, signal: options.signal },
      async (job, signal, details) => {
        const restored = await this.#restoreDisks(job, point, item.vault, {
          name: (d) => `${options.as}-${d.name}`,
          signal,
        })
        details.disks = restored.map(detail)
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

  async restoreDisks(
    pointId: string,
    options: { prefix: string; disks?: (number | 'os')[]; signal?: AbortSignal },
  ): Promise<RunningJob> {
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
      { type: 'Restore', entity: item.vmName, itemId: item.id, vault: item.vault, signal: options.signal },
      async (job, signal, details) => {
        const restored = await this.#restoreDisks(job, point, item.vault, {
          name: (d) => `${options.prefix}-${d.name}`,
          only,
          signal,
        })
        details.disks = restored.map(detail)
        // The reference hands out a template with the disks: here the saved VM description.
        details.vmConfiguration = point.vm
      },
    )
  }

  async replaceDisks(
    vmName: string,
    pointId: string,
    options: { signal?: AbortSignal },
  ): Promise<RunningJob> {
    const vm = await this.#store.getVm(vmName)
    const { point, item } = await this.#pointWithItem(pointId)
    if (item.vmName !== vmName)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot replace the disks of VM "${vmName}": recovery point ${pointId} belongs to VM "${item.vmName}"`,
      )
    return this.#runJob(
      { type: 'Restore', entity: vmName, itemId: item.id, vault: item.vault, signal: options.signal },
      async (job, signal, details) => {
        await this.#store.updateJob(job.id, { phase: 'SnapshotCurrentDisks' })
        const current = [vm.osDisk, ...vm.dataDisks.map((d) => d.disk)]
        const kept = await this.#disks.snapshotGroup(current)
        details.keptSnapshots = kept.map((k, i) => ({ disk: refKey(current[i]!), snapshot: k.snapshot }))
        await this.#store.updateJob(job.id, { phase: 'RestoreDisks' })
        const done: { name: DiskLabel; disk: string; from: 'Snapshot' | 'Vault' }[] = []
        for (const d of point.disks) {
          signal.throwIfAborted()
          if (d.snapshot && this.#reconciler.snapshotExists(d.source, d.snapshot)) {
            await this.#disks.promote(d.source, d.snapshot)
            done.push({ name: d.name, disk: refKey(d.source), from: 'Snapshot' })
            continue
          }
          const temp = { ...d.source, disk: `${d.source.disk}-restore-${job.id.slice(0, 8)}` }
          await this.#fromVault(item, point, d, temp, signal)
          await this.#disks.copyDisk({ ref: temp }, d.source, { overwrite: true })
          await this.#disks.deleteDisk(temp)
          done.push({ name: d.name, disk: refKey(d.source), from: 'Vault' })
        }
        details.replaced = done
      },
    )
  }

  async #restoreDisks(
    job: Job,
    point: VmRecoveryPoint,
    vault: string,
    o: { name: (d: VmRecoveryPointDisk) => string; only?: DiskLabel[] | undefined; signal: AbortSignal },
  ): Promise<Restored[]> {
    const item = await this.#store.getItemById(point.itemId)
    const disks = point.disks.filter((d) => !o.only || o.only.includes(d.name))
    await this.#store.updateJob(job.id, {
      phase: 'RestoreDisks',
      bytesTotal: disks.reduce((n, d) => n + d.size, 0),
    })
    const out: Restored[] = []
    let bytes = 0
    for (const d of disks) {
      o.signal.throwIfAborted()
      const target: DiskRef = { ...d.source, disk: o.name(d) }
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
      if (from === 'Vault') await this.#fromVault({ ...item, vault }, point, d, target, o.signal)
      out.push({ name: d.name, lun: lunOf(d), disk: target, from })
      bytes += d.size
      await this.#store.updateJob(job.id, { bytesDone: bytes })
    }
    return out
  }

  async #fromVault(
    item: ProtectedItem,
    point: VmRecoveryPoint,
    d: VmRecoveryPointDisk,
    target: DiskRef,
    signal: AbortSignal,
  ): Promise<void> {
    const ref = vaultRef(d)
    if (!ref || !this.#vault) {
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot restore disk ${d.name} of recovery point ${point.id}: its snapshot is gone and the point never reached vault "${item.vault}"`,
      )
    }
    await this.#vault.restoreDisk(
      { vault: item.vault, point: ref.point, disk: ref.disk, target, size: d.size },
      { signal },
    )
  }

  /** The point (its tiers reconciled with the disk store first) and its item. */
  async #pointWithItem(pointId: string) {
    const found = await this.#store.getRecoveryPoint(pointId)
    const item = await this.#store.getItemById(found.itemId)
    await this.#reconcile(item.vmName)
    const point = await this.#store.getRecoveryPoint(found.id)
    return { point, item }
  }

  /** Starts work as a job; answers the job at once and a promise of the finished job. */
  async #runJob(
    spec: {
      type: 'Restore'
      entity: string
      itemId: string
      vault: string
      signal?: AbortSignal | undefined
    },
    work: (job: Job, signal: AbortSignal, details: Record<string, unknown>) => Promise<void>,
  ): Promise<RunningJob> {
    const job = await this.#store.createJob({
      type: spec.type,
      entity: spec.entity,
      itemId: spec.itemId,
      vault: spec.vault,
    })
    const abort = new AbortController()
    spec.signal?.addEventListener('abort', () => abort.abort(spec.signal!.reason), { once: true })
    const details: Record<string, unknown> = {}
    const done = (async () => {
      try {
        await work(job, abort.signal, details)
        const warned = Array.isArray(details.warnings) && details.warnings.length > 0
        await this.#store.finishJob(job.id, {
          status: warned ? 'CompletedWithWarnings' : 'Completed',
          details,
        })
      } catch (err) {
        const e = isCairnError(err) ? err : new CairnError('Internal', (err as Error).message, { cause: err })
        const cancelled = abort.signal.aborted
        await this.#store.finishJob(job.id, {
          status: cancelled ? 'Cancelled' : 'Failed',
          error: cancelled
            ? { code: 'Cancelled', message: 'The restore was cancelled' }
            : { code: e.code, message: e.message },
          details,
        })
      } finally {
        this.#running.delete(job.id)
      }
    })()
    this.#running.set(job.id, { job, abort, done })
    return { job, done: done.then(() => this.#store.getJob(job.id)) }
  }
}

const detail = (r: Restored) => ({ name: r.name, disk: refKey(r.disk), from: r.from })
