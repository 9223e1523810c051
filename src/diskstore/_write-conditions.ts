// Write conditions: the etag, date, lease and sequence-number checks a mutation must pass, and the
// argument checks (ranges, sizes, sequence numbers, read-only copies) shared by the disk operations.

import { CairnError } from '../util/index.js'
import { checkLease } from './_lease.js'
import type { DiskState } from './_store-state.js'
import { MAX_DISK_SIZE, PAGE_SIZE, type WriteConditions } from './types.js'

/** Whether `n` is a whole number of pages from 0. */
export const isPageAligned = (n: number) => Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE === 0

/** Throws unless the conditions hold at `now` for a mutation of `disk` (`what` completes "Cannot …"). */
export function checkWriteConditions(
  disk: DiskState | undefined,
  c: WriteConditions | undefined,
  what: string,
  options: { now: number; lease: boolean },
): void {
  if (disk !== undefined && options.lease) checkLease(disk.lease, options.now, c?.leaseId, what)
  if (c === undefined) return
  const fail = (why: string) => new CairnError('ConditionNotMet', `Cannot ${what}: ${why}`)
  if (c.ifMatch !== undefined && c.ifMatch !== '*' && c.ifMatch !== disk?.etag) {
    throw fail(`the disk's etag is not ${c.ifMatch}`)
  }
  if (c.ifMatch === '*' && disk === undefined) throw fail('the disk does not exist')
  if (
    c.ifNoneMatch !== undefined &&
    disk !== undefined &&
    (c.ifNoneMatch === '*' || c.ifNoneMatch === disk.etag)
  ) {
    throw fail(`the disk's etag matches ${c.ifNoneMatch}`)
  }
  if (disk !== undefined) {
    const modified = Math.floor(disk.lastModified / 1000) * 1000
    if (c.ifModifiedSince !== undefined && !(modified > c.ifModifiedSince.getTime())) {
      throw fail(`the disk was not modified since ${c.ifModifiedSince.toISOString()}`)
    }
    if (c.ifUnmodifiedSince !== undefined && modified > c.ifUnmodifiedSince.getTime()) {
      throw fail(`the disk was modified since ${c.ifUnmodifiedSince.toISOString()}`)
    }
    const seq = disk.sequenceNumber
    const seqFail = (why: string) =>
      new CairnError(
        'SequenceNumberConditionNotMet',
        `Cannot ${what}: the sequence number ${seq} is not ${why}`,
      )
    if (c.ifSequenceNumberLessThanOrEqual !== undefined && !(seq <= c.ifSequenceNumberLessThanOrEqual)) {
      throw seqFail(`at most ${c.ifSequenceNumberLessThanOrEqual}`)
    }
    if (c.ifSequenceNumberLessThan !== undefined && !(seq < c.ifSequenceNumberLessThan)) {
      throw seqFail(`less than ${c.ifSequenceNumberLessThan}`)
    }
    if (c.ifSequenceNumberEqual !== undefined && seq !== c.ifSequenceNumberEqual) {
      throw seqFail(`${c.ifSequenceNumberEqual}`)
    }
  }
}

/** Throws unless `[offset, offset + length)` is page-aligned and inside the disk. */
export function checkRange(disk: DiskState, offset: number, length: number, what: string): void {
  if (!isPageAligned(offset) || !isPageAligned(length)) {
    throw new CairnError(
      'RangeNotAligned',
      `Cannot ${what}: offset ${offset} and length ${length} must be multiples of ${PAGE_SIZE}`,
    )
  }
  if (offset + length > disk.size) {
    throw new CairnError(
      'RangeOutOfBounds',
      `Cannot ${what}: bytes ${offset}..${offset + length} reach past the disk's end at ${disk.size}`,
    )
  }
}

/** Throws when the disk is an incremental copy (read-only). */
export function checkWritable(disk: DiskState, what: string): void {
  if (disk.incrementalCopy) {
    throw new CairnError('DiskIsReadOnly', `Cannot ${what}: the disk is an incremental copy and is read-only`)
  }
}

/** Throws unless `size` is a whole number of pages up to the largest disk. */
export function checkDiskSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % PAGE_SIZE !== 0 || size > MAX_DISK_SIZE) {
    throw new CairnError(
      'InvalidDiskSize',
      `Cannot ${what}: the size ${size} is not a multiple of ${PAGE_SIZE} bytes up to 8 TiB`,
    )
  }
}

/** Throws unless `n` is a valid sequence number. */
export function checkSequenceNumber(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new CairnError('InvalidRequest', `Cannot ${what}: a sequence number is a whole number from 0`)
  }
}
