// A simple in-memory model of disks and snapshots for the model-based and crash tests: each page
// holds the stamp of the write that last set it (0 = hole), and a page's bytes are a pure function
// of (stamp, page), so snapshots cost 4 bytes a page.
import type { LogDiskStore } from './log-disk-store.js'
import type { ByteRange, DiskDiff, DiskRef } from './types.js'
import { PAGE_SIZE } from './types.js'

/** A disk or snapshot of the model. */
export interface ModelVersion {
  size: number
  stamps: Int32Array
}

/** The bytes a write with `stamp` puts in page `page`. */
export function fillPage(buf: Buffer, at: number, stamp: number, page: number): void {
  buf.fill((stamp * 7 + page * 13) & 255, at, at + PAGE_SIZE)
  buf.writeUInt32LE(stamp, at)
  buf.writeUInt32LE(page, at + 4)
}

/** The data of a write of `pages` pages at page `first` with `stamp`. */
export function writeData(stamp: number, first: number, pages: number): Buffer {
  const buf = Buffer.allocUnsafe(pages * PAGE_SIZE)
  for (let i = 0; i < pages; i++) fillPage(buf, i * PAGE_SIZE, stamp, first + i)
  return buf
}

/** A model disk with its snapshots. */
export class ModelDisk {
  size: number
  stamps: Int32Array
  readonly snapshots = new Map<string, ModelVersion>()

  constructor(size: number, stamps?: Int32Array) {
    this.size = size
    this.stamps = stamps ?? new Int32Array(size / PAGE_SIZE)
  }

  /** A copy whose pages and snapshot list change independently (snapshots themselves are shared). */
  clone(): ModelDisk {
    const c = new ModelDisk(this.size, this.stamps.slice())
    for (const [id, s] of this.snapshots) c.snapshots.set(id, s)
    return c
  }

  write(offset: number, length: number, stamp: number): void {
    this.stamps.fill(stamp, offset / PAGE_SIZE, (offset + length) / PAGE_SIZE)
  }

  clear(offset: number, length: number): void {
    this.stamps.fill(0, offset / PAGE_SIZE, (offset + length) / PAGE_SIZE)
  }

  resize(size: number): void {
    const next = new Int32Array(size / PAGE_SIZE)
    next.set(this.stamps.subarray(0, Math.min(this.stamps.length, next.length)))
    this.stamps = next
    this.size = size
  }

  snapshot(id: string): void {
    this.snapshots.set(id, { size: this.size, stamps: this.stamps.slice() })
  }

  version(snapshot?: string): ModelVersion {
    if (snapshot === undefined) return this
    const v = this.snapshots.get(snapshot)
    if (v === undefined) throw new Error(`model has no snapshot ${snapshot}`)
    return v
  }

  /** The expected bytes of a read. */
  static read(v: ModelVersion, offset: number, length: number): Buffer {
    const out = Buffer.alloc(length)
    if (length === 0) return out
    const first = Math.floor(offset / PAGE_SIZE)
    const last = Math.floor((offset + length - 1) / PAGE_SIZE)
    const page = Buffer.alloc(PAGE_SIZE)
    for (let p = first; p <= last; p++) {
      const stamp = v.stamps[p] ?? 0
      if (stamp === 0) continue
      fillPage(page, 0, stamp, p)
      const s = Math.max(offset, p * PAGE_SIZE)
      const e = Math.min(offset + length, (p + 1) * PAGE_SIZE)
      page.copy(out, s - offset, s - p * PAGE_SIZE, e - p * PAGE_SIZE)
    }
    return out
  }

  static usedBytes(v: ModelVersion): number {
    let n = 0
    for (const s of v.stamps) if (s !== 0) n += PAGE_SIZE
    return n
  }

  static pageRanges(v: ModelVersion): ByteRange[] {
    const out: ByteRange[] = []
    v.stamps.forEach((s, p) => {
      if (s !== 0) push(out, p * PAGE_SIZE, (p + 1) * PAGE_SIZE)
    })
    return out
  }

  /** Changed and cleared ranges from `a` to `b`, merged, within `start..end`. */
  static diff(a: ModelVersion, b: ModelVersion, start = 0, end = Math.max(a.size, b.size)): DiskDiff {
    const pageRanges: ByteRange[] = []
    const clearRanges: ByteRange[] = []
    for (let p = start / PAGE_SIZE; p < end / PAGE_SIZE; p++) {
      const x = a.stamps[p] ?? 0
      const y = b.stamps[p] ?? 0
      if (y !== 0 && y !== x) push(pageRanges, p * PAGE_SIZE, (p + 1) * PAGE_SIZE)
      else if (x !== 0 && y === 0) push(clearRanges, p * PAGE_SIZE, (p + 1) * PAGE_SIZE)
    }
    return { pageRanges, clearRanges }
  }
}

function push(list: ByteRange[], start: number, end: number): void {
  const last = list[list.length - 1]
  if (last !== undefined && last.end === start) last.end = end
  else list.push({ start, end })
}

/** Merges adjacent ranges (to compare paged diffs, whose pages may split a range). */
export function mergeRanges(list: ByteRange[]): ByteRange[] {
  const out: ByteRange[] = []
  for (const r of list) push(out, r.start, r.end)
  return out
}

/** A small seeded random generator (mulberry32), so a failing run can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Why `store` differs from the model disks (their snapshots, used bytes, then contents), or undefined
 * when it matches. `bytesOf` gives a version's expected bytes (default: read from the model).
 */
export async function storeMismatch(
  store: LogDiskStore,
  model: Map<string, ModelDisk>,
  ref: (disk: string) => DiskRef,
  bytesOf: (v: ModelVersion) => Buffer = (v) => ModelDisk.read(v, 0, v.size),
  /** Whether a page of a live disk that differs from the model may hold these bytes anyway. */
  livePageOk?: (disk: string, page: number, bytes: Buffer) => boolean,
): Promise<string | undefined> {
  for (const [name, m] of model) {
    const snaps = store
      .listSnapshots(ref(name))
      .map((s) => s.snapshot!)
      .sort()
    const want = [...m.snapshots.keys()].sort()
    if (JSON.stringify(snaps) !== JSON.stringify(want)) return `snapshots of ${name}: ${snaps} vs ${want}`
    for (const snap of [undefined, ...want]) {
      if (store.getDisk(ref(name), snap).usedBytes !== ModelDisk.usedBytes(m.version(snap)))
        return `used bytes of ${name}@${snap ?? 'live'}`
    }
  }
  // Contents last: most candidates already differ in the cheap checks above.
  for (const [name, m] of model) {
    for (const snap of [undefined, ...m.snapshots.keys()]) {
      const v = m.version(snap)
      const got = await store.read(ref(name), 0, v.size, snap === undefined ? {} : { snapshot: snap })
      const want = bytesOf(v)
      if (got.equals(want)) continue
      if (snap !== undefined || livePageOk === undefined) return `content of ${name}@${snap ?? 'live'}`
      for (let p = 0; p * PAGE_SIZE < v.size; p++) {
        const have = got.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)
        if (!have.equals(want.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)) && !livePageOk(name, p, have))
          return `content of ${name}@live (page ${p})`
      }
    }
  }
  return undefined
}
