// The extent map of one disk: a persistent radix tree over 1 MiB regions.
//
// Three levels of inner nodes with 256 children each cover 2^24 regions of 1 MiB (16 TiB, more than
// the 8 TiB limit). A leaf is an immutable Float64Array of sorted, non-overlapping extents for one
// region, four numbers each: [start, end, writeId, writeOffset], where bytes `start..end` of the disk
// hold bytes `writeOffset..writeOffset+(end-start)` of write `writeId`. An edit path-copies the leaves
// and inner nodes it touches, so a snapshot is just a kept root pointer. Inner nodes stamped with the
// editing disk's `owner` token were made since the disk's root was last shared and may be changed in
// place; sharing a root (snapshot, copy) gives the disk a new token, freezing every node it had.

/** Bytes one leaf covers. */
export const REGION_SIZE = 2 ** 20
const FAN = 256
/** Bytes covered by a node at depth 0..2 (inner) and 3 (leaf). */
const SPAN = [2 ** 44, 2 ** 36, 2 ** 28, REGION_SIZE] as const
const LEAF_DEPTH = 3

/** An immutable sorted extent list of one region: [start, end, writeId, writeOffset] × n. */
export type Leaf = Float64Array

/** An inner node of the radix tree. */
export interface Inner {
  readonly kids: (Node | undefined)[]
  count: number
  readonly owner: number
}

/** A node of the tree. */
export type Node = Inner | Leaf

/** The root of a disk's extent map; undefined for an empty disk. */
export type Root = Inner | undefined

/** One change to an extent map: map `start..end` to a write, or clear it (writeId < 0). */
export interface Edit {
  start: number
  end: number
  /** Negative for a clear. */
  writeId: number
  /** Offset in the write of byte `start`. */
  writeOffset: number
  /** Token of the disk making the edit: nodes it owns are changed in place. */
  owner: number
}

/** Result of an edit: the new root and the change in mapped bytes. */
export interface EditResult {
  root: Root
  delta: number
}

const isLeaf = (n: Node): n is Leaf => n instanceof Float64Array

/** Applies an edit and returns the new root; the old root stays valid unless it was owned by `edit.owner`. */
export function editTree(root: Root, edit: Edit): EditResult {
  const acc = { delta: 0 }
  if (edit.end <= edit.start) return { root, delta: 0 }
  const out = editInner(root, 0, 0, edit, acc)
  return { root: out, delta: acc.delta }
}

function editInner(
  node: Inner | undefined,
  depth: number,
  base: number,
  edit: Edit,
  acc: { delta: number },
): Inner | undefined {
  const span = SPAN[depth]!
  const childSpan = SPAN[depth + 1]!
  const lo = Math.max(edit.start, base)
  const hi = Math.min(edit.end, base + span)
  const first = Math.floor((lo - base) / childSpan)
  const last = Math.floor((hi - 1 - base) / childSpan)
  let out = node
  for (let i = first; i <= last; i++) {
    const child = node?.kids[i]
    if (child === undefined && edit.writeId < 0) continue
    const childBase = base + i * childSpan
    const next =
      depth + 1 === LEAF_DEPTH
        ? editLeaf(child as Leaf | undefined, childBase, edit, acc)
        : editInner(child as Inner | undefined, depth + 1, childBase, edit, acc)
    if (next === child) continue
    if (out === undefined) out = { kids: new Array<Node | undefined>(FAN), count: 0, owner: edit.owner }
    else if (out.owner !== edit.owner) out = { kids: out.kids.slice(), count: out.count, owner: edit.owner }
    if (child === undefined) out.count++
    if (next === undefined) out.count--
    out.kids[i] = next
  }
  return out !== undefined && out.count === 0 ? undefined : out
}

/** Index of the first extent of `leaf` whose end is after `pos`. */
function firstEndingAfter(leaf: Leaf, pos: number): number {
  let lo = 0
  let hi = leaf.length / 4
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (leaf[mid * 4 + 1]! <= pos) lo = mid + 1
    else hi = mid
  }
  return lo
}

