import type { DiskRef, LongOperationOptions } from '../diskstore/index.js'
import type {
  BackupCheckpoint,
  ByteRange,
  Consistency,
  RecoveryPoint,
  SoftDeletedPoint,
  VaultSettings,
} from '../vault/index.js'

/** Options of a transfer that can resume: see the vault's BackupOptions (resume, onCheckpoint, onResume). */
export interface ResumableTransfer extends LongOperationOptions {
  resume?: BackupCheckpoint
  onCheckpoint?: (checkpoint: BackupCheckpoint) => void
  onResume?: (bytesDone: number) => void
  /** Asked when aborted: true keeps the vault's lock for a later resume. */
  keepLockOnAbort?: () => boolean
}

/**
 * What protection needs from the vault engine: store every disk of a snapshot-tier point as one vault
 * recovery point, reading only what changed since a base the vault holds; restore a disk; delete; and
 * tell which of an item's points the vault still holds.
 */
export interface VaultTransfer {
  backupPoint(
    request: {
      vault: string
      /** The vault point's id: the recovery point's own, so both tiers name the point alike. */
      id?: string
      item: { kind: string; name: string; config: Record<string, unknown> }
      consistency: Consistency
      expiresAt?: string
      /** Until when the policy's retention keeps the point (an immutable vault holds it that long). */
      retainUntil?: string
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
    options: ResumableTransfer,
  ): Promise<{ id: string; bytesAdded: number }>
  restoreDisk(
    request: { vault: string; point: string; disk: string; target: DiskRef; size: number },
    options: LongOperationOptions,
  ): Promise<void>
  /**
   * Deletes a vault point (soft-deleted while the vault's soft delete is on and its retention runs); a
   * point or vault already gone counts as deleted. An immutable vault refuses (`RetentionLocked`).
   */
  deletePoint(vault: string, point: string): Promise<void>
  /** Refuses (`RetentionLocked`) when the vault would refuse to delete the point; a point or vault gone passes. */
  checkDeletable(vault: string, point: string): Promise<void>
  /** The vault's soft-delete and immutability settings; undefined when the vault does not exist. */
  settings(vault: string): Promise<VaultSettings | undefined>
  /** An item's soft-deleted points in a vault. */
  listSoftDeleted(vault: string, item: string): Promise<SoftDeletedPoint[]>
  /** Brings a soft-deleted vault point back. */
  undeletePoint(vault: string, point: string): Promise<RecoveryPoint>
  /** The ids of an item's points in a vault; undefined when the vault does not exist. */
  listPoints(vault: string, item: string): Promise<Set<string> | undefined>
  /** Whether a vault of this name exists. */
  hasVault(vault: string): Promise<boolean>
  /** Random access to one disk of a vault point (no restore): see the vault's VaultDiskReader. */
  openDiskReader(
    request: { vault: string; point: string; disk: string },
    options?: { cacheBytes?: number },
  ): Promise<DiskByteReader>
  /** Keeps vault points from prune and GC while `holder` lives (refreshed by calling again). */
  holdPoints(vault: string, holder: string, points: string[]): Promise<void>
  /** Ends a hold (one already gone is fine). */
  releasePoints(vault: string, holder: string): Promise<void>
  /**
   * Deletes a VM's copies in a vault (a policy's copy vault) whose expiry has passed by that vault's
   * clock, the newest kept; answers their ids (none when the vault is gone).
   */
  removeExpiredCopies(vault: string, vm: string): Promise<string[]>
  /** Opens a vault (throws VaultKeyRequired when it is locked, VaultNotFound when absent). */
  openVault(vault: string): Promise<void>
}

/** Random access to the bytes of one disk, holes known: what a mount or a file-system reader reads. */
export interface DiskByteReader {
  readonly size: number
  /** Bytes `[offset, offset + length)` (holes read as zeros); with `into`, the bytes may go there. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
  /** The ranges inside `[offset, offset + length)` that hold data (sorted, merged); the rest are holes. */
  ranges(offset: number, length: number): Promise<ByteRange[]>
  close(): Promise<void>
}
