import type { DiskStore } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import type { RecoveryPoint, SoftDeletedPoint, VaultRegistry, VaultSettings } from '../vault/index.js'
import { removeExpiredCopies } from './copy-retention.js'
import { diskSource, restoreToDisk } from './disk-backup.js'
import type { DiskByteReader, VaultTransfer } from './vault-transfer.js'

/**
 * The vault side of VM backups over the service's vault registry: the disk-store snapshots of a point
 * become one vault recovery point; with a base, only the ranges of the disk store's diff are read.
 */
export class RegistryVaultTransfer implements VaultTransfer {
  readonly #registry: VaultRegistry
  readonly #disks: DiskStore

  constructor(registry: VaultRegistry, disks: DiskStore) {
    this.#registry = registry
    this.#disks = disks
  }

  async backupPoint(
    request: Parameters<VaultTransfer['backupPoint']>[0],
    options: Parameters<VaultTransfer['backupPoint']>[1],
  ): Promise<{ id: string; bytesAdded: number }> {
    const vault = await this.#registry.open(request.vault)
    const sources = request.disks.map((d) =>
      diskSource(this.#disks, d.disk, {
        snapshot: d.snapshot,
        name: d.name,
        ...(d.lun !== undefined ? { lun: d.lun } : {}),
        ...(d.baseSnapshot && request.base ? { baseSnapshot: d.baseSnapshot } : {}),
      }),
    )
    const rp = await vault.backup({
      ...(request.id ? { id: request.id } : {}),
      sources,
      item: request.item,
      consistency: request.consistency,
      ...(request.base ? { base: request.base } : {}),
      ...(request.expiresAt ? { expiresAt: new Date(request.expiresAt) } : {}),
      ...(request.retainUntil ? { retainUntil: new Date(request.retainUntil) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
      ...(options.resume ? { resume: options.resume } : {}),
      ...(options.onCheckpoint ? { onCheckpoint: options.onCheckpoint } : {}),
      ...(options.onResume ? { onResume: options.onResume } : {}),
      ...(options.keepLockOnAbort ? { keepLockOnAbort: options.keepLockOnAbort } : {}),
    })
    return { id: rp.id, bytesAdded: rp.bytesAdded }
  }

  async restoreDisk(
    request: Parameters<VaultTransfer['restoreDisk']>[0],
    options: Parameters<VaultTransfer['restoreDisk']>[1],
  ): Promise<void> {
    const vault = await this.#registry.open(request.vault)
    await restoreToDisk(vault, this.#disks, request.point, request.disk, request.target, {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
    })
  }

  async openDiskReader(
    request: { vault: string; point: string; disk: string },
    options: { cacheBytes?: number } = {},
  ): Promise<DiskByteReader> {
    const vault = await this.#registry.open(request.vault)
    return vault.openDiskReader(request.point, request.disk, options)
  }

  async holdPoints(vault: string, holder: string, points: string[]): Promise<void> {
    await (await this.#registry.open(vault)).holdPoints(holder, points)
  }

  async releasePoints(vault: string, holder: string): Promise<void> {
    await (await this.#registry.open(vault)).releasePoints(holder)
  }

  async deletePoint(vault: string, point: string): Promise<void> {
    try {
      await (await this.#registry.open(vault)).deleteRecoveryPoint(point)
    } catch (err) {
      // Already gone (the point, or the whole vault): the delete is done.
      if (isCairnError(err) && (err.code === 'RecoveryPointNotFound' || err.code === 'VaultNotFound')) return
      throw err
    }
  }

  async checkDeletable(vault: string, point: string): Promise<void> {
    try {
      await (await this.#registry.open(vault)).checkDeletable(point)
    } catch (err) {
      if (isCairnError(err) && (err.code === 'RecoveryPointNotFound' || err.code === 'VaultNotFound')) return
      throw err
    }
  }

  async settings(vault: string): Promise<VaultSettings | undefined> {
    try {
      return await this.#registry.settings(vault)
    } catch (err) {
      if (isCairnError(err) && err.code === 'VaultNotFound') return undefined
      throw err
    }
  }

  async listSoftDeleted(vault: string, item: string): Promise<SoftDeletedPoint[]> {
    return (await this.#registry.open(vault)).listSoftDeleted({ item })
  }

  async undeletePoint(vault: string, point: string): Promise<RecoveryPoint> {
    return (await this.#registry.open(vault)).undeleteRecoveryPoint(point)
  }

  async listPoints(vault: string, item: string): Promise<Set<string> | undefined> {
    let v: Awaited<ReturnType<VaultRegistry['open']>>
    try {
      v = await this.#registry.open(vault)
    } catch (err) {
      if (isCairnError(err) && err.code === 'VaultNotFound') return undefined
      throw err
    }
    return new Set((await v.listRecoveryPoints({ item })).map((p) => p.id))
  }

  async removeExpiredCopies(vault: string, vm: string): Promise<string[]> {
    let v: Awaited<ReturnType<VaultRegistry['open']>>
    try {
      v = await this.#registry.open(vault)
    } catch (err) {
      if (isCairnError(err) && err.code === 'VaultNotFound') return []
      throw err
    }
    return removeExpiredCopies(v, vm)
  }

  async hasVault(vault: string): Promise<boolean> {
    try {
      await this.#registry.get(vault)
      return true
    } catch (err) {
      if (isCairnError(err) && err.code === 'VaultNotFound') return false
      throw err
    }
  }

  async openVault(vault: string): Promise<void> {
    await this.#registry.open(vault)
  }
}
