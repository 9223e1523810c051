// Over ~600 lines on purpose: one method per vault use case (create, attach, unlock, key, remove,
// usage, backup, restore, verify, prune, GC, copy, file access), each starting its job; the next split
// is along that line (management / data transfers) when it grows again.

import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, type HostPaths } from '../util/index.js'
import {
  applySettingsChange,
  type CopyReport,
  fileSink,
  fileSource,
  immutable,
  type PointRemoval,
  type PruneReport,
  type RecoveryPoint,
  type RetentionPolicy,
  retentionSpan,
  type SoftDeletedPoint,
  softDeleteOn,
  type Vault,
  type VaultCredentials,
  type VaultInfo,
  type VaultProgress,
  type VaultRegistry,
  type VaultSettings,
  type VaultSettingsChange,
  type VaultUsage,
} from '../vault/index.js'
import { removeTemporaryFile, resumeOptions } from './_job-steps.js'
import { policyExpiry, removeExpiredCopies } from './copy-retention.js'
import { backupDisks, checkSnapshots, removeSnapshots, restoreToDisk } from './disk-backup.js'
import type { JobBody, JobContext, JobService } from './job-service.js'
import type { RetentionRules } from './policy.js'
import type { PointPin } from './protection-service.js'
import { mountedError } from './recovery-point-mounts.js'
import type { ResourceGuard } from './resource-guard.js'
import { type RunToEnd, runJobToEnd } from './run-job-to-end.js'
import type { Redundancy, ReplicationStatus, VaultReplication } from './vault-replication.js'

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
  /** The live mount that holds a vault point (rp mount), if any: deleting the point is refused. */
  mountOf?: (vault: string, point: string) => Promise<PointPin | undefined>
  /** A live mount that reads the vault, if any: removing the vault (even keeping its data) is refused. */
  mountInVault?: (vault: string) => PointPin | undefined
  /** GRS vaults: redundancy, replication status and failover (docs/replication.md). */
  replication?: VaultReplication
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

/** A backup of disk-store disks or of a host file (exactly one of `disks` and `path`). */
export interface VaultBackupRequest extends BackupBase, StartedBy {
  disks?: BackupDisk[]
  path?: string
  /** The item's name (default the first disk's or the file's name). */
  item?: string
  /** A file's disk name inside the recovery point (default the file name). */
  disk?: string
}

/** A restore of a recovery point's disk into a disk-store disk or a host file (exactly one of `target` and `path`). */
export interface VaultRestoreRequest extends StartedBy {
  disk?: string
  target?: DiskRef
  path?: string
  overwrite?: boolean
}

/**
 * The vault use cases, one method each, reached the same way by the API, the scheduler and the
 * service's recovery: vaults themselves (create, attach, unlock, change key, remove, usage), their
 * recovery points, and the work that runs as jobs — backups from disks or a host file, restores into
 * a disk or a host file, verify, prune and GC. A method checks its request before the job starts (so
 * a refusal is the answer, not a failed job) and answers the started job; prune waits for its report.
 */
export class VaultService {
  readonly #o: VaultServiceOptions

  constructor(options: VaultServiceOptions) {
    this.#o = options
  }

  // --- Vaults ---

  /**
   * Every vault, with its redundancy and replication state (the lag the portal's dashboard shows),
   * without opening any vault: `pointsSinceSync` is left to `get`.
   */
  async list(): Promise<(VaultInfo & { replication: ReplicationStatus })[]> {
    const vaults = await this.#o.vaults.list()
    const replication = this.#o.replication
    return Promise.all(
      vaults.map(async (v) => ({
        ...v,
        replication: (await replication?.status(v.name, { countSinceSync: false })) ?? {
          redundancy: 'LRS' as const,
        },
      })),
    )
  }

