// Page ranges and diffs of a disk's versions over their extent trees, with the Azure window, marker
// and maxResults rules.

import { CairnError } from '../util/index.js'
import { diffTrees, forEachExtent } from './_extent-tree.js'
import type { Version } from './_store-state.js'
import { isPageAligned } from './_write-conditions.js'
import { type ByteRange, type DiskDiff, PAGE_SIZE } from './types.js'

/**
 * What changed from version `from` to `to` (`what` completes "Cannot …"). Snapshots of one disk must
 * come in order; across disks of a lineage (`crossDisk`) the ids do not tell which content is older.
 */
export function diffVersions(
  from: Version,
  to: Version,
  options: {
    from: string
    to?: string
    offset?: number
    length?: number
    marker?: string
    maxResults?: number
  },
  what: string,
  crossDisk = false,
): DiskDiff {
  if (!crossDisk && options.to !== undefined && options.from > options.to) {
    throw new CairnError(
      'SnapshotOrderInvalid',
      `Cannot ${what}: snapshot ${options.from} is newer than ${options.to}`,
    )
  }
  const win = windowOf(to, options.offset, options.length, what)
  let start = win.start
  const end = options.length === undefined ? Math.max(win.end, from.size) : win.end
  if (options.marker !== undefined) {
    const m = /^\d+$/.test(options.marker) ? Number(options.marker) : Number.NaN
    if (!isPageAligned(m) || m < start) {
      throw new CairnError('InvalidMarker', `Cannot ${what}: marker "${options.marker}" is not valid here`)
    }
    start = m
  }
  const max = options.maxResults
  if (max !== undefined && !(Number.isSafeInteger(max) && max > 0)) {
    throw new CairnError('InvalidRequest', `Cannot ${what}: maxResults must be a positive whole number`)
  }
  const pageRanges: ByteRange[] = []
  const clearRanges: ByteRange[] = []
  let count = 0
  let nextMarker: string | undefined
  diffTrees(from.root, to.root, start, end, (kind, s, e) => {
    const list = kind === 'changed' ? pageRanges : clearRanges
    const last = list[list.length - 1]
    if (last !== undefined && last.end === s) {
      last.end = e
      return false
    }
    if (max !== undefined && count >= max) {
      nextMarker = String(s)
      return true
    }
    list.push({ start: s, end: e })
    count++
    return false
  })
  return nextMarker === undefined ? { pageRanges, clearRanges } : { pageRanges, clearRanges, nextMarker }
}

/** The written ranges of a version in a page-aligned window (the whole disk by default). */
export function pageRangesOf(
  v: Version,
  offset: number | undefined,
  length: number | undefined,
  what: string,
): ByteRange[] {
  const { start, end } = windowOf(v, offset, length, what)
  const out: ByteRange[] = []
  forEachExtent(v.root, start, end, (s, e) => {
    const last = out[out.length - 1]
    if (last !== undefined && last.end === s) last.end = e
    else out.push({ start: s, end: e })
  })
  return out
}

/** The byte window `[start, end)` of a request; throws unless it is page-aligned. */
function windowOf(v: Version, offset: number | undefined, length: number | undefined, what: string) {
  const start = offset ?? 0
  if (!isPageAligned(start) || (length !== undefined && !isPageAligned(length))) {
    throw new CairnError(
      'RangeNotAligned',
      `Cannot ${what}: offset and length must be multiples of ${PAGE_SIZE}`,
    )
  }
  const end = length === undefined ? Math.max(v.size, start) : start + length
  return { start, end }
}
