// Overwrites in place: a write without durability (an NBD write before its FLUSH) over pages whose
// bytes no snapshot, copy or export can see, and whose log record no replay will read again, goes
// into those bytes of the log instead of a new WRITE record (docs/diskstore.md, "Overwrites in
// place"). This module decides whether a write may, and where its bytes go.
//
// Who else can see a write: a disk's tree is shared only by a snapshot, a copy or a promote, and
// each of those gives the disk a new owner token (`_extent-tree.ts`). So a write made by the disk
// after it got its current token is seen by that disk's live version alone. `ExclusiveWrites`
// remembers, per disk and token, the first write id made after the token was first seen: writes
// from that id on are the disk's own. (Lazily: the first write after a new token only records it,
// which costs one appended write per region after each snapshot and after each open.) A running
// export pins a root without a new token: while one runs, nothing is overwritten in place.
//
// Why the record must lie before the older kept checkpoint: a record's CRC covers its data, so an
// overwritten record reads as torn. Replay starts at the newest checkpoint, or at the one before
// if the newest is damaged; records before that one are never read again.
//
// Why whole pages on 512-byte boundaries of the file: a process killed during a write loses the
// rest of it at a page-cache page boundary of the file; with the data on a 512-byte boundary such a
// tear falls between two disk pages, each of which holds the old or the new bytes (what NBD allows
// for a write not flushed yet).

import type { Root } from './_extent-tree.js'
import { forEachExtent } from './_extent-tree.js'
import type { LogPosition, SegmentLog } from './_segment-log.js'
import type { DiskState } from './_store-state.js'
import type { WriteTable } from './_write-table.js'
import { PAGE_SIZE } from './types.js'

/** One run of bytes to overwrite: bytes `from..from+length` of the new data go to `offset` of `segment`. */
export interface OverwriteTarget {
  segment: number
  offset: number
  from: number
  length: number
}

/** Where a write goes in place, or why it cannot (`checkpoint`: only because no checkpoint is late enough yet). */
export type OverwritePlan =
  | { targets: OverwriteTarget[] }
  | { refused: 'shared' | 'layout' | 'checkpoint' | 'busy' }

/** Per disk: from which write id on its writes are its own (see the file's comment). */
export class ExclusiveWrites {
  readonly #marks = new WeakMap<DiskState, { owner: number; from: number }>()

  /** The first write id only `disk`'s live version can see; `next` is the store's next write id. */
  from(disk: DiskState, next: number): number {
    const m = this.#marks.get(disk)
    if (m !== undefined && m.owner === disk.owner) return m.from
    this.#marks.set(disk, { owner: disk.owner, from: next })
    return next
  }
}

/**
 * The plan of an overwrite of `offset..offset+length` of a live version with root `root`: every
 * page must be mapped to a write at least `exclusiveFrom`, stored in whole pages on 512-byte
 * boundaries of its segment, ending before `safeBefore`, with no append still writing there.
 */
export function planOverwrite(
  root: Root,
  writes: WriteTable,
  log: SegmentLog,
  range: { offset: number; length: number },
  limits: { exclusiveFrom: number; safeBefore: LogPosition | undefined },
): OverwritePlan {
  const { offset, length } = range
  const end = offset + length
  const targets: OverwriteTarget[] = []
  let cursor = offset
  let refused: 'shared' | 'layout' | 'checkpoint' | 'busy' | undefined
  forEachExtent(root, offset, end, (s, e, writeId, writeOffset) => {
    if (refused !== undefined) return
    if (s !== cursor || writeId < limits.exclusiveFrom) {
      refused = 'shared'
      return
    }
    cursor = e
    const pieces = writes.pieces(writeId)
    if (pieces === undefined) {
      refused = 'layout'
      return
    }
    // Bytes writeOffset..writeOffset+(e-s) of the write, piece by piece.
    let at = writeOffset
    const stop = writeOffset + (e - s)
    for (const p of pieces) {
      if (refused !== undefined || at >= stop) break
      const pe = p.at + p.length
      if (pe <= at || p.at > at) continue
      const n = Math.min(pe, stop) - at
      const fileOffset = p.offset + (at - p.at)
      if (fileOffset % PAGE_SIZE !== 0 || n % PAGE_SIZE !== 0) {
        refused = 'layout'
        break
      }
      const from = s - offset + (at - writeOffset)
      const last = targets[targets.length - 1]
      if (
        last !== undefined &&
        last.segment === p.segment &&
        last.offset + last.length === fileOffset &&
        last.from + last.length === from
      )
        last.length += n
      else targets.push({ segment: p.segment, offset: fileOffset, from, length: n })
      at += n
    }
    if (refused === undefined && at < stop) refused = 'layout'
  })
  if (refused === undefined && cursor !== end) refused = 'shared'
  if (refused !== undefined) return { refused }
  const safe = limits.safeBefore
  for (const t of targets) {
    if (
      safe === undefined ||
      t.segment > safe.segment ||
      (t.segment === safe.segment && t.offset + t.length > safe.offset)
    )
      return { refused: 'checkpoint' }
  }
  for (const t of targets)
    if (!log.canOverwrite(t.segment, t.offset, t.offset + t.length)) return { refused: 'busy' }
  return { targets }
}
