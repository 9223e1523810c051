// The public contract of the disk store: accounts hold containers, containers hold page blobs
// (disks), disks hold read-only snapshots. Offsets and sizes are bytes; pages are 512 bytes.

/** Bytes in one page. Every write, clear and disk size is a multiple of this. */
export const PAGE_SIZE = 512
/** Largest disk: 8 TiB. */
export const MAX_DISK_SIZE = 8 * 1024 ** 4
/** Largest single page write: 4 MiB. */
export const MAX_WRITE_SIZE = 4 * 1024 * 1024

/** Names a disk (page blob): account / container / name. */
export interface DiskRef {
  account: string
  container: string
  disk: string
}

/** A storage account. */
export interface AccountInfo {
  name: string
  region: string
  /** Redundancy setting, after the reference: LRS, ZRS, GRS, RA-GRS, GZRS, RA-GZRS. */
  redundancy: string
  /** Two base64 keys for Shared Key authentication of the blob API. */
  keys: [string, string]
  createdOn: string
}

/** A container of disks. */
export interface ContainerInfo {
  account: string
  name: string
  metadata: Record<string, string>
  etag: string
  lastModified: string
  createdOn: string
}

/** The state of a disk's lease, after the reference. */
export interface LeaseInfo {
  state: 'available' | 'leased' | 'expired' | 'breaking' | 'broken'
  status: 'locked' | 'unlocked'
  duration?: 'infinite' | 'fixed'
  /** Present while leased or breaking. */
  id?: string
}

/** Standard HTTP properties a blob carries. */
export interface ContentProperties {
  contentType?: string
  contentEncoding?: string
  contentLanguage?: string
  contentMD5?: string
  contentDisposition?: string
  cacheControl?: string
}

/** Properties of a disk or of one of its snapshots. */
export interface DiskInfo {
  ref: DiskRef
  /** Azure snapshot id (a timestamp such as 2026-11-22T19:37:17.1234567Z) when this is a snapshot. */
  snapshot?: string
  size: number
  sequenceNumber: number
  metadata: Record<string, string>
  content: ContentProperties
  etag: string
  lastModified: string
  createdOn: string
  lease: LeaseInfo
  /** Bytes of written (non-hole) pages: the reference's "used size". */
  usedBytes: number
  /** Pending or finished copy into this disk (blob API Copy Blob / Incremental Copy). */
  copy?: CopyInfo
  /** True for a disk made by Incremental Copy Blob (readable, not writable except by further copies). */
  incrementalCopy?: boolean
  /** Blob index tags (at most 10); absent when there are none. A snapshot keeps the disk's tags of its time. */
  tags?: Record<string, string>
}

/** Status of a copy into a disk. */
export interface CopyInfo {
  id: string
  source: string
  status: 'pending' | 'success' | 'aborted' | 'failed'
  progress: string
  completedOn?: string
  statusDescription?: string
  /** For incremental copies: the snapshot of the destination made for this copy. */
  destinationSnapshot?: string
}

/** A range of bytes `[start, end)`; both multiples of 512. */
export interface ByteRange {
  start: number
  end: number
}

/** Page ranges that changed and that were cleared between two points of a disk. */
export interface DiskDiff {
  pageRanges: ByteRange[]
  clearRanges: ByteRange[]
  /** Present when more ranges follow; pass it back as `marker`. */
  nextMarker?: string
}

/** Conditions a mutation must meet; a failed one throws ConditionNotMet or a lease error. */
export interface WriteConditions {
  leaseId?: string
  ifMatch?: string
  ifNoneMatch?: string
  ifModifiedSince?: Date
  ifUnmodifiedSince?: Date
  ifSequenceNumberLessThanOrEqual?: number
  ifSequenceNumberLessThan?: number
  ifSequenceNumberEqual?: number
}

/** Result of a mutation of a disk. */
export interface WriteResult {
  etag: string
  lastModified: string
  sequenceNumber: number
}

/** Progress of a long disk-store operation (import, export, compaction). */
export interface TransferProgress {
  bytesDone: number
  bytesTotal: number
}

/** Space accounting of a disk or snapshot. */
export interface SpaceReport {
  ref: DiskRef
  snapshot?: string
  /** Bytes of written pages (used size). */
  usedBytes: number
  /** Bytes of stored data that only this disk or snapshot can see. */
  exclusiveBytes: number
}

/** Space accounting of the whole store. */
export interface StoreUsage {
  /** Bytes in data segments on disk. */
  segmentBytes: number
  /** Bytes of segment data some disk or snapshot can still see. */
  liveBytes: number
  segments: number
}

/** Whether the store can write: its file system's free space and any disk-full episode. */
export interface StoreHealth {
  /** `ok`; `low`: below the warning level; `full`: growth (writes, new disks, snapshots) is refused. */
  state: 'ok' | 'low' | 'full'
  freeBytes: number
  totalBytes: number
  /** Bytes of the reserve file held for deletes and compaction while full. */
  reserveBytes: number
  /** When the store became full. */
  since?: string
  /** Why (the error of the append that failed, or the measured free space). */
  message?: string
}

