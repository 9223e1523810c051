// The per-disk index of a recovery point: a tree of content-addressed pages over fixed disk regions,
// so a region that did not change keeps the very same page (same id) as the previous recovery point.
//
// A leaf covers LEAF_SPAN bytes of the disk and lists extents `disk offset → (chunk, offset in chunk,
// length)`, sorted, non-overlapping; bytes no extent covers read as zeros. A node of level L covers
// LEAF_SPAN × FANOUT^L bytes and lists its non-empty children. Pages are stored as chunks of kind
// `tree` (compressed, encrypted and hashed like data).
//
// Leaf page (version 1):            Node page (version 1):
//   0  1  'L'                         0  1  'N'
//   1  1  version                     1  1  version
//   2  2  reserved                    2  1  level (≥ 1)
//   4  4  entry count n, u32 LE       3  1  reserved
//   8  8  region start, u64 LE        4  4  child count n, u32 LE
//   16 44×n: start − region start     8  8  region start, u64 LE
//        u32, length u32, offset      16 36×n: child index u32, child page id (32)
//        in chunk u32, chunk id (32)
import { CairnError } from '../util/index.js'
import { forEachLimit } from './_for-each-limit.js'
import type { ByteRange } from './types.js'

/** Bytes of disk one leaf covers. */
export const LEAF_SPAN = 16 * 1024 * 1024
/** Children of a node. */
export const FANOUT = 256
const LEAF_ENTRY = 44
const NODE_ENTRY = 36
const VERSION = 1

/** One extent of a leaf: `length` bytes at disk offset `start` are bytes `chunkOffset…` of chunk `id`. */
export interface Extent {
  start: number
  length: number
  chunkOffset: number
  id: Buffer
}

/** Loads and stores tree pages (plaintext) by id. */
export interface PageStore {
  load(id: Buffer): Promise<Buffer>
  store(page: Buffer): Promise<Buffer>
}

/** Levels above the leaves needed for a disk of `size` bytes. */
export function treeDepth(size: number): number {
  let depth = 0
  let span = LEAF_SPAN
  while (span < size) {
    span *= FANOUT
    depth++
  }
  return depth
}

/** Bytes a page of `level` covers. */
export function levelSpan(level: number): number {
  return LEAF_SPAN * FANOUT ** level
}

export function encodeLeaf(regionStart: number, extents: Extent[]): Buffer {
  const b = Buffer.alloc(16 + extents.length * LEAF_ENTRY)
  b[0] = 0x4c
  b[1] = VERSION
  b.writeUInt32LE(extents.length, 4)
  b.writeBigUInt64LE(BigInt(regionStart), 8)
  extents.forEach((e, i) => {
    const o = 16 + i * LEAF_ENTRY
    b.writeUInt32LE(e.start - regionStart, o)
    b.writeUInt32LE(e.length, o + 4)
    b.writeUInt32LE(e.chunkOffset, o + 8)
    e.id.copy(b, o + 12)
  })
  return b
}

export function decodeLeaf(b: Buffer, regionStart: number): Extent[] {
  const n = b.length >= 16 ? b.readUInt32LE(4) : -1
  if (b[0] !== 0x4c || b[1] !== VERSION || b.length !== 16 + n * LEAF_ENTRY) {
    throw new CairnError(
      'VaultCorrupt',
      `Cannot read the index leaf at offset ${regionStart}: its layout is wrong`,
    )
  }
  if (Number(b.readBigUInt64LE(8)) !== regionStart) {
    throw new CairnError(
      'VaultCorrupt',
      `Cannot read the index leaf at offset ${regionStart}: it belongs elsewhere`,
    )
  }
  const out: Extent[] = []
  for (let i = 0; i < n; i++) {
    const o = 16 + i * LEAF_ENTRY
    out.push({
      start: regionStart + b.readUInt32LE(o),
      length: b.readUInt32LE(o + 4),
      chunkOffset: b.readUInt32LE(o + 8),
      id: b.subarray(o + 12, o + 44),
    })
  }
  return out
}

export function encodeNode(
  level: number,
  regionStart: number,
  children: { index: number; id: Buffer }[],
): Buffer {
  const b = Buffer.alloc(16 + children.length * NODE_ENTRY)
  b[0] = 0x4e
  b[1] = VERSION
  b[2] = level
  b.writeUInt32LE(children.length, 4)
  b.writeBigUInt64LE(BigInt(regionStart), 8)
  children.forEach((c, i) => {
    const o = 16 + i * NODE_ENTRY
    b.writeUInt32LE(c.index, o)
    c.id.copy(b, o + 4)
  })
  return b
}