  /**
   * Makes a vault (encrypted with `encryption`; with `sameKeyAs`, with that vault's key), or with
   * `attach` registers one that exists at `location`.
   */
  async create(
    name: string,
    request: {
      location?: string
      encryption?: VaultCredentials
      attach?: boolean
      sameKeyAs?: string
      /** GRS: a read-only replica on the paired site `pair` (docs/replication.md); default LRS. */
      redundancy?: Redundancy
      pair?: string
    } = {},
  ): Promise<VaultInfo & { replication: ReplicationStatus }> {
    const { redundancy, pair, ...rest } = request
    if (redundancy === 'GRS') {
      if (!pair)
        throw new CairnError(
          'InvalidRequest',
          `Cannot create GRS vault "${name}": name the paired site (pair)`,
        )
      await this.#replication().assertPair(pair)
    }
    const info = await this.#o.vaults.create(name, rest)
    if (redundancy === 'GRS') {
      try {
        return { ...info, replication: await this.#replication().setRedundancy(name, 'GRS', pair) }
      } catch (err) {
        if (err instanceof CairnError)
          throw new CairnError(
            err.code,
            `Vault "${name}" was created as LRS, but cannot be made GRS: ${err.message} (try again with cairn vault redundancy ${name} GRS --pair ${pair} before its first backup)`,
          )
        throw err
      }
    }
    return { ...info, replication: { redundancy: 'LRS' } }
  }

  /** A vault by name (VaultNotFound otherwise), with its redundancy and replication state. */
  async get(name: string): Promise<VaultInfo & { replication: ReplicationStatus }> {
    const info = await this.#o.vaults.get(name)
    return { ...info, replication: (await this.#o.replication?.status(name)) ?? { redundancy: 'LRS' } }
  }

  /** Sets a vault's redundancy before its first backup (RedundancyLocked after). */
  setRedundancy(name: string, redundancy: Redundancy, pair?: string): Promise<ReplicationStatus> {
    return this.#replication().setRedundancy(name, redundancy, pair)
  }

  /** Promotes this site's replica of a GRS vault (cross-region failover). */
  failover(name: string): Promise<ReplicationStatus & { oldPrimaryNotified: boolean }> {
    return this.#replication().failover(name)
  }

  /** Refuses (VaultIsReplica) a write into the read-only replica of a GRS vault, before any job starts. */
  async #writable(vault: string, what: string): Promise<void> {
    const reason = await this.#o.replication?.readOnlyReason(vault)
    if (reason) throw new CairnError('VaultIsReplica', `Cannot ${what} vault "${vault}": ${reason}`)
  }

  /** The replication service, or ServiceUnavailable. */
  #replication(): VaultReplication {
    if (!this.#o.replication) throw new CairnError('ServiceUnavailable', 'This service replicates no vaults')
    return this.#o.replication
  }

  /**
   * Forgets a vault; `deleteData` also deletes the files of its layout (refused while it holds
   * recovery points or protected items). Refused while it holds soft-deleted points, or points while
   * immutable (VaultRegistry.remove); a guarded vault needs an approval, used once every other check
   * passed; refused while a recovery-point mount reads it (`RecoveryPointMounted`). Answers the
   * files of its folder that were not the vault's.
   */
  async remove(
    name: string,
    request: { deleteData?: boolean } = {},
  ): Promise<{ name: string; dataDeleted: boolean; left: string[] }> {
    const deleteData = request.deleteData === true
    const mount = this.#o.mountInVault?.(name)
    if (mount) throw mountedError(`vault "${name}"`, mount)
    const guard = this.#o.guard
    const { left } = await this.#o.vaults.remove(name, {
      deleteData,
      ...(guard
        ? { authorize: () => guard.authorize(name, 'deleteVault', `Cannot delete vault "${name}"`) }
        : {}),
    })
    return { name, dataDeleted: deleteData, left }
  }

  /** Gives an encrypted vault its key until the service stops. */
  async unlock(name: string, credentials: VaultCredentials | undefined): Promise<VaultInfo> {
    if (!credentials)
      throw new CairnError('InvalidRequest', 'Cannot unlock the vault: give passphrase or keyFile')
    return this.#o.vaults.unlock(name, credentials)
  }

