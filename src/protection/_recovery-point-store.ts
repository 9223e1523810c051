// The recovery points of protected items in the catalog, and their rows read back as objects.
import type { Catalog, CatalogSchema } from '../catalog/index.js'
import type { DiskRef } from '../diskstore/index.js'
import { type DiskLabel, diskLabel } from '../util/index.js'
import { type Consistency, newRecoveryPointId } from '../vault/index.js'
import type { VmSpec } from './vm.js'

/** Where a recovery point's data lives. */
export type RecoveryPointTier = 'Snapshot' | 'SnapshotAndVault' | 'Vault'

/** One disk of a recovery point. */
export interface VmRecoveryPointDisk {
  /** `os` or `lun<N>` (see disk-label.ts). */
  name: DiskLabel
  /** The LUN of a data disk (absent for the OS disk). */
  lun?: number
  source: DiskRef
  size: number
  /** Disk-store snapshot id while the point is in the snapshot tier. */
  snapshot?: string
  /** The vault's name for the disk's backup, once transferred. */
  vaultBackup?: string
}

/**
 * A protected VM's recovery point: its disks at one instant, with the VM description saved to rebuild
 * it, in the snapshot tier, the vault tier or both. Its vault copy is one vault `VmRecoveryPoint`
 * (src/vault), named by each disk's `vaultBackup`.
 */
export interface VmRecoveryPoint {
  id: string
  itemId: string
  time: string
  kind: 'Scheduled' | 'OnDemand'
  /**
   * A scheduled point: the slot it was taken for. Retention counts it as that slot's day's point even
   * when its run captured it on a later day (it waited in the queue, or caught up a missed slot).
   */
  slot?: string
  consistency: Consistency
  tier: RecoveryPointTier
  expiresAt?: string
  disks: VmRecoveryPointDisk[]
  vm: VmSpec
}

/** The `recovery_points` table, by point id or by protected item (ProtectionStore's part for points). */
export class RecoveryPointStore {
  readonly #catalog: Catalog
  readonly #iso: () => string

  constructor(catalog: Catalog, iso: () => string) {
    this.#catalog = catalog
    this.#iso = iso
  }

  get #db() {
    return this.#catalog.db
  }

  /** Adds a point, with an id of the vault's form unless it has one. */
  async add(point: Omit<VmRecoveryPoint, 'id'> & { id?: string }): Promise<VmRecoveryPoint> {
    const id = point.id ?? newRecoveryPointId(new Date(point.time))
    await this.#db
      .insertInto('recovery_points')
      .values({
        id,
        item_id: point.itemId,
        time: Date.parse(point.time),
        kind: point.kind,
        consistency: point.consistency,
        tier: point.tier,
        expires_at: point.expiresAt === undefined ? null : Date.parse(point.expiresAt),
        disks_json: JSON.stringify(point.disks),
        vm_json: JSON.stringify(point.vm),
        created_at: this.#iso(),
        legacy_id: null,
        slot: point.slot === undefined ? null : Date.parse(point.slot),
      })
      .execute()
    return { ...point, id }
  }

  /** A point by id or legacy UUID, or undefined. */
  async find(id: string): Promise<VmRecoveryPoint | undefined> {
    const row = await this.#db
      .selectFrom('recovery_points')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', id), eb('legacy_id', '=', id)]))
      .executeTakeFirst()
    return row ? toPoint(row) : undefined
  }

  /** An item's points, oldest first. */
  async listOfItem(itemId: string): Promise<VmRecoveryPoint[]> {
    const rows = await this.#db
      .selectFrom('recovery_points')
      .selectAll()
      .where('item_id', '=', itemId)
      .orderBy('time')
      .execute()
    return rows.map(toPoint)
  }

  /** How many points an item has. */
  async countOfItem(itemId: string): Promise<number> {
    const rows = await this.#db
      .selectFrom('recovery_points')
      .select('id')
      .where('item_id', '=', itemId)
      .execute()
    return rows.length
  }

  async update(id: string, change: { tier: RecoveryPointTier; disks: VmRecoveryPointDisk[] }): Promise<void> {
    await this.#db
      .updateTable('recovery_points')
      .set({ tier: change.tier, disks_json: JSON.stringify(change.disks) })
      .where('id', '=', id)
      .execute()
  }

  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('recovery_points').where('id', '=', id).execute()
  }
}

function toPoint(r: CatalogSchema['recovery_points']): VmRecoveryPoint {
  const p: VmRecoveryPoint = {
    id: r.id,
    itemId: r.item_id,
    time: new Date(r.time).toISOString(),
    kind: r.kind as VmRecoveryPoint['kind'],
    consistency: r.consistency as Consistency,
    tier: r.tier as RecoveryPointTier,
    disks: (JSON.parse(r.disks_json) as StoredPointDisk[]).map(pointDisk),
    vm: JSON.parse(r.vm_json) as VmSpec,
  }
  if (r.expires_at !== null) p.expiresAt = new Date(r.expires_at).toISOString()
  if (r.slot !== null && r.slot !== undefined) p.slot = new Date(Number(r.slot)).toISOString()
  return p
}

/** A point's disk as stored: points written before disk labels have `lun: 'os' | N` and no name. */
type StoredPointDisk = Omit<VmRecoveryPointDisk, 'name' | 'lun'> & { name?: DiskLabel; lun?: number | 'os' }

function pointDisk(d: StoredPointDisk): VmRecoveryPointDisk {
  const { name, lun, ...rest } = d
  return { name: name ?? diskLabel(lun ?? 'os'), ...(typeof lun === 'number' ? { lun } : {}), ...rest }
}
