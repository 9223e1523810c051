import type { DiskStore } from '../diskstore/index.js'
import type { VaultRegistry } from '../vault/index.js'
import { diskSource, restoreToDisk } from './disk-backup.js'
import type { VaultTransfer } from './protection-service.js'

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
      sources,
      item: request.item,
      consistency: request.consistency,
      ...(request.base ? { base: request.base } : {}),
      ...(request.expiresAt ? { expiresAt: new Date(request.expiresAt) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
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

  async deletePoint(vault: string, point: string): Promise<void> {
    await (await this.#registry.open(vault)).deleteRecoveryPoint(point)
  }
}