/** Options of DiskStore.createDisk. */
export interface CreateDiskOptions {
  size: number
  sequenceNumber?: number
  metadata?: Record<string, string>
  content?: ContentProperties
  overwrite?: boolean
  incrementalCopy?: boolean
  /** Blob index tags of the new disk. */
  tags?: Record<string, string>
  conditions?: WriteConditions
}

/** A page of a listing; pass `nextMarker` back as `marker` for the next page. */
export interface Listing<T> {
  items: T[]
  nextMarker?: string
}

/** Listing options (the blob API's prefix, marker and maxresults). */
export interface ListOptions {
  prefix?: string
  marker?: string
  maxResults?: number
}

/** A lease operation, after the reference's Lease Blob. */
export type LeaseAction =
  | { action: 'acquire'; duration: number; proposedId?: string }
  | { action: 'renew'; id: string }
  | { action: 'release'; id: string }
  | { action: 'change'; id: string; proposedId: string }
  | { action: 'break'; breakPeriod?: number }

/** Result of a lease operation. */
export interface LeaseResult {
  id?: string
  /** Seconds left of a breaking lease. */
  leaseTime?: number
  etag: string
  lastModified: string
}

/** Options of a long operation: cancellation and progress. */
export interface LongOperationOptions {
  signal?: AbortSignal
  onProgress?: (p: TransferProgress) => void
}

/**
 * The disk store: thin page-blob disks with instant snapshots and page-range diffs.
 *
 * Mutations check their conditions and apply in memory synchronously when called, so a caller that
 * checks state and then mutates in the same tick sees no interleaving; the returned promise settles
 * when the change is durable (or at once, for `durable: false` writes made durable by `flush()`).
 */
export interface DiskStore {
  /** Creates an account; `keys` sets its two keys (default: random), e.g. the emulators' well-known key. */
  createAccount(
    name: string,
    options?: { region?: string; redundancy?: string; keys?: [string, string] },
  ): Promise<AccountInfo>
  getAccount(name: string): AccountInfo
  listAccounts(): AccountInfo[]
  /** Deletes an account and everything in it. */
  deleteAccount(name: string): Promise<void>
  /** Replaces key 1 or 2 with a new random key, or with `key` (a geo-replica takes its primary's keys). */
  regenerateAccountKey(name: string, which: 1 | 2, key?: string): Promise<AccountInfo>
  /** Changes an account's redundancy (LRS, GRS, RA-GRS, …); geo-replication follows it (docs/replication.md). */
  setAccountRedundancy(name: string, redundancy: string): Promise<AccountInfo>

  createContainer(
    account: string,
    name: string,
    options?: { metadata?: Record<string, string> },
  ): Promise<ContainerInfo>
  getContainer(account: string, name: string): ContainerInfo
  listContainers(account: string, options?: ListOptions): Listing<ContainerInfo>
  setContainerMetadata(
    account: string,
    name: string,
    metadata: Record<string, string>,
  ): Promise<ContainerInfo>
  /** Deletes a container with all its disks and snapshots. */
  deleteContainer(account: string, name: string): Promise<void>

  /** Creates a disk of `size` bytes (zeros). `overwrite` replaces an existing disk's content and properties. */
  createDisk(ref: DiskRef, options: CreateDiskOptions): Promise<DiskInfo>
  /** Properties of a disk, or of one of its snapshots. */
  getDisk(ref: DiskRef, snapshot?: string): DiskInfo
  listDisks(
    account: string,
    container: string,
    options?: ListOptions & { includeSnapshots?: boolean },
  ): Listing<DiskInfo>
  resizeDisk(ref: DiskRef, size: number, conditions?: WriteConditions): Promise<WriteResult>
  setDiskMetadata(
    ref: DiskRef,
    metadata: Record<string, string>,
    conditions?: WriteConditions,
  ): Promise<WriteResult>
  setDiskContent(ref: DiskRef, content: ContentProperties, conditions?: WriteConditions): Promise<WriteResult>
  setSequenceNumber(
    ref: DiskRef,
    action: 'max' | 'update' | 'increment',
    value?: number,
    conditions?: WriteConditions,
  ): Promise<WriteResult>
  setCopyInfo(ref: DiskRef, copy: CopyInfo): Promise<void>
  /**
   * Replaces a disk's blob index tags. Tags are not content: the disk's etag and modification time stay
   * as they are; a lease id, when given, must match the disk's lease.
   */
  setDiskTags(ref: DiskRef, tags: Record<string, string>, conditions?: WriteConditions): Promise<void>
  /** Deletes a disk; one with snapshots needs `snapshots: 'include'` (or `'only'` to delete just them). */
  deleteDisk(
    ref: DiskRef,
    options?: { snapshots?: 'include' | 'only'; conditions?: WriteConditions },
  ): Promise<void>