function editLeaf(
  leaf: Leaf | undefined,
  base: number,
  edit: Edit,
  acc: { delta: number },
): Leaf | undefined {
  const lo = Math.max(edit.start, base)
  const hi = Math.min(edit.end, base + REGION_SIZE)
  const n = leaf === undefined ? 0 : leaf.length / 4
  const a = leaf === undefined ? 0 : firstEndingAfter(leaf, lo)
  let b = a
  while (b < n && leaf![b * 4]! < hi) b++
  // Extents a..b-1 overlap lo..hi.
  const write = edit.writeId >= 0
  if (a === b && !write) return leaf
  let removed = 0
  let left = false
  let right = false
  for (let i = a; i < b; i++) {
    const s = leaf![i * 4]!
    const e = leaf![i * 4 + 1]!
    removed += Math.min(e, hi) - Math.max(s, lo)
    if (i === a && s < lo) left = true
    if (i === b - 1 && e > hi) right = true
  }
  const count = a + (left ? 1 : 0) + (write ? 1 : 0) + (right ? 1 : 0) + (n - b)
  acc.delta += (write ? hi - lo : 0) - removed
  if (count === 0) return undefined
  const out = new Float64Array(count * 4)
  if (a > 0) out.set(leaf!.subarray(0, a * 4), 0)
  let k = a * 4
  if (left) {
    out[k] = leaf![a * 4]!
    out[k + 1] = lo
    out[k + 2] = leaf![a * 4 + 2]!
    out[k + 3] = leaf![a * 4 + 3]!
    k += 4
  }
  if (write) {
    out[k] = lo
    out[k + 1] = hi
    out[k + 2] = edit.writeId
    out[k + 3] = edit.writeOffset + (lo - edit.start)
    k += 4
  }
  if (right) {
    const j = (b - 1) * 4
    const s = leaf![j]!
    out[k] = hi
    out[k + 1] = leaf![j + 1]!
    out[k + 2] = leaf![j + 2]!
    out[k + 3] = leaf![j + 3]! + (hi - s)
    k += 4
  }
  if (b < n) out.set(leaf!.subarray(b * 4), k)
  return out
}

/** Calls `visit` for each mapped piece of `start..end`, in order, clipped to the range. */
export function forEachExtent(
  root: Root,
  start: number,
  end: number,
  visit: (start: number, end: number, writeId: number, writeOffset: number) => void,
): void {
  if (root === undefined || end <= start) return
  walkExtents(root, 0, 0, start, end, visit)
}

function walkExtents(
  node: Node,
  depth: number,
  base: number,
  start: number,
  end: number,
  visit: (start: number, end: number, writeId: number, writeOffset: number) => void,
): void {
  if (isLeaf(node)) {
    const n = node.length / 4
    for (let i = firstEndingAfter(node, start); i < n; i++) {
      const s = node[i * 4]!
      if (s >= end) break
      const e = node[i * 4 + 1]!
      const cs = Math.max(s, start)
      visit(cs, Math.min(e, end), node[i * 4 + 2]!, node[i * 4 + 3]! + (cs - s))
    }
    return
  }
  const childSpan = SPAN[depth + 1]!
  const first = Math.max(0, Math.floor((start - base) / childSpan))
  const last = Math.min(FAN - 1, Math.floor((end - 1 - base) / childSpan))
  for (let i = first; i <= last; i++) {
    const child = node.kids[i]
    if (child !== undefined) walkExtents(child, depth + 1, base + i * childSpan, start, end, visit)
  }
}

/** Which side of a diff a range belongs to. */
export type DiffKind = 'changed' | 'cleared'

/**
 * Walks two roots of one disk's history together, skipping shared subtrees, and reports ranges
 * mapped in `to` to different data than in `from` ('changed') and ranges mapped in `from` that are
 * holes in `to` ('cleared'), in order of offset, within `start..end`. `emit` returns true to stop.
 */
