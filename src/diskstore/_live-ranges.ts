// Space accounting of the disk store: which bytes of which writes some disk, snapshot or running
// export can still see (live data, for usage and compaction), and what only one version holds.

import type { Leaf, Node, Root } from './_extent-tree.js'
import { forEachLeaf } from './_extent-tree.js'
import type { DiskState, StoreState, Version } from './_store-state.js'
import type { ByteRange } from './types.js'

/** A root of extent trees, with the disk and snapshot it belongs to (none for a pinned root). */
export interface RootRef {
  disk?: DiskState
  snapshot?: string
  root: Root
}

/** Every root whose data is live: pinned roots (exports), disks and snapshots. */
export function allRoots(state: StoreState, pins: readonly Root[]): RootRef[] {
  const out: RootRef[] = []
  for (const root of pins) out.push({ root })
  for (const d of state.disks.values()) {
    out.push({ disk: d, root: d.root })
    for (const s of d.snapshots) out.push({ disk: d, snapshot: s.id, root: s.root })
  }
  return out
}

/** For every write some root can see, the merged byte ranges (offsets in the write) still visible. */
export function liveRanges(roots: RootRef[]): Map<number, ByteRange[]> {
  const raw = new Map<number, ByteRange[]>()
  const seen = new Set<Node>()
  for (const r of roots) {
    forEachLeaf(r.root, seen, (leaf) => {
      for (let i = 0; i < leaf.length; i += 4) {
        const w = leaf[i + 2]!
        const at = leaf[i + 3]!
        let list = raw.get(w)
        if (list === undefined) {
          list = []
          raw.set(w, list)
        }
        list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
      }
    })
  }
  for (const [w, list] of raw) raw.set(w, mergeRanges(list))
  return raw
}

/** Bytes only the version `v` of disk `d` (or its snapshot) holds: what deleting it would free. */
export function exclusiveBytes(
  roots: RootRef[],
  d: DiskState,
  v: Version,
  snapshot: string | undefined,
): number {
  // Bytes of each write this root sees, then remove what any other root sees too.
  const mine = new Map<number, ByteRange[]>()
  forEachLeaf(v.root, new Set(), (leaf) => {
    for (let i = 0; i < leaf.length; i += 4) {
      const w = leaf[i + 2]!
      const at = leaf[i + 3]!
      const list = mine.get(w) ?? []
      list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
      mine.set(w, list)
    }
  })
  const others = new Map<number, ByteRange[]>()
  const seen = new Set<Node>()
  // Leaves of this root reached from another root are shared wholesale.
  for (const r of roots) {
    if (r.disk === d && r.snapshot === snapshot) continue
    if (r.root === v.root) return 0
    forEachLeaf(r.root, seen, (leaf: Leaf) => {
      for (let i = 0; i < leaf.length; i += 4) {
        const w = leaf[i + 2]!
        if (!mine.has(w)) continue
        const at = leaf[i + 3]!
        const list = others.get(w) ?? []
        list.push({ start: at, end: at + leaf[i + 1]! - leaf[i]! })
        others.set(w, list)
      }
    })
  }
  let exclusive = 0
  for (const [w, ranges] of mine) {
    const shared = mergeRanges(others.get(w) ?? [])
    for (const r of mergeRanges(ranges)) exclusive += r.end - r.start - overlap(r, shared)
  }
  return exclusive
}

/** Sorts and merges overlapping or adjacent ranges. */
export function mergeRanges(list: ByteRange[]): ByteRange[] {
  if (list.length <= 1) return list
  list.sort((a, b) => a.start - b.start)
  const out: ByteRange[] = [{ ...list[0]! }]
  for (let i = 1; i < list.length; i++) {
    const r = list[i]!
    const last = out[out.length - 1]!
    if (r.start <= last.end) last.end = Math.max(last.end, r.end)
    else out.push({ ...r })
  }
  return out
}

/** Bytes of `r` covered by the sorted, merged `list`. */
export function overlap(r: ByteRange, list: ByteRange[]): number {
  let n = 0
  for (const x of list) {
    if (x.start >= r.end) break
    n += Math.max(0, Math.min(r.end, x.end) - Math.max(r.start, x.start))
  }
  return n
}
