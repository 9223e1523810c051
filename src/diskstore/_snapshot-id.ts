// Snapshot ids: Azure's timestamp form, unique and increasing within a store (ms plus a sub-ms counter).

/** A point in snapshot time: milliseconds since the epoch and a counter within the millisecond. */
export interface SnapshotTick {
  ms: number
  sub: number
}

/** Pads a snapshot id from ms and a sub-millisecond counter: 2026-11-22T19:37:17.1234567Z. */
export function snapshotIdOf(ms: number, sub: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(sub).padStart(4, '0')}Z`
}

/** The tick of a snapshot id, or undefined when it is not one this store makes. */
export function parseSnapshotId(id: string): SnapshotTick | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})(\d{4})Z$/.exec(id)
  if (!m) return undefined
  const ms = Date.parse(`${m[1]}Z`)
  return Number.isNaN(ms) ? undefined : { ms, sub: Number(m[2]) }
}

/** Orders two ticks: negative, zero or positive. */
export function compareTick(a: SnapshotTick, b: SnapshotTick): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.sub - b.sub
}

/** The id of a snapshot taken at `now`, later than the `last` one the store handed out. */
export function newSnapshotId(last: SnapshotTick, now: number): string {
  let next = { ms: now, sub: 0 }
  if (compareTick(next, last) <= 0) {
    next = last.sub >= 9999 ? { ms: last.ms + 1, sub: 0 } : { ms: last.ms, sub: last.sub + 1 }
  }
  return snapshotIdOf(next.ms, next.sub)
}