export function diffTrees(
  from: Root,
  to: Root,
  start: number,
  end: number,
  emit: (kind: DiffKind, start: number, end: number) => boolean,
): void {
  if (from === to || end <= start) return
  diffNodes(from, to, 0, 0, start, end, emit)
}

function diffNodes(
  a: Node | undefined,
  b: Node | undefined,
  depth: number,
  base: number,
  start: number,
  end: number,
  emit: (kind: DiffKind, start: number, end: number) => boolean,
): boolean {
  if (a === b) return false
  if (depth === LEAF_DEPTH) return diffLeaves(a as Leaf | undefined, b as Leaf | undefined, start, end, emit)
  const childSpan = SPAN[depth + 1]!
  const first = Math.max(0, Math.floor((start - base) / childSpan))
  const last = Math.min(FAN - 1, Math.floor((end - 1 - base) / childSpan))
  const ak = (a as Inner | undefined)?.kids
  const bk = (b as Inner | undefined)?.kids
  for (let i = first; i <= last; i++) {
    const ca = ak?.[i]
    const cb = bk?.[i]
    if (ca === cb) continue
    if (diffNodes(ca, cb, depth + 1, base + i * childSpan, start, end, emit)) return true
  }
  return false
}

function diffLeaves(
  a: Leaf | undefined,
  b: Leaf | undefined,
  start: number,
  end: number,
  emit: (kind: DiffKind, start: number, end: number) => boolean,
): boolean {
  const an = a === undefined ? 0 : a.length / 4
  const bn = b === undefined ? 0 : b.length / 4
  let i = a === undefined ? 0 : firstEndingAfter(a, start)
  let j = b === undefined ? 0 : firstEndingAfter(b, start)
  let pos = start
  while (pos < end) {
    // Skip extents that end at or before pos.
    while (i < an && a![i * 4 + 1]! <= pos) i++
    while (j < bn && b![j * 4 + 1]! <= pos) j++
    const as = i < an ? a![i * 4]! : Number.POSITIVE_INFINITY
    const bs = j < bn ? b![j * 4]! : Number.POSITIVE_INFINITY
    const inA = as <= pos
    const inB = bs <= pos
    let next: number
    if (!inA && !inB) {
      next = Math.min(as, bs)
      if (next >= end) break
      pos = next
      continue
    }
    next = Math.min(
      end,
      inA ? a![i * 4 + 1]! : as,
      inB ? b![j * 4 + 1]! : bs,
      inA ? Number.POSITIVE_INFINITY : as,
      inB ? Number.POSITIVE_INFINITY : bs,
    )
    if (inB) {
      // Same data when the same write maps here at the same offset: writeOffset - start is equal.
      const same =
        inA && a![i * 4 + 2] === b![j * 4 + 2] && a![i * 4 + 3]! - a![i * 4]! === b![j * 4 + 3]! - b![j * 4]!
      if (!same && emit('changed', pos, next)) return true
    } else if (emit('cleared', pos, next)) return true
    pos = next
  }
  return false
}

/** Visits every distinct node reachable from `root` once (across calls sharing `seen`). */
export function forEachLeaf(root: Root, seen: Set<Node>, visit: (leaf: Leaf) => void): void {
  if (root === undefined) return
  const stack: Node[] = [root]
  while (stack.length > 0) {
    const n = stack.pop()!
    if (seen.has(n)) continue
    seen.add(n)
    if (isLeaf(n)) visit(n)
    else for (const k of n.kids) if (k !== undefined) stack.push(k)
  }
}

/** Bytes mapped under `root` (for checks; disks track this incrementally). */
export function mappedBytes(root: Root): number {
  let total = 0
  forEachLeaf(root, new Set(), (leaf) => {
    for (let i = 0; i < leaf.length; i += 4) total += leaf[i + 1]! - leaf[i]!
  })
  return total
}

export { isLeaf }