  /** Replaces the key of an encrypted vault (its data keys are re-wrapped, not its data). */
  async changeKey(name: string, credentials: VaultCredentials | undefined): Promise<VaultInfo> {
    if (!credentials)
      throw new CairnError('InvalidRequest', 'Cannot change the key: give passphrase or keyFile')
    await (await this.#o.vaults.open(name)).changeKey(credentials)
    return this.#o.vaults.get(name)
  }

  /** Logical, stored and new bytes per recovery point, deduplication and compression. */
  async usage(name: string): Promise<VaultUsage> {
    return (await this.#o.vaults.open(name)).usage()
  }

  // --- Recovery points ---

  /** A vault's recovery points (of one item if asked). */
  async listRecoveryPoints(name: string, filter: { item?: string } = {}): Promise<RecoveryPoint[]> {
    return (await this.#o.vaults.open(name)).listRecoveryPoints(filter)
  }

  /** One recovery point of a vault. */
  async getRecoveryPoint(name: string, rp: string): Promise<RecoveryPoint> {
    return (await this.#o.vaults.open(name)).getRecoveryPoint(rp)
  }

  // --- Jobs ---

  /** Backs up disk-store disks or a host file (exactly one of them), as a job. */
  async backup(vault: string, request: VaultBackupRequest): Promise<Job> {
    await this.#writable(vault, 'back up into')
    const { disks, path, ...rest } = request
    if (disks && path)
      throw new CairnError('InvalidRequest', 'Cannot back up: give either disks or path, not both')
    if (disks) return this.backupDisks(vault, { ...rest, disks })
    if (!path) throw new CairnError('InvalidRequest', 'Cannot back up: give disks or path')
    return this.backupFile(vault, { ...rest, path })
  }

  /** Restores a disk of a recovery point into a disk-store disk or a host file (exactly one of them), as a job. */
  async restore(vault: string, rp: string, request: VaultRestoreRequest): Promise<Job> {
    const { target, path, ...rest } = request
    if (target && path)
      throw new CairnError('InvalidRequest', 'Cannot restore: give either target or path, not both')
    if (target) return this.restoreToDisk(vault, rp, { ...rest, target })
    if (!path) throw new CairnError('InvalidRequest', 'Cannot restore: give target or path')
    return this.restoreToFile(vault, rp, { ...rest, path })
  }

  /**
   * Backs up disk-store disks, snapshotted together (only the diff since the base is read). The job
   * records its request, the snapshots and the vault's checkpoints: a service that dies resumes it.
   */
  async backupDisks(
    vault: string,
    request: BackupBase & { disks: BackupDisk[]; item?: string } & StartedBy,
  ): Promise<Job> {
    const v = await this.#o.vaults.open(vault)
    const disks = request.disks
    if (disks.length === 0) throw new CairnError('InvalidRequest', 'Cannot back up: disks is empty')
    for (const d of disks) this.#o.diskStore.getDisk(d)
    const spec: DiskBackupRequest = {
      disks,
      item: request.item ?? disks[0]!.disk,
      ...(request.base !== undefined ? { base: request.base } : {}),
      ...(request.expiresAt ? { expiresAt: request.expiresAt.toISOString() } : {}),
    }
    return this.#start(
      'backup',
      vault,
      `vaults/${vault}`,
      request,
      (ctl) => this.#backupDisks(ctl, v, spec),
      {
        request: spec,
      },
    )
  }

  /**
   * Copies recovery points of vault `from` into vault `to` (every point, or those of a VM, or the ones
   * named), as a job: only the chunks `to` lacks, each point's manifest after its chunks. The job
   * records each point committed and keeps its lock on `to` when the service stops or dies, so the
   * next start resumes it where it stopped (docs/vault.md "Copies").
   */
  async copy(request: VaultCopyRequest & StartedBy): Promise<Job> {
    const spec = await this.#checkCopy(request)
    return (
      await this.#o.jobs.start(
        {
          kind: 'copy',
          vault: spec.to,
          resource: `vaults/${spec.to}`,
          ...(request.vm ? { vm: request.vm } : {}),
          ...startedBy(request),
          details: { request: spec },
        },
        (ctl) => this.#copy(ctl, spec),
      )
    ).job
  }

  /** Refuses a copy that cannot start: same vault, a vault missing or locked (the answer names which). */
  async #checkCopy(request: VaultCopyRequest): Promise<VaultCopyRequest> {
    if (request.from === request.to)
      throw new CairnError('InvalidRequest', `Cannot copy vault "${request.from}" into itself`)
    await this.#writable(request.to, 'copy recovery points into')
    for (const [role, name] of [
      ['source', request.from],
      ['target', request.to],
    ] as const) {
      try {
        await this.#o.vaults.open(name)
      } catch (err) {
        if (err instanceof CairnError)
          throw new CairnError(err.code, `Cannot copy: the ${role} vault: ${err.message}`)
        throw err
      }
    }
    if (request.points?.length === 0) throw new CairnError('InvalidRequest', 'Cannot copy: points is empty')
    return {
      from: request.from,
      to: request.to,
      ...(request.vm ? { vm: request.vm } : {}),
      ...(request.points ? { points: [...request.points] } : {}),
      ...(request.onlyNewer ? { onlyNewer: true } : {}),
      ...(request.retention ? { retention: request.retention } : {}),
      ...(request.policy ? { policy: request.policy } : {}),
    }
  }

  async #copy(
    ctl: JobContext,
    spec: VaultCopyRequest,
  ): Promise<CopyReport & { expiredCopiesRemoved?: string[] }> {
    const from = await this.#o.vaults.open(spec.from)
    const to = await this.#o.vaults.open(spec.to)
    const d = ctl.details
    const earlier = d.copied as CopyReport | undefined
    if (ctl.resumed) {
      const last = (d.resumed as { at: string; bytesDone?: number }[] | undefined)?.at(-1)
      if (last) last.bytesDone = earlier?.bytesWritten ?? 0
      await ctl.phase('Resumed')
    }
    const retention = spec.retention
    const rules = spec.policy
    const now = to.now()
    const report = await from.copyTo(to, {
      ...(spec.points ? { points: spec.points } : {}),
      ...(spec.vm ? { item: spec.vm, kind: 'vm' } : {}),
      ...(spec.onlyNewer ? { onlyNewer: true } : {}),
      ...(retention ? { retention: (rp) => copyExpiry(rp, retention) } : {}),
      ...(rules
        ? {
            select: (rp) => policyExpiry(rp, rules) > now,
            retention: (rp) => {
              const at = new Date(policyExpiry(rp, rules)).toISOString()
              return { expiresAt: at, retainUntil: at }
            },
          }
        : {}),
      ...(earlier ? { resumeFrom: earlier } : {}),
      lockId: `copy-${ctl.job.id}`,
      signal: ctl.signal,
      onProgress: progressTo(ctl),
      onPoint: async (r) => {
        d.copied = r
        await ctl.save()
      },
      keepLockOnAbort: () => ctl.suspend(),
    })
    delete d.copied
    // The copies' own retention, on the target: its expired copies of the VM go (its newest kept).
    if (rules && spec.vm) {
      await ctl.phase('Retention')
      return { ...report, expiredCopiesRemoved: await removeExpiredCopies(to, spec.vm) }
    }
    return report
  }

