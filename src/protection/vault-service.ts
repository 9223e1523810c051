import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, type HostPaths } from '../util/index.js'
import {
  applySettingsChange,
  fileSink,
  fileSource,
  immutable,
  type PointRemoval,
  type PruneReport,
  type RecoveryPoint,
  type RetentionPolicy,
  type SoftDeletedPoint,
  softDeleteOn,
  type Vault,
  type VaultProgress,
  type VaultRegistry,
  type VaultSettings,
  type VaultSettingsChange,
} from '../vault/index.js'
import { backupDisks, restoreToDisk } from './disk-backup.js'
import type { JobContext, JobService } from './job-service.js'
import type { ResourceGuard } from './resource-guard.js'
import { type RunToEnd, runJobToEnd } from './run-job-to-end.js'

/** What a VaultService works with. */
export interface VaultServiceOptions {
  vaults: VaultRegistry
  jobs: JobService
  diskStore: DiskStore
  /** The gate of host paths (absent: backups from and restores into files are refused). */
  hostPaths?: HostPaths
  /** Brings the recovery points of the VMs protected in a vault in line with it (after points left it). */
  reconcileVault?: (vault: string) => Promise<void>
  /** Multi-user authorization of critical operations on guarded vaults (settings weakened, vault delete). */
  guard?: ResourceGuard
}

/** Who started a job (default: the API). */
export interface StartedBy {
  startedBy?: string
}

/** A disk-store disk to back up. */
export interface BackupDisk extends DiskRef {
  lun?: number
  /** Its name inside the recovery point; default the disk's name. */
  name?: string
}

/** Which recovery point a backup builds on: 'latest' (default), 'none' or a recovery point id. */
export interface BackupBase {
  base?: string
  expiresAt?: Date
}

/**
 * The vault use cases that run as jobs — backups from disks or a host file, restores into a disk or a
 * host file, verify, prune and GC — one method each, reached the same way by the API, the scheduler
 * and the service's recovery. A method checks its request before the job starts (so a refusal is the
 * answer, not a failed job) and answers the started job; prune waits for its report.
 */
export class VaultService {
  readonly #o: VaultServiceOptions

  constructor(options: VaultServiceOptions) {
    this.#o = options
  }

