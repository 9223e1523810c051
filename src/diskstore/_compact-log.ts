// Compaction of the disk store's log: the live data of mostly dead segments is copied to the head of
// the log (RELOCATE records), a checkpoint is written, then those segments are removed.

import { CairnError, type Logger } from '../util/index.js'
import { relocateMeta } from './_apply-record.js'
import { overlap } from './_live-ranges.js'
import { type LogRecord, RecordType, type SegmentLog, syncDir } from './_segment-log.js'
import type { SpaceGuard } from './_space-guard.js'
import type { WriteTable } from './_write-table.js'
import type { ByteRange, LongOperationOptions } from './types.js'

/** A segment is compacted when at most this share of it is still live. */
const COMPACT_LIVE_RATIO = 0.5

/** Whether an append grows the store (refused when full) or frees space (may take the reserve). */
export type Room = 'grow' | 'free'

/** What compaction sees and does of the store (LogDiskStore provides it). */
export interface CompactionHost {
  readonly dir: string
  readonly log: SegmentLog
  readonly writes: WriteTable
  readonly space: SpaceGuard
  readonly logger: Logger
  readonly segmentSize: number
  /** Bytes of the last checkpoint written (the next one needs about as much room). */
  readonly lastCheckpointBytes: number
  /** Counts reloads after a failed append. */
  readonly epoch: number
  /** For every write some root can see, the merged byte ranges still visible. */
  liveRanges(): Map<number, ByteRange[]>
  append(type: number, meta: Uint8Array, data: Uint8Array | undefined, room: Room, what: string): LogRecord
  /** Waits until the log is durable. */
  durable(): Promise<void>
  /** Throws when the store reloaded since `epoch`. */
  sameEpoch(epoch: number, what: string): void
  /** Writes a checkpoint of the whole state. */
  checkpoint(): void
}

/**
 * Copies the live data of mostly dead segments to the head of the log (RELOCATE records), writes a
 * checkpoint, then removes those segments. Yields to the event loop every few MiB; writes made
 * meanwhile go to newer segments and cannot make dead data live again.
 */
export async function compactLog(
  host: CompactionHost,
  options: LongOperationOptions,
  auto: boolean,
): Promise<{ reclaimedBytes: number }> {
  const { signal, onProgress } = options
  const started = performance.now()
  const epoch = host.epoch
  const what = 'compact the disk store'
  const live = host.liveRanges()
  for (const w of host.writes.ids()) if (!live.has(w)) host.writes.delete(w)
  const active = host.log.end().segment
  const liveBySegment = new Map<number, number>()
  for (const [w, ranges] of live) {
    for (const p of host.writes.pieces(w) ?? []) {
      const n = overlap({ start: p.at, end: p.at + p.length }, ranges)
      liveBySegment.set(p.segment, (liveBySegment.get(p.segment) ?? 0) + n)
    }
  }
  const short = host.space.full || host.space.low
  // Short of space, the active segment counts too (rolled below before anything is copied): on a
  // small disk it may be the only one.
  let candidates = host.log
    .segments()
    .filter(
      (n) =>
        (n !== active || short) &&
        (liveBySegment.get(n) ?? 0) <= host.log.segmentBytes(n) * COMPACT_LIVE_RATIO,
    )
  if (short) {
    // Short of space: the emptiest segments first, only as many as the free space (and the reserve)
    // can take the live data of; a segment with nothing live costs nothing to drop.
    const h = host.space.health()
    let budget = h.freeBytes + h.reserveBytes - 2 * host.lastCheckpointBytes - 2 * 1024 * 1024
    candidates.sort((a, b) => (liveBySegment.get(a) ?? 0) - (liveBySegment.get(b) ?? 0))
    candidates = candidates.filter((n) => {
      const need = (liveBySegment.get(n) ?? 0) * 1.01
      if (need > budget) return false
      budget -= need
      return true
    })
  }
  let garbage = 0
  for (const n of candidates) garbage += host.log.segmentBytes(n) - (liveBySegment.get(n) ?? 0)
  // Automatic runs wait until the garbage is worth a copy (any amount when space is short).
  if (auto && !short && garbage < host.segmentSize / 4) return { reclaimedBytes: 0 }
  const victims = new Set(candidates)
  if (victims.size === 0) return { reclaimedBytes: 0 }
  let total = 0
  for (const n of victims) total += liveBySegment.get(n) ?? 0
  host.space.makeRoom(64 * 1024)
  host.log.rollNow()
  // An active segment with nothing but its header is not rolled: it stays, as the one appends go to.
  victims.delete(host.log.end().segment)
  if (victims.size === 0) return { reclaimedBytes: 0 }
  let done = 0
  let copied = 0
  let sinceYield = 0
  const touched: number[] = []
  for (const [w, ranges] of live) {
    const pieces = host.writes.pieces(w)
    if (pieces === undefined || !pieces.some((p) => victims.has(p.segment))) continue
    touched.push(w)
    for (const p of [...pieces]) {
      if (!victims.has(p.segment)) continue
      for (const r of ranges) {
        const s = Math.max(r.start, p.at)
        const e = Math.min(r.end, p.at + p.length)
        if (s >= e) continue
        const data = Buffer.allocUnsafe(e - s)
        host.log.read(p.segment, p.offset + (s - p.at), data, 0, e - s)
        const meta = relocateMeta(w, s)
        const rec = host.append(RecordType.relocate, meta, data, 'free', what)
        host.writes.relocate(w, s, e - s, rec.segment, rec.dataOffset)
        done += e - s
        copied += rec.end - rec.offset
        sinceYield += e - s
      }
    }
    if (sinceYield >= 8 * 1024 * 1024) {
      sinceYield = 0
      onProgress?.({ bytesDone: done, bytesTotal: total })
      await new Promise((r) => setImmediate(r))
      if (signal?.aborted) {
        throw new CairnError('Cancelled', 'Cannot finish compacting the disk store: it was cancelled')
      }
      // A reload after a failed append may have made data live again that this plan calls dead.
      host.sameEpoch(epoch, what)
    }
  }
  // What is left of a write in a victim segment is dead: forget it.
  for (const w of touched) {
    const pieces = host.writes.pieces(w)
    if (pieces !== undefined)
      host.writes.replace(
        w,
        pieces.filter((p) => !victims.has(p.segment)),
      )
  }
  // Relocated data goes to disk off the event loop; the checkpoint's own fsync then has little left.
  await host.durable()
  host.sameEpoch(epoch, what)
  host.checkpoint()
  let removed = 0
  for (const n of victims) {
    removed += host.log.segmentBytes(n)
    host.log.removeSegment(n)
  }
  // Not needed for correctness (a removed segment that came back after a power cut lies before the
  // checkpoint's start and nothing refers to it), but the space is then reclaimed for good.
  syncDir(host.dir)
  onProgress?.({ bytesDone: done, bytesTotal: total })
  const reclaimedBytes = Math.max(0, removed - copied)
  host.logger.info('disk store compacted', {
    segments: victims.size,
    relocatedBytes: done,
    reclaimedBytes,
    ms: Math.round(performance.now() - started),
  })
  return { reclaimedBytes }
}
