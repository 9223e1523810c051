// Loading the disk store's state at open (and after a failed append): the newest valid checkpoint,
// then every record of the log after it. Only the last segment may end torn; see docs/diskstore.md.

import { join } from 'node:path'
import { CairnError, type Logger } from '../util/index.js'
import { applyRecord } from './_apply-record.js'
import { type CheckpointData, listCheckpoints, readCheckpoint } from './_checkpoint.js'
import { type LogPosition, SEGMENT_HEADER_SIZE, type SegmentLog } from './_segment-log.js'
import { StoreState } from './_store-state.js'

/** What loading reads and fills. */
export interface LoadContext {
  dir: string
  log: SegmentLog
  /** Empty: filled from the checkpoint and the log. */
  state: StoreState
  logger: Logger
  /** Cut the log at a damaged segment other than the last (LogDiskStoreOptions.repairLog). */
  repairLog: boolean
  /** Milliseconds since the epoch (names the folder of a repair). */
  now: () => number
}

/**
 * Loads the newest valid checkpoint and replays the log after it; returns the checkpoint's number
 * and the log position replay started from (its start; segment 0 when no checkpoint was read).
 */
export function loadState(ctx: LoadContext): { checkpoint?: number; from: LogPosition } {
  const loaded = loadCheckpoint(ctx)
  replayLog(ctx, loaded.from)
  return loaded
}

/** Loads the newest valid checkpoint into memory and returns the log position replay starts from. */
function loadCheckpoint(ctx: LoadContext): { from: LogPosition; checkpoint?: number } {
  const segments = new Set(ctx.log.segments())
  for (const n of listCheckpoints(ctx.dir)) {
    let data: CheckpointData
    try {
      data = readCheckpoint(ctx.dir, n)
    } catch (err) {
      ctx.logger.warn('disk store checkpoint is damaged; trying an older one', {
        checkpoint: n,
        error: String(err),
      })
      continue
    }
    const missing = data.writes.find(([, pieces]) => pieces.some((p) => !segments.has(p.segment)))
    const start = StoreState.checkpointStart(data)
    // Replay must begin in the checkpoint's segment; if it is gone but later ones exist, records were lost.
    const startGone = !segments.has(start.segment) && [...segments].some((n) => n > start.segment)
    if (missing !== undefined || startGone) {
      ctx.logger.warn('disk store checkpoint refers to a removed segment; trying an older one', {
        checkpoint: n,
      })
      continue
    }
    ctx.state.restore(data)
    return { from: start, checkpoint: n }
  }
  const first = ctx.log.segments()[0]
  if (first !== undefined && first !== 1) {
    throw new CairnError(
      'StoreCorrupt',
      `Cannot open the disk store in ${ctx.dir}: no checkpoint is readable and the log no longer starts at segment 1`,
    )
  }
  return { from: { segment: 0, offset: 0 } }
}

/** Applies the log from `from` on; cuts a torn tail (or, asked to repair, a damaged segment). */
function replayLog(ctx: LoadContext, from: LogPosition): void {
  const it = ctx.log.records(from)
  let count = 0
  for (;;) {
    const r = it.next()
    if (r.done) {
      const stop = r.value
      const end = ctx.log.end()
      // A last segment without a valid header (a kill while it was being created) is cut too, even
      // when it is empty: appends would otherwise go into it and be lost at the next open.
      if (stop.segment !== end.segment || stop.offset !== end.offset || stop.offset < SEGMENT_HEADER_SIZE) {
        // Only the last segment can end in a torn record (a crash mid-append); damage anywhere else
        // would lose acknowledged records, so refuse to open instead of cutting.
        const last = ctx.log.segments().at(-1)
        if (stop.segment !== last) {
          if (!ctx.repairLog) {
            throw new CairnError(
              'StoreCorrupt',
              `Cannot open the disk store in ${ctx.dir}: segment ${stop.segment} is damaged at offset ${stop.offset} and later segments exist. ` +
                'If the host lost power, start once with --repair-disk-log (cairn serve): the log is cut there and what follows is kept aside in the store folder',
            )
          }
          const folder = join(ctx.dir, `damaged-${new Date(ctx.now()).toISOString().replace(/[:.]/g, '-')}`)
          const kept = ctx.log.setAside(stop, folder)
          ctx.logger.warn('disk store log cut at a damaged segment (repair); what followed is kept aside', {
            ...stop,
            folder,
            segments: kept,
          })
        } else ctx.logger.warn('disk store log has a torn tail; cutting it', { ...stop })
        ctx.log.truncateAt(stop)
      }
      break
    }
    applyRecord(ctx.state, r.value)
    count++
  }
  ctx.logger.debug('disk store replayed log', { records: count })
}