  /**
   * At start-up, the work that resumes a vault job the last run left unfinished: a backup of disks
   * whose snapshots were taken goes on from its last checkpoint (BackupSnapshotMissing when one is
   * gone). Anything else answers undefined: it ends Interrupted.
   */
  async resume(job: Job): Promise<JobBody | undefined> {
    if (job.kind === 'copy') {
      const spec = job.details.request as VaultCopyRequest | undefined
      if (!spec) return undefined
      await this.#checkCopy(spec)
      return (ctl) => this.#copy(ctl, spec)
    }
    const spec = job.details.request as DiskBackupRequest | undefined
    const snapshots = job.details.snapshots
    if (job.kind !== 'backup' || job.vm || !job.vault || !spec || !Array.isArray(snapshots)) return undefined
    checkSnapshots(
      this.#o.diskStore,
      spec.disks.map(refOf),
      snapshots as string[],
      `the backup of "${spec.item}"`,
    )
    const v = await this.#o.vaults.open(job.vault)
    return (ctl) => this.#backupDisks(ctl, v, spec)
  }

  /**
   * Removes what a vault job that ended Interrupted left: a disk backup's snapshots (no point holds
   * them), a restore's temporary file. Answers what it removed.
   */
  async cleanInterrupted(job: Job): Promise<string[]> {
    const removed: string[] = []
    const spec = job.details.request as DiskBackupRequest | undefined
    const snapshots = job.details.snapshots
    if (job.kind === 'backup' && !job.vm && spec && Array.isArray(snapshots)) {
      const refs = spec.disks.map(refOf)
      await removeSnapshots(this.#o.diskStore, refs, snapshots as string[])
      removed.push(...refs.map((r, i) => `${r.disk}@${snapshots[i]}`))
    }
    removed.push(...(await removeTemporaryFile(job)))
    // A copy that cannot resume: its locks go now, so GC reclaims its packs without waiting for them to age.
    const copy = job.details.request as VaultCopyRequest | undefined
    if (job.kind === 'copy' && copy) {
      for (const name of [copy.from, copy.to]) {
        const v = await this.#o.vaults.open(name).catch(() => undefined)
        if (!v) continue
        const lock = `locks/copy-${job.id}`
        if ((await v.backend.list(lock)).some((o) => o.name === lock)) {
          await v.backend.delete(lock)
          removed.push(`${name}:${lock}`)
        }
      }
    }
    return removed
  }

  async #backupDisks(ctl: JobContext, v: Vault, spec: DiskBackupRequest): Promise<unknown> {
    const d = ctl.details
    const base = spec.base
    return backupDisks(
      v,
      this.#o.diskStore,
      spec.disks.map((x) => ({
        ref: refOf(x),
        ...(x.name ? { name: x.name } : {}),
        ...(x.lun !== undefined ? { lun: x.lun } : {}),
      })),
      {
        item: { kind: 'disks', name: spec.item, config: { disks: spec.disks } },
        ...(base === 'none' ? { base: null } : base && base !== 'latest' ? { base } : {}),
        ...(spec.expiresAt ? { expiresAt: new Date(spec.expiresAt) } : {}),
        signal: ctl.signal,
        onProgress: progressTo(ctl),
        ...(Array.isArray(d.snapshots) ? { snapshots: d.snapshots as string[] } : {}),
        onSnapshots: async (snapshots) => {
          d.snapshots = snapshots
          await ctl.save()
        },
        ...resumeOptions(ctl),
      },
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
        // Named in the job first: if the service dies, the next start removes the half-written file.
        ctl.details.temporaryFile = temporary
        await ctl.save()
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
    await this.#writable(vault, 'change the settings of')
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
   * Deletes a recovery point: soft-deleted while soft delete is on and its retention runs, refused by
   * an immutable vault that still retains it; points of protected VMs lose their vault tier.
   */
  async deletePoint(vault: string, rp: string): Promise<PointRemoval> {
    await this.#writable(vault, `delete recovery point ${rp} of`)
    const pin = await this.#o.mountOf?.(vault, rp)
    if (pin) throw mountedError(`recovery point ${rp} of vault "${vault}"`, pin)
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
    details?: Record<string, unknown>,
  ): Promise<Job> {
    return (
      await this.#o.jobs.start(
        { kind, vault, resource, ...startedBy(by), ...(details ? { details } : {}) },
        body,
      )
    ).job
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

/** A copy between two vaults, as its job records it. */
export interface VaultCopyRequest {
  from: string
  to: string
  /** Only the points of this protected VM. */
  vm?: string
  /** Only these points. */
  points?: string[]
  /** Only points newer than the newest the target holds of the same item (a policy's copies). */
  onlyNewer?: boolean
  /**
   * Count rules the target keeps copies by (its prune applies them): copied points then have no expiry
   * and are retained (on an immutable target) for the longest rule's span. Default: the source point's
   * expiry and retention.
   */
  retention?: RetentionPolicy
  /**
   * A backup policy's copy rules (its time zone and the copy's retention ranges): only the points they
   * keep are copied, each expiring (and retained) when they say; then the target's expired copies of
   * the VM go (its newest kept).
   */
  policy?: { timeZone: string; retention: RetentionRules }
}

/** A backup of disks as its job records it, to resume it. */
interface DiskBackupRequest {
  disks: BackupDisk[]
  item: string
  base?: string
  expiresAt?: string
}

const refOf = (d: DiskRef): DiskRef => ({ account: d.account, container: d.container, disk: d.disk })

const startedBy = (by: StartedBy) => (by.startedBy !== undefined ? { startedBy: by.startedBy } : {})

/** A copy's expiry under count rules: none (prune decides), retained for the rules' longest span. */
function copyExpiry(
  rp: RecoveryPoint,
  rules: RetentionPolicy,
): { expiresAt: null; retainUntil: string | null } {
  const span = retentionSpan(rules)
  return {
    expiresAt: null,
    retainUntil: span === null ? null : new Date(Date.parse(rp.createdAt) + span).toISOString(),
  }
}

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