export function decodeNode(b: Buffer, level: number, regionStart: number): Map<number, Buffer> {
  const n = b.length >= 16 ? b.readUInt32LE(4) : -1
  if (b[0] !== 0x4e || b[1] !== VERSION || b[2] !== level || b.length !== 16 + n * NODE_ENTRY) {
    throw new CairnError(
      'VaultCorrupt',
      `Cannot read the index node at offset ${regionStart}: its layout is wrong`,
    )
  }
  const out = new Map<number, Buffer>()
  for (let i = 0; i < n; i++) {
    const o = 16 + i * NODE_ENTRY
    out.set(b.readUInt32LE(o), b.subarray(o + 4, o + 36))
  }
  return out
}

/** Sorted, merged byte ranges with fast intersection queries. */
export class RangeSet {
  readonly ranges: ByteRange[]

  constructor(ranges: Iterable<ByteRange>) {
    const sorted = [...ranges].filter((r) => r.end > r.start).sort((a, b) => a.start - b.start)
    const merged: ByteRange[] = []
    for (const r of sorted) {
      const last = merged[merged.length - 1]
      if (last && r.start <= last.end) last.end = Math.max(last.end, r.end)
      else merged.push({ start: r.start, end: r.end })
    }
    this.ranges = merged
  }

  /** Index of the first range ending after `offset`. */
  #first(offset: number): number {
    let lo = 0
    let hi = this.ranges.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.ranges[mid]!.end <= offset) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  intersects(start: number, end: number): boolean {
    const r = this.ranges[this.#first(start)]
    return r !== undefined && r.start < end
  }

  /** The parts of the set inside `[start, end)`. */
  clip(start: number, end: number): ByteRange[] {
    const out: ByteRange[] = []
    for (let i = this.#first(start); i < this.ranges.length; i++) {
      const r = this.ranges[i]!
      if (r.start >= end) break
      out.push({ start: Math.max(r.start, start), end: Math.min(r.end, end) })
    }
    return out
  }

  get bytes(): number {
    return this.ranges.reduce((n, r) => n + r.end - r.start, 0)
  }
}

/** `extents` with every byte inside `cut` (sorted, merged) removed; split extents keep their chunk. */
export function subtractExtents(extents: Extent[], cut: ByteRange[]): Extent[] {
  const out: Extent[] = []
  let c = 0
  for (const e of extents) {
    let s = e.start
    const end = e.start + e.length
    while (c < cut.length && cut[c]!.end <= s) c++
    let k = c
    while (s < end) {
      const r = cut[k]
      if (!r || r.start >= end) {
        out.push({ start: s, length: end - s, chunkOffset: e.chunkOffset + (s - e.start), id: e.id })
        break
      }
      if (r.start > s)
        out.push({ start: s, length: r.start - s, chunkOffset: e.chunkOffset + (s - e.start), id: e.id })
      s = Math.max(s, r.end)
      k++
    }
  }
  return out
}

/** Merges two sorted, mutually disjoint extent lists. */
export function mergeExtents(a: Extent[], b: Extent[]): Extent[] {
  const out: Extent[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.start < b[j]!.start)) out.push(a[i++]!)
    else out.push(b[j++]!)
  }
  return out
}

/** What updateTree needs to know about the new tree. */
export interface TreeUpdate {
  size: number
  /** Base tree to reuse unaffected subtrees from (same depth only). */
  base?: { root: Buffer | null; depth: number }
  /** True when `[start, end)` holds anything that changes. */
  affected(start: number, end: number): boolean
  /** New extents of one leaf, given the base leaf's extents (empty without a base). */
  leaf(start: number, end: number, baseExtents: Extent[]): Promise<Extent[]>
  /** Leaves built at once. */
  concurrency: number
  /** Subtrees built by an earlier run (a resumed backup), by `level:index`: used as they are. */
  built?: ReadonlyMap<string, Buffer | null>
  /** Told of every subtree built (its page id; null when it is all zeros), children before parents. */
  onBuilt?(level: number, index: number, id: Buffer | null): void
}

