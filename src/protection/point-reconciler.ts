import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { isCairnError, type Logger, silentLogger } from '../util/index.js'
import type {
  ProtectionStore,
  RecoveryPointTier,
  VmRecoveryPoint,
  VmRecoveryPointDisk,
} from './protection-store.js'
import type { VaultTransfer } from './vault-transfer.js'

/** Error codes that mean "the disk or snapshot is not there" when asking the disk store. */
const GONE = new Set(['SnapshotNotFound', 'DiskNotFound', 'ContainerNotFound', 'AccountNotFound'])

/** Splits a disk's `vaultBackup` (`<vault point>/<disk>`). */
export function vaultRef(d: VmRecoveryPointDisk): { point: string; disk: string } | undefined {
  if (!d.vaultBackup) return undefined
  const i = d.vaultBackup.lastIndexOf('/')
  return { point: d.vaultBackup.slice(0, i), disk: d.vaultBackup.slice(i + 1) }
}

/**
 * The tier of a point from what its disks still hold: every disk in both → SnapshotAndVault, every
 * disk a snapshot → Snapshot, every disk a vault copy → Vault; undefined when some disk has neither
 * (the point cannot be restored any more). A disk with both counts for either.
 */
export function tierOf(disks: VmRecoveryPointDisk[]): RecoveryPointTier | undefined {
  const snap = disks.every((d) => d.snapshot !== undefined)
  const vault = disks.every((d) => d.vaultBackup !== undefined)
  if (snap && vault) return 'SnapshotAndVault'
  if (snap) return 'Snapshot'
  if (vault) return 'Vault'
  return undefined
}

/** What a reconciliation changed. */
export interface ReconcileReport {
  /** Points whose tier changed: id, old tier, new tier. */
  changed: { id: string; from: RecoveryPointTier; to: RecoveryPointTier }[]
  /** Points that lost both tiers and were removed. */
  removed: string[]
  /** Set when the vault could not be asked (locked, unreachable): its side was left as recorded. */
  vaultUnknown?: string
}

/**
 * Keeps recovery-point records true to what exists: a snapshot deleted behind a point (expired,
 * forced, or through the blob API) or a vault point gone (vault deleted or recreated, a point pruned)
 * changes the point's tier; a point left with neither is removed. Runs on read (listing, restore,
 * backup) and after forced deletes, so no path that deletes data has to remember to call it.
 */
export class PointReconciler {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #vault: VaultTransfer | undefined
  readonly #log: Logger

  constructor(options: { store: ProtectionStore; disks: DiskStore; vault?: VaultTransfer; logger?: Logger }) {
    this.#store = options.store
    this.#disks = options.disks
    this.#vault = options.vault
    this.#log = options.logger ?? silentLogger
  }

  /** True when the disk store still holds this snapshot of this disk. */
  snapshotExists(ref: DiskRef, snapshot: string): boolean {
    try {
      this.#disks.getDisk(ref, snapshot)
      return true
    } catch (err) {
      if (isCairnError(err) && GONE.has(err.code)) return false
      throw err
    }
  }

  /**
   * Reconciles the points of a VM with the disk store and, with `vault: true`, with its vault. Points
   * `skip` names (a backup being written) are left alone.
   */
  async reconcile(
    vmName: string,
    options: { vault?: boolean; skip?: ReadonlySet<string> } = {},
  ): Promise<ReconcileReport> {
    const report: ReconcileReport = { changed: [], removed: [] }
    const item = await this.#store.getItem(vmName)
    const points = await this.#store.listRecoveryPoints(vmName)
    let inVault: Set<string> | undefined
    let checkVault = false
    if (options.vault && this.#vault && points.some((p) => p.disks.some((d) => d.vaultBackup))) {
      try {
        inVault = (await this.#vault.listPoints(item.vault, vmName)) ?? new Set()
        checkVault = true
      } catch (err) {
        report.vaultUnknown = (err as Error).message
      }
    }
    for (const p of points) {
      if (options.skip?.has(p.id)) continue
      let changed = false
      const disks = p.disks.map((d) => {
        const out = { ...d }
        if (out.snapshot && !this.snapshotExists(out.source, out.snapshot)) {
          delete out.snapshot
          changed = true
        }
        const ref = vaultRef(out)
        if (checkVault && ref && !inVault!.has(ref.point)) {
          delete out.vaultBackup
          changed = true
        }
        return out
      })
      if (!changed) continue
      const tier = tierOf(disks)
      if (tier === undefined) {
        await this.#dropPoint(item.vault, { ...p, disks })
        report.removed.push(p.id)
        this.#log.warn('recovery point lost its data and was removed', { vm: vmName, point: p.id })
        continue
      }
      await this.#store.updateRecoveryPoint(p.id, { tier, disks })
      if (tier !== p.tier) report.changed.push({ id: p.id, from: p.tier, to: tier })
    }
    return report
  }

  /** Reconciles every VM with a protected item (optionally only those of `vms`). */
  async reconcileAll(options: { vault?: boolean; vms?: string[] } = {}): Promise<void> {
    const items = await this.#store.listItems()
    for (const item of items) {
      if (options.vms && !options.vms.includes(item.vmName)) continue
      await this.reconcile(item.vmName, { vault: options.vault ?? false })
    }
  }

  /**
   * Removes a recovery point's data from both tiers; what is already gone (a snapshot, the vault
   * point, the whole vault) counts as removed. Its record is the caller's.
   */
  async deletePointData(vault: string, p: VmRecoveryPoint): Promise<void> {
    // An immutable vault that keeps the point refuses before anything is deleted.
    await this.checkDeletable(vault, [p])
    const points = new Set<string>()
    for (const d of p.disks) {
      if (d.snapshot) {
        await this.#disks.deleteSnapshot(d.source, d.snapshot).catch((err) => {
          if (!isCairnError(err) || !GONE.has(err.code)) throw err
        })
      }
      const ref = vaultRef(d)
      if (ref) points.add(ref.point)
    }
    if (this.#vault) for (const point of points) await this.#vault.deletePoint(vault, point)
  }

  /** Refuses (`RetentionLocked`) when the vault would refuse to delete the vault copy of any of `points`. */
  async checkDeletable(vault: string, points: VmRecoveryPoint[]): Promise<void> {
    if (!this.#vault) return
    const refs = new Set<string>()
    for (const p of points)
      for (const d of p.disks) {
        const ref = vaultRef(d)
        if (ref) refs.add(ref.point)
      }
    for (const point of refs) await this.#vault.checkDeletable(vault, point)
  }

  async #dropPoint(vault: string, p: VmRecoveryPoint): Promise<void> {
    // What is left of it (a snapshot of another disk of the point) restores nothing on its own.
    await this.deletePointData(vault, p).catch(() => {})
    await this.#store.deleteRecoveryPoint(p.id)
  }
}
