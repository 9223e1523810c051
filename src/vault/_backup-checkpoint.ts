// What a backup has committed so far, so that a backup cut short (the service killed) can go on from
// there instead of starting over. A backup's work is its disks' index trees, built leaf by leaf (16 MiB
// of disk each); a subtree is committed once its page and every chunk it references are in written
// packs. Packs are written in the order their chunks were added, so a subtree whose page was added as
// the writer's n-th chunk is committed as soon as the writer has written n chunks. The checkpoint lists
// the committed subtrees at their highest level (a node replaces its children), so it stays small: at
// most 255 entries a level.
import { FANOUT } from './_disk-tree.js'

/** What building a subtree of a disk's index read and stored (sums of its leaves). */
export interface BuildStats {
  bytesScanned: number
  bytesNew: number
  chunksNew: number
  chunksReused: number
}

/**
 * One committed subtree: `[level, index, page id (hex) or null when all zeros, bytesScanned, bytesNew,
 * chunksNew, chunksReused]`. A leaf is level 0; index counts subtrees of that level from the disk's start.
 */
export type CommittedSubtree = [number, number, string | null, number, number, number, number]

/**
 * The state a backup resumes from. The caller keeps it (a job stores it in its record) and gives it back
 * as `resume`; the backup's lock (`locks/<point>`) keeps its packs from GC meanwhile.
 */
export interface BackupCheckpoint {
  /** The recovery point being made; its lock has the same id. */
  point: string
  /** When the first run started (the point's createdAt). */
  startedAt: string
  /** The point this one builds on (its parent), or null. */
  base: string | null
  /** The point whose chunks are reused (the base, or a full backup's reference), or null. */
  against: string | null
  /** The first `packs` packs named in the lock are written. */
  packs: number
  /** Per disk name: its committed subtrees. */
  disks: Record<string, CommittedSubtree[]>
}

const zero = (): BuildStats => ({ bytesScanned: 0, bytesNew: 0, chunksNew: 0, chunksReused: 0 })
const key = (level: number, index: number) => `${level}:${index}`

function add(a: BuildStats, b: BuildStats): void {
  a.bytesScanned += b.bytesScanned
  a.bytesNew += b.bytesNew
  a.chunksNew += b.chunksNew
  a.chunksReused += b.chunksReused
}

interface Pending {
  disk: string
  level: number
  index: number
  id: Buffer | null
  stats: BuildStats
  /** Committed once the writer has written this many chunks. */
  seq: number
}

/** Follows the subtrees a backup builds and which of them are committed; makes its checkpoints. */
export class CheckpointTracker {
  readonly #head: Omit<BackupCheckpoint, 'packs' | 'disks'>
  readonly #committed = new Map<string, Map<string, CommittedSubtree>>()
  /** Built subtrees whose parent is not built yet, with what they cost. */
  readonly #stats = new Map<string, Map<string, BuildStats>>()
  readonly #leafStats = new Map<string, Map<number, BuildStats>>()
  readonly #built = new Map<string, Map<string, Buffer | null>>()
  #pending: Pending[] = []

  /** `from`: the checkpoint of an earlier run whose committed subtrees are reused (checked by the caller). */
  constructor(head: Omit<BackupCheckpoint, 'packs' | 'disks'>, from?: BackupCheckpoint) {
    this.#head = head
    for (const [disk, subtrees] of Object.entries(from?.disks ?? {})) {
      const committed = this.#map(this.#committed, disk)
      const stats = this.#map(this.#stats, disk)
      const built = this.#map(this.#built, disk)
      for (const s of subtrees) {
        const [level, index, id, bytesScanned, bytesNew, chunksNew, chunksReused] = s
        committed.set(key(level, index), s)
        stats.set(key(level, index), { bytesScanned, bytesNew, chunksNew, chunksReused })
        built.set(key(level, index), id === null ? null : Buffer.from(id, 'hex'))
      }
    }
  }

  /** The subtrees of a disk an earlier run committed (for updateTree's `built`). */
  built(disk: string): ReadonlyMap<string, Buffer | null> {
    return this.#map(this.#built, disk)
  }

  /** Bytes the earlier run's committed subtrees read: where the resumed backup stands. */
  get resumedBytes(): number {
    let n = 0
    for (const m of this.#committed.values()) for (const s of m.values()) n += s[3]
    return n
  }

  /** A new leaf's stats, which the leaf's reads and stores add to. */
  leafStats(disk: string, leafIndex: number): BuildStats {
    const s = zero()
    this.#map(this.#leafStats, disk).set(leafIndex, s)
    return s
  }

  /** A subtree was built; its page was stored when the writer had taken `seq` chunks. */
  onBuilt(disk: string, level: number, index: number, id: Buffer | null, seq: number): void {
    const stats = this.#map(this.#stats, disk)
    let s: BuildStats
    if (level === 0) {
      const leaves = this.#map(this.#leafStats, disk)
      s = leaves.get(index) ?? zero()
      leaves.delete(index)
    } else {
      s = zero()
      for (let c = index * FANOUT; c < (index + 1) * FANOUT; c++) {
        const k = key(level - 1, c)
        const child = stats.get(k)
        if (child) {
          add(s, child)
          stats.delete(k)
        }
      }
    }
    stats.set(key(level, index), s)
    this.#pending.push({ disk, level, index, id, stats: { ...s }, seq })
  }

  /** What a disk's whole tree cost: its root's stats (zeros when no subtree was built). */
  diskStats(disk: string, depth: number): BuildStats {
    return { ...(this.#map(this.#stats, disk).get(key(depth, 0)) ?? zero()) }
  }

  /** The writer has written `written` chunks and `packs` packs: the checkpoint as it stands now. */
  commit(written: number, packs: number): BackupCheckpoint {
    const ready = this.#pending.filter((p) => p.seq <= written)
    this.#pending = this.#pending.filter((p) => p.seq > written)
    for (const p of ready) {
      const committed = this.#map(this.#committed, p.disk)
      if (p.level > 0) {
        for (let c = p.index * FANOUT; c < (p.index + 1) * FANOUT; c++) committed.delete(key(p.level - 1, c))
      }
      const { bytesScanned, bytesNew, chunksNew, chunksReused } = p.stats
      committed.set(key(p.level, p.index), [
        p.level,
        p.index,
        p.id ? p.id.toString('hex') : null,
        bytesScanned,
        bytesNew,
        chunksNew,
        chunksReused,
      ])
    }
    const disks: Record<string, CommittedSubtree[]> = {}
    for (const [disk, m] of this.#committed) disks[disk] = [...m.values()]
    return { ...this.#head, packs, disks }
  }

  #map<K, V>(maps: Map<string, Map<K, V>>, disk: string): Map<K, V> {
    let m = maps.get(disk)
    if (!m) {
      m = new Map()
      maps.set(disk, m)
    }
    return m
  }
}

/** The page ids a checkpoint relies on (each must still be in the vault for it to be used). */
export function checkpointPages(c: BackupCheckpoint): Buffer[] {
  return Object.values(c.disks).flatMap((subtrees) =>
    subtrees.flatMap(([, , id]) => (id ? [Buffer.from(id, 'hex')] : [])),
  )
}