  /**
   * Writes pages: offset and length 512-aligned, at most 4 MiB. `direct` (with `durable: false`): the
   * data goes past the page cache (O_DIRECT where the file system allows it), as durable writes' data
   * does, for bulk writes nobody reads back soon (geo-replication's replicas); `flush()` still makes
   * it durable.
   */
  writePages(
    ref: DiskRef,
    offset: number,
    data: Uint8Array,
    options?: { conditions?: WriteConditions; durable?: boolean; direct?: boolean },
  ): Promise<WriteResult>
  /** Clears pages back to holes (reads return zeros). */
  clearPages(
    ref: DiskRef,
    offset: number,
    length: number,
    options?: { conditions?: WriteConditions; durable?: boolean },
  ): Promise<WriteResult>
  /**
   * Reads any byte range of a disk or snapshot; holes read as zeros. With `into` (at least `length`
   * bytes), the bytes go there and the answer is its first `length` bytes, instead of a new buffer.
   */
  read(
    ref: DiskRef,
    offset: number,
    length: number,
    options?: { snapshot?: string; into?: Buffer },
  ): Promise<Buffer>
  /** Written (non-hole) ranges, merged, optionally within `[offset, offset+length)`. */
  pageRanges(ref: DiskRef, options?: { snapshot?: string; offset?: number; length?: number }): ByteRange[]
  /**
   * Changed and cleared ranges from snapshot `from` to snapshot `to` (or the live disk). With `fromDisk`,
   * `from` is a snapshot of that disk, which must be of the same lineage as `ref` (one copied from the
   * other, or both from a common disk; else `LineageMismatch`): the diff is exact across the copy.
   */
  diff(
    ref: DiskRef,
    options: {
      from: string
      fromDisk?: DiskRef
      to?: string
      offset?: number
      length?: number
      marker?: string
      maxResults?: number
    },
  ): DiskDiff
  /** Makes every write so far durable (NBD FLUSH). */
  flush(): Promise<void>

  lease(ref: DiskRef, op: LeaseAction): Promise<LeaseResult>

  /**
   * An instant read-only snapshot. `id` names it with a snapshot id made elsewhere (geo-replication
   * keeps the primary's ids on the replica); the disk must have no snapshot of that id.
   */
  snapshot(
    ref: DiskRef,
    options?: { metadata?: Record<string, string>; conditions?: WriteConditions; id?: string },
  ): Promise<DiskInfo>
  /**
   * Snapshots of several disks at one instant (a consistency group); `markers` are added to each
   * snapshot's copy of its disk's metadata (geo-replication marks its snapshots so).
   */
  snapshotGroup(refs: DiskRef[], options?: { markers?: Record<string, string> }): Promise<DiskInfo[]>
  listSnapshots(ref: DiskRef): DiskInfo[]
  deleteSnapshot(ref: DiskRef, snapshot: string): Promise<void>
  /** Makes the disk's content that of one of its snapshots. */
  promote(ref: DiskRef, snapshot: string, conditions?: WriteConditions): Promise<WriteResult>
  /** A new disk (or, with overwrite, new content of an existing one) from a disk or snapshot; no data copied. */
  copyDisk(
    source: { ref: DiskRef; snapshot?: string },
    target: DiskRef,
    options?: { metadata?: Record<string, string>; overwrite?: boolean; tags?: Record<string, string> },
  ): Promise<DiskInfo>

  space(ref: DiskRef, snapshot?: string): SpaceReport
  usage(): StoreUsage
  /** Free space and disk-full state (stores without a file system of their own may leave it out). */
  health?(): StoreHealth
  /** Reclaims segment space that no disk or snapshot can see. */
  compact(options?: LongOperationOptions): Promise<{ reclaimedBytes: number }>

  /** Imports a raw image file or block device into a new disk; zero blocks stay holes. */
  importFile(path: string, ref: DiskRef, options?: LongOperationOptions): Promise<DiskInfo>
  /**
   * Imports an image given as its data extents (rising, whole 512-byte pages, inside `size`) into a new
   * disk of `size` bytes; zero pages stay holes. The disk appears only once every extent is in; if the
   * extents fail or break the rules (ImageStreamInvalid), nothing is left. Each extent's bytes are used
   * before the next one is asked for, so the source may reuse its buffer.
   */
  importImage(
    ref: DiskRef,
    image: { size: number; extents: AsyncIterable<{ offset: number; data: Uint8Array }> },
    options?: LongOperationOptions,
  ): Promise<DiskInfo>
  /** Exports a disk or snapshot to a raw file; holes stay holes. */
  exportFile(
    ref: DiskRef,
    path: string,
    options?: LongOperationOptions & { snapshot?: string },
  ): Promise<void>

  close(): Promise<void>
}