/** Builds a new tree (new leaves only where affected) and returns its root id (null when all zeros). */
export async function updateTree(
  store: PageStore,
  u: TreeUpdate,
): Promise<{ root: Buffer | null; depth: number }> {
  const depth = treeDepth(u.size)
  const base = u.base && u.base.depth === depth ? u.base.root : null

  const build = async (level: number, index: number, baseId: Buffer | null): Promise<Buffer | null> => {
    const span = levelSpan(level)
    const start = index * span
    const end = Math.min(start + span, u.size)
    if (start >= u.size) return null
    if (!u.affected(start, end)) return baseId
    const done = u.built?.get(`${level}:${index}`)
    if (done !== undefined) return done
    if (level === 0) {
      const baseExtents = baseId ? decodeLeaf(await store.load(baseId), start) : []
      const extents = await u.leaf(start, end, baseExtents)
      const id = extents.length === 0 ? null : await store.store(encodeLeaf(start, extents))
      u.onBuilt?.(0, index, id)
      return id
    }
    const baseChildren = baseId
      ? decodeNode(await store.load(baseId), level, start)
      : new Map<number, Buffer>()
    const childSpan = levelSpan(level - 1)
    const count = Math.min(FANOUT, Math.ceil((end - start) / childSpan))
    const results: (Buffer | null)[] = new Array(count).fill(null)
    const affected: number[] = []
    for (let i = 0; i < count; i++) {
      const cs = start + i * childSpan
      if (u.affected(cs, Math.min(cs + childSpan, u.size))) affected.push(i)
      else results[i] = baseChildren.get(i) ?? null
    }
    await forEachLimit(affected, level === 1 ? u.concurrency : 1, async (i) => {
      results[i] = await build(level - 1, index * FANOUT + i, baseChildren.get(i) ?? null)
    })
    const children = results.flatMap((id, i) => (id ? [{ index: i, id }] : []))
    const id = children.length === 0 ? null : await store.store(encodeNode(level, start, children))
    u.onBuilt?.(level, index, id)
    return id
  }

  return { root: await build(depth, 0, base), depth }
}

/** The extents of the leaf at `leafStart` of a tree (empty when the tree has nothing there). */
export async function leafAt(
  store: PageStore,
  tree: { root: Buffer | null; depth: number },
  leafStart: number,
): Promise<Extent[]> {
  if (leafStart >= levelSpan(tree.depth)) return []
  let id = tree.root
  for (let level = tree.depth; level > 0 && id; level--) {
    const span = levelSpan(level)
    const start = Math.floor(leafStart / span) * span
    const children = decodeNode(await store.load(id), level, start)
    id = children.get(Math.floor((leafStart - start) / levelSpan(level - 1))) ?? null
  }
  return id ? decodeLeaf(await store.load(id), leafStart) : []
}

/** Calls `fn` for every non-empty leaf of a tree, in disk order. */
export async function walkLeaves(
  store: PageStore,
  tree: { root: Buffer | null; depth: number },
  fn: (leafStart: number, extents: Extent[], leafId: Buffer) => Promise<void>,
): Promise<void> {
  const visit = async (id: Buffer, level: number, start: number): Promise<void> => {
    if (level === 0) return fn(start, decodeLeaf(await store.load(id), start), id)
    const children = [...decodeNode(await store.load(id), level, start)].sort((a, b) => a[0] - b[0])
    if (level > 1) {
      for (const [i, child] of children) await visit(child, level - 1, start + i * levelSpan(level - 1))
      return
    }
    // Leaves load LEAVES_AHEAD ahead of the one being handled, so `fn` does not wait for each page.
    const loads: Promise<Buffer>[] = []
    const load = (k: number) => {
      const c = children[k]
      if (c && !loads[k]) {
        loads[k] = store.load(c[1])
        loads[k].catch(() => {})
      }
    }
    for (let k = 0; k < children.length; k++) {
      for (let j = k; j <= k + LEAVES_AHEAD; j++) load(j)
      const [i, child] = children[k]!
      const leafStart = start + i * LEAF_SPAN
      await fn(leafStart, decodeLeaf(await loads[k]!, leafStart), child)
    }
  }
  if (tree.root) await visit(tree.root, tree.depth, 0)
}

/** Leaf pages walkLeaves reads ahead. */
const LEAVES_AHEAD = 8

/**
 * Adds every page id and chunk id a tree references to `pages` and `chunks` (hex keys), skipping
 * subtrees already in `pages`: trees shared between recovery points are read once.
 */
export async function markTree(
  store: PageStore,
  tree: { root: Buffer | null; depth: number },
  pages: Set<string>,
  chunks: Set<string>,
): Promise<void> {
  const visit = async (id: Buffer, level: number, start: number): Promise<void> => {
    const key = id.toString('hex')
    if (pages.has(key)) return
    const page = await store.load(id)
    if (level === 0) {
      for (const e of decodeLeaf(page, start)) chunks.add(e.id.toString('hex'))
    } else {
      for (const [i, child] of decodeNode(page, level, start))
        await visit(child, level - 1, start + i * levelSpan(level - 1))
    }
    pages.add(key)
  }
  if (tree.root) await visit(tree.root, tree.depth, 0)
}
