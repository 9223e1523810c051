import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, isCairnError } from '../util/index.js'
import { vaultRef } from './point-reconciler.js'
import type { VmRecoveryPoint, VmRecoveryPointDisk } from './protection-store.js'
import type { DiskByteReader, VaultTransfer } from './vault-transfer.js'

/** Where one disk of a recovery point is read from: its disk-store snapshot, or its vault point. */
export type PointDiskSource =
  | { from: 'Snapshot'; source: DiskRef; snapshot: string }
  | { from: 'Vault'; vault: string; vaultPoint: string; vaultDisk: string }

/** The tier a disk of a point is read from now: its snapshot while it exists, else its vault copy. */
export function pointDiskSource(
  point: VmRecoveryPoint,
  d: VmRecoveryPointDisk,
  vault: string,
  snapshotExists: (ref: DiskRef, snapshot: string) => boolean,
): PointDiskSource {
  if (d.snapshot !== undefined && snapshotExists(d.source, d.snapshot))
    return { from: 'Snapshot', source: d.source, snapshot: d.snapshot }
  const ref = vaultRef(d)
  if (!ref) {
    throw new CairnError(
      'RecoveryPointNotFound',
      `Cannot read disk ${d.name} of recovery point ${point.id}: its snapshot is gone and the point never reached vault "${vault}"`,
    )
  }
  return { from: 'Vault', vault, vaultPoint: ref.point, vaultDisk: ref.disk }
}

/**
 * Opens random access to one disk of a recovery point: the disk-store snapshot read in place, or the
 * vault point read range by range through the vault's chunk cache (no restore first).
 */
export async function openPointDisk(
  src: PointDiskSource,
  size: number,
  deps: { disks: DiskStore; vault?: VaultTransfer | undefined; cacheBytes?: number },
): Promise<DiskByteReader> {
  if (src.from === 'Vault') {
    if (!deps.vault)
      throw new CairnError('VaultNotFound', `Cannot read vault "${src.vault}": this service has no vaults`)
    return deps.vault.openDiskReader(
      { vault: src.vault, point: src.vaultPoint, disk: src.vaultDisk },
      deps.cacheBytes !== undefined ? { cacheBytes: deps.cacheBytes } : {},
    )
  }
  const { disks } = deps
  const { source, snapshot } = src
  const what = `Cannot read snapshot ${snapshot} of disk ${source.disk}`
  const inside = (offset: number, length: number) => {
    if (offset < 0 || length < 0 || offset + length > size)
      throw new CairnError(
        'InvalidRequest',
        `${what}: bytes ${offset}-${offset + length} are outside the disk (${size} bytes)`,
      )
  }
  return {
    size,
    async read(offset, length, into) {
      inside(offset, length)
      try {
        return await disks.read(source, offset, length, { snapshot, ...(into ? { into } : {}) })
      } catch (err) {
        if (isCairnError(err) && (err.code === 'SnapshotNotFound' || err.code === 'DiskNotFound'))
          throw new CairnError('RecoveryPointNotFound', `${what}: it was deleted`)
        throw err
      }
    },
    async ranges(offset, length) {
      inside(offset, length)
      const end = offset + length
      return disks
        .pageRanges(source, { snapshot, offset, length })
        .map((r) => ({ start: Math.max(r.start, offset), end: Math.min(r.end, end) }))
        .filter((r) => r.end > r.start)
    },
    async close() {},
  }
}
