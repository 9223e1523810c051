import type { ObjectRange } from './vault-backend.js'

// Reads of many small ranges from a backend whose every call is a round trip (the paired site's, in a
// geo-replication copy): the reads asked for in one turn of the event loop go out together as one
// `getRanges` call of up to `maxBytes` / `maxRanges`, and up to `window` such calls are in flight at
// once, so the copy keeps the link busy without a request per chunk.

interface Waiting<R extends ObjectRange> {
  range: R
  resolve: (b: Buffer) => void
  reject: (e: unknown) => void
}

/** Options of a batcher. */
export interface RangeBatcherOptions {
  /** Bytes per call (default 16 MiB; a single larger range goes alone). */
  maxBytes?: number
  /** Ranges per call (default 256). */
  maxRanges?: number
  /** Calls in flight at once (default 4). */
  window?: number
}

/** Groups range reads into batched calls with a bounded window. */
export class RangeBatcher<R extends ObjectRange = ObjectRange> {
  readonly #getRanges: (ranges: readonly R[]) => Promise<Buffer[]>
  readonly #maxBytes: number
  readonly #maxRanges: number
  readonly #window: number
  #queue: Waiting<R>[] = []
  #queuedBytes = 0
  #inFlight = 0
  #scheduled = false
  /** Calls made so far (tests and the bench read it). */
  calls = 0

  constructor(getRanges: (ranges: readonly R[]) => Promise<Buffer[]>, options: RangeBatcherOptions = {}) {
    this.#getRanges = getRanges
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024
    this.#maxRanges = options.maxRanges ?? 256
    this.#window = Math.max(1, options.window ?? 4)
  }

  /** One range's bytes, read with the others asked for in the same turn. */
  read(range: R): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.#queue.push({ range, resolve, reject })
      this.#queuedBytes += range.length
      this.#pump(false)
    })
  }

  /** Sends full batches now; a partial one waits for the end of the turn (more reads may join it). */
  #pump(endOfTurn: boolean): void {
    while (this.#inFlight < this.#window && this.#queue.length > 0) {
      const full = this.#queuedBytes >= this.#maxBytes || this.#queue.length >= this.#maxRanges
      if (!full && !endOfTurn) {
        if (!this.#scheduled) {
          this.#scheduled = true
          setImmediate(() => {
            this.#scheduled = false
            this.#pump(true)
          })
        }
        return
      }
      let n = 0
      let bytes = 0
      while (
        n < this.#queue.length &&
        n < this.#maxRanges &&
        (n === 0 || bytes + this.#queue[n]!.range.length <= this.#maxBytes)
      )
        bytes += this.#queue[n++]!.range.length
      const batch = this.#queue.splice(0, n)
      this.#queuedBytes -= bytes
      this.#send(batch)
    }
  }

  #send(batch: Waiting<R>[]): void {
    this.#inFlight++
    this.calls++
    this.#getRanges(batch.map((w) => w.range))
      .then(
        (bufs) => {
          batch.forEach((w, i) => {
            const b = bufs[i]
            if (b) w.resolve(b)
            else w.reject(new Error(`a batched read answered ${bufs.length} of ${batch.length} ranges`))
          })
        },
        (err) => {
          for (const w of batch) w.reject(err)
        },
      )
      .finally(() => {
        this.#inFlight--
        this.#pump(false)
      })
  }
}
