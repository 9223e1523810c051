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