  /** Backs up disk-store disks, snapshotted together (only the diff since the base is read). */
  async backupDisks(
    vault: string,
    request: BackupBase & { disks: BackupDisk[]; item?: string } & StartedBy,
  ): Promise<Job> {
    const v = await this.#o.vaults.open(vault)
    const store = this.#o.diskStore
    const disks = request.disks
    if (disks.length === 0) throw new CairnError('InvalidRequest', 'Cannot back up: disks is empty')
    for (const d of disks) store.getDisk(d)
    const base = request.base
    return this.#start('backup', vault, `vaults/${vault}`, request, (ctl) =>
      backupDisks(
        v,
        store,
        disks.map((d) => ({
          ref: { account: d.account, container: d.container, disk: d.disk },
          ...(d.name ? { name: d.name } : {}),
          ...(d.lun !== undefined ? { lun: d.lun } : {}),
        })),
        {
          item: { kind: 'disks', name: request.item ?? disks[0]!.disk, config: { disks } },
          ...(base === 'none' ? { base: null } : base && base !== 'latest' ? { base } : {}),
          ...(request.expiresAt ? { expiresAt: request.expiresAt } : {}),
          signal: ctl.signal,
          onProgress: progressTo(ctl),
        },
      ),
    )
  }

  /** Backs up a raw file under an import root of the service's machine. */
  async backupFile(
    vault: string,
    request: BackupBase & { path: string; item?: string; disk?: string } & StartedBy,
  ): Promise<Job> {
    const v = await this.#o.vaults.open(vault)
    const path = await this.#hostPaths().checkImport(request.path)
    const fileName = path.split('/').pop() || 'disk'
    const item = request.item ?? fileName
    return this.#start('backup', vault, `vaults/${vault}`, request, async (ctl) => {
      let base: string | undefined
      if (request.base === undefined || request.base === 'latest')
        base = (await v.latestRecoveryPoint(item))?.id
      else if (request.base !== 'none') base = request.base
      const source = await fileSource(path, { name: request.disk ?? fileName })
      try {
        return await v.backup({
          item: { kind: 'file', name: item, config: { path } },
          sources: [source],
          ...(base ? { base } : {}),
          ...(request.expiresAt ? { expiresAt: request.expiresAt } : {}),
          signal: ctl.signal,
          onProgress: progressTo(ctl),
        })
      } finally {
        await source.close?.()
      }
    })
  }

  /** Restores a disk of a recovery point into a new (or, with overwrite, an existing) disk-store disk. */
  async restoreToDisk(
    vault: string,
    rp: string,
    request: { disk?: string; target: DiskRef; overwrite?: boolean } & StartedBy,
  ): Promise<Job> {
    const { v, disk } = await this.#pointDisk(vault, rp, request.disk)
    const store = this.#o.diskStore
    const target = request.target
    return this.#start('restore', vault, `vaults/${vault}/recoveryPoints/${rp}`, request, async (ctl) => {
      // A disk this restore creates is named in the job first: if the service dies, the next
      // start removes it rather than leave half a disk.
      if (!diskExists(store, target)) {
        ctl.details.createdDisks = [target]
        await ctl.phase('Restore')
      }
      const result = await restoreToDisk(v, store, rp, disk, target, {
        signal: ctl.signal,
        onProgress: progressTo(ctl),
        ...(request.overwrite ? { overwrite: true } : {}),
      })
      delete ctl.details.createdDisks
      return result
    })
  }

  /** Restores a disk of a recovery point into a raw file (sparse) under an export root. */
  async restoreToFile(
    vault: string,
    rp: string,
    request: { disk?: string; path: string; overwrite?: boolean } & StartedBy,
  ): Promise<Job> {
    const { v, disk, size } = await this.#pointDisk(vault, rp, request.disk)
    const paths = this.#hostPaths()
    const overwrite = request.overwrite ? { overwrite: true } : {}
    await paths.checkExport(request.path, overwrite)
    return this.#start('restore', vault, `vaults/${vault}/recoveryPoints/${rp}`, request, (ctl) =>
      paths.export(request.path, overwrite, async (temporary) => {
        const sink = await fileSink(temporary, { size })
        try {
          return await v.restore(rp, disk, sink, { signal: ctl.signal, onProgress: progressTo(ctl) })
        } finally {
          await sink.close?.()
        }
      }),
    )
  }

  /** Checks that every recovery point can be restored (a sample of packs, or readData: every byte). */
  async verify(
    vault: string,
    request: { sample?: number; readData?: boolean } & StartedBy = {},
  ): Promise<Job> {
    const v = await this.#o.vaults.open(vault)
    return this.#start('verify', vault, `vaults/${vault}`, request, (ctl) =>
      v.verify({
        signal: ctl.signal,
        onProgress: progressTo(ctl),
        ...(request.sample !== undefined ? { sample: request.sample } : {}),
        ...(request.readData ? { readData: true } : {}),
      }),
    )
  }

  /**
   * Removes expired recovery points and those no rule keeps, as a job the caller waits for. Points of
   * protected VMs follow their policy and are left alone unless includePolicyPoints; those removed on
   * request lose their vault tier at once.
   */
  async prune(
    vault: string,
    request: {
      policy: RetentionPolicy
      item?: string
      dryRun?: boolean
      includePolicyPoints?: boolean
    } & StartedBy,
    run: RunToEnd = {},
  ): Promise<PruneReport> {
    const v = await this.#o.vaults.open(vault)
    const report = await runJobToEnd(
      this.#o.jobs,
      { kind: 'prune', vault, resource: `vaults/${vault}`, ...startedBy(request) },
      () =>
        v.prune({
          policy: request.policy,
          ...(request.item !== undefined ? { item: request.item } : {}),
          ...(request.dryRun ? { dryRun: true } : {}),
          ...(request.includePolicyPoints ? {} : { leaveKinds: ['vm'] }),
        }),
      run,
    )
    if (request.includePolicyPoints && !request.dryRun && report.removed.length > 0)
      await this.#o.reconcileVault?.(vault)
    return report
  }

  /** Reclaims the space of packs no recovery point needs (staleLockMs: the grace of other writers' locks). */
  async gc(vault: string, request: { staleLockMs?: number } & StartedBy = {}): Promise<Job> {
    const v = await this.#o.vaults.open(vault)
    return this.#start('gc', vault, `vaults/${vault}`, request, (ctl) =>
      v.gc({
        signal: ctl.signal,
        ...(request.staleLockMs !== undefined ? { staleLockMs: request.staleLockMs } : {}),
      }),
    )
  }

  /** A vault's soft-delete and immutability settings. */
  settings(vault: string): Promise<VaultSettings> {
    return this.#o.vaults.settings(vault)
  }

  /**
   * Changes soft delete or immutability (AlwaysOn and Locked are one-way). On a guarded vault, turning
   * soft delete off or shortening it, and disabling immutability, each need an approval.
   */
  async updateSettings(vault: string, change: VaultSettingsChange): Promise<VaultSettings> {
    const guard = this.#o.guard
    if (guard) {
      const current = await this.#o.vaults.settings(vault)
      const next = applySettingsChange(current, change)
      const what = `Cannot change the settings of vault "${vault}"`
      if (
        softDeleteOn(current) &&
        (!softDeleteOn(next) || next.softDelete.retentionDays < current.softDelete.retentionDays)
      )
        await guard.authorize(vault, 'reduceSoftDelete', what)
      if (immutable(current) && !immutable(next)) await guard.authorize(vault, 'disableImmutability', what)
    }
    return this.#o.vaults.updateSettings(vault, change)
  }

  /**
   * Deletes a vault (with `deleteData`, its files too): refused while it holds soft-deleted points, or
   * points while immutable (VaultRegistry.remove); a guarded vault needs an approval.
   */
  async deleteVault(vault: string, options: { deleteData?: boolean } = {}): Promise<{ left: string[] }> {
    const guard = this.#o.guard
    return this.#o.vaults.remove(vault, {
      ...(options.deleteData ? { deleteData: true } : {}),
      ...(guard
        ? { authorize: () => guard.authorize(vault, 'deleteVault', `Cannot delete vault "${vault}"`) }
        : {}),
    })
  }

  /**
   * Deletes a recovery point: soft-deleted while soft delete is on and its retention runs, refused by
   * an immutable vault that still retains it; points of protected VMs lose their vault tier.
   */
  async deletePoint(vault: string, rp: string): Promise<PointRemoval> {
    const removal = await (await this.#o.vaults.open(vault)).deleteRecoveryPoint(rp)
    await this.#o.reconcileVault?.(vault)
    return removal
  }

  /** The soft-deleted recovery points of a vault (of one item), with when each will be purged. */
  async listSoftDeleted(vault: string, item?: string): Promise<SoftDeletedPoint[]> {
    return (await this.#o.vaults.open(vault)).listSoftDeleted(item !== undefined ? { item } : {})
  }

  /** Brings a soft-deleted recovery point back. */
  async undeletePoint(vault: string, rp: string): Promise<RecoveryPoint> {
    return (await this.#o.vaults.open(vault)).undeleteRecoveryPoint(rp)
  }

  async #start(
    kind: 'backup' | 'restore' | 'verify' | 'gc',
    vault: string,
    resource: string,
    by: StartedBy,
    body: (ctl: JobContext) => Promise<unknown>,
  ): Promise<Job> {
    return (await this.#o.jobs.start({ kind, vault, resource, ...startedBy(by) }, body)).job
  }

  /** The vault, and the disk of a recovery point a restore reads (default its first). */
  async #pointDisk(
    vault: string,
    rp: string,
    name?: string,
  ): Promise<{ v: Vault; disk: string; size: number }> {
    const v = await this.#o.vaults.open(vault)
    const point = await v.getRecoveryPoint(rp)
    const disk = name ?? point.disks[0]?.name
    const d = point.disks.find((x) => x.name === disk)
    if (!d) {
      throw new CairnError(
        'RecoveryPointDiskNotFound',
        `Cannot restore: recovery point "${rp}" holds no disk "${disk ?? ''}"`,
      )
    }
    return { v, disk: d.name, size: d.size }
  }

  #hostPaths(): HostPaths {
    if (!this.#o.hostPaths)
      throw new CairnError('PathNotAllowed', 'Cannot use a host path: this service has no host-path roots')
    return this.#o.hostPaths
  }
}

const startedBy = (by: StartedBy) => (by.startedBy !== undefined ? { startedBy: by.startedBy } : {})

/** Vault progress as job progress. */
function progressTo(ctl: JobContext): (p: VaultProgress) => void {
  return (p) => ctl.progress({ phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal })
}

function diskExists(store: DiskStore, ref: DiskRef): boolean {
  try {
    store.getDisk(ref)
    return true
  } catch (err) {
    if (err instanceof CairnError && err.code === 'DiskNotFound') return false
    throw err
  }
}
