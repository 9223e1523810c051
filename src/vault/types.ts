// Public types of the vault: what a backup reads, where a restore writes, what a recovery point holds.

/** A range of bytes `[start, end)`. */
export interface ByteRange {
  start: number
  end: number
}

/** Changes of a source since the same disk of a base recovery point (a snapshot diff). */
export interface SourceChanges {
  /** Ranges whose content changed: only these are read. */
  changed: ByteRange[]
  /** Ranges that became zeros (trimmed, cleared). */
  cleared: ByteRange[]
}

/** Something to back up: a disk snapshot, a raw file, a block device. */
export interface BackupSource {
  /** Name of the disk inside the recovery point (unique in it). */
  name: string
  /** Logical unit number of the disk in its VM, when it has one. */
  lun?: number
  size: number
  /** Source snapshot id, recorded in the recovery point. */
  snapshot?: string
  /** Reads `length` bytes at `offset` (never past `size`). */
  read(offset: number, length: number): Promise<Buffer>
  /** Ranges that may hold data; everything else is zeros. */
  ranges(): Promise<ByteRange[]>
  /** With a base recovery point: only these ranges are read, the rest comes from the base. */
  changes?: SourceChanges
  /**
   * An open file descriptor holding the disk's bytes at their offsets (a raw image or block device;
   * reads past its end return zeros). With it the chunk workers read an incremental's changed runs
   * themselves, so those bytes never pass through the main thread.
   */
  fd?: number
  close?(): Promise<void>
}

/** Where a restore writes a disk. */
export interface RestoreSink {
  /** Size of the target; a restore needs at least the disk's size. */
  readonly size: number
  write(offset: number, data: Buffer): Promise<void>
  /**
   * True when `write` keeps no reference to `data` once its promise settles (it copied or wrote it):
   * a restore then frees each chunk's memory right after its writes instead of leaving it to the
   * garbage collector.
   */
  readonly releasesData?: boolean
  /**
   * The target as open descriptors of this process, when it is a local file or device: a restore from a
   * local vault then has its worker threads write the disk's bytes there themselves (positioned writes
   * at disk offsets) instead of calling `write`. `direct` is opened with O_DIRECT (page-aligned memory,
   * offsets and lengths only), or null. The sink must make such writes durable in `close`.
   */
  readonly descriptors?: { fd: number; direct: number | null }
  /** Makes a range read as zeros (a fresh sparse target may do nothing). */
  zero(offset: number, length: number): Promise<void>
  close?(): Promise<void>
}

/**
 * Consistency of a recovery point, with the reference's names: the one definition, which the agent
 * protocol and protection use too. Manifests store it as `application-consistent`,
 * `file-system-consistent` or `crash-consistent` (docs/formats.md).
 */
export type Consistency = 'AppConsistent' | 'FileSystemConsistent' | 'CrashConsistent'

/** How a disk of a recovery point was read. */
export type DiskBackupMode = 'full' | 'incremental' | 'checksum'

/** One disk of a recovery point. */
export interface RecoveryPointDisk {
  name: string
  lun?: number
  size: number
  snapshot?: string
  mode: DiskBackupMode
  /** Id (hex) of the root page of the disk's index tree; null when the disk is all zeros. */
  root: string | null
  depth: number
  /** Bytes the backup read from the source. */
  bytesScanned: number
  /** Bytes of new chunk plaintext this disk stored. */
  bytesNew: number
  chunksNew: number
  chunksReused: number
}

/** A recovery point's manifest (the commit point of a backup). */
export interface RecoveryPoint {
  id: string
  /** What was backed up (a VM, a file, a disk) and its configuration at the time. */
  source: { kind: string; name: string; config?: Record<string, unknown> }
  consistency: Consistency
  createdAt: string
  completedAt: string
  /** When retention lets prune remove it (null: kept until a retention rule removes it). */
  expiresAt: string | null
  /**
   * Until when the retention that applied at backup keeps the point (a backup policy's, for VM points);
   * absent: its `expiresAt`. An immutable vault refuses to remove the point before then (docs/security.md).
   */
  retainUntil?: string | null
  /** The recovery point this one was built on, if any. */
  parent: string | null
  disks: RecoveryPointDisk[]
  /** Pack files this backup wrote and their total size: the bytes it added to the vault. */
  packs: string[]
  bytesAdded: number
  durationMs: number
}

/** Progress of a backup, restore or verify. */
export interface VaultProgress {
  phase: string
  /** Bytes read from sources (backup) or written to sinks (restore) or checked (verify). */
  bytesDone: number
  bytesTotal: number
  /** Bytes of new data stored (backup). */
  bytesStored: number
  /** Bytes per second since the start. */
  rate: number
  /** Milliseconds left at the current rate, when it can be told. */
  etaMs: number | null
}

/** Long-operation options. */
export interface OperationOptions {
  signal?: AbortSignal
  onProgress?: (p: VaultProgress) => void
}
