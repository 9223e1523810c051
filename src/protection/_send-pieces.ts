// Sending a byte range (a file's content) to a Node writable (an HTTP answer) piece by piece, from a
// few buffers used over and over. Why not a stream of fresh buffers: on this kind of VM every page of
// fresh memory costs a fault (tens of microseconds of wall time), and a fresh buffer per piece,
// freed only when the garbage collector gets to it, made the first read of a file fault in tens of
// MiB (BENCHMARKS.md, "File recovery"). A buffer goes back to the pool only once the socket took its
// bytes (the write's callback), never while a read or a write may still use it.
import type { Writable } from 'node:stream'

/** Bytes read and written at a time (4 MiB cost the service a quarter less CPU per GiB than 1 MiB). */
export const PIECE = 4 * 1024 * 1024
/** Pieces read while the one before is written: the disk or vault read overlaps the socket write. */
const PIECES_AHEAD = 2
/** Piece buffers one answer uses at most: those read ahead and the one being written. */
export const PIECES_PER_ANSWER = PIECES_AHEAD + 1

/**
 * Free piece buffers kept for the next answers: `kept` of them, all dropped after `idleMs` without
 * use (default never) so that a burst of answers leaves no memory behind.
 */
export class PiecePool {
  readonly #free: Buffer[] = []
  readonly #kept: number
  readonly #idleMs: number | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(kept: number, idleMs?: number) {
    this.#kept = kept
    this.#idleMs = idleMs
  }

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(PIECE)
  }

  give(buf: Buffer): void {
    if (this.#free.length < this.#kept) this.#free.push(buf)
    if (this.#idleMs === undefined) return
    if (this.#timer) this.#timer.refresh()
    else {
      this.#timer = setTimeout(() => {
        this.#free.length = 0
        this.#timer = undefined
      }, this.#idleMs)
      this.#timer.unref()
    }
  }
}

/** The pool of answers that bring none: one answer's worth (12 MiB) kept between answers. */
const common = new PiecePool(PIECES_PER_ANSWER)

/** Where a writable that is not a plain stream (an HTTP/1 answer, an HTTP/2 one) tells it is gone. */
type Out = Pick<Writable, 'write' | 'end' | 'destroy' | 'once' | 'off' | 'destroyed'> & {
  writableEnded?: boolean
}

/**
 * Writes the bytes `[start, end)` that `read(at, length, into)` answers (in `into`, or a buffer of its
 * own) to `out`, then ends it. A failed read destroys `out` with that error (the answer's headers are
 * gone already: the client sees a cut body) and rejects; a closed `out` stops the reading.
 */
export async function sendPieces(
  out: Out,
  start: number,
  end: number,
  read: (at: number, length: number, into: Buffer) => Promise<Buffer>,
  pool: PiecePool = common,
): Promise<void> {
  let closed = false
  let wake: (() => void) | undefined
  const onClose = () => {
    closed = true
    wake?.()
  }
  out.once('close', onClose)
  out.once('error', onClose)
  const reading: Array<{ buf: Buffer; data: Promise<Buffer> }> = []
  let next = start
  const more = () => {
    while (reading.length < PIECES_AHEAD && next < end && !closed) {
      const buf = pool.take()
      const data = read(next, Math.min(PIECE, end - next), buf)
      // Read ahead of a writer that may go away: a failure is answered when its piece is sent.
      data.catch(() => {})
      reading.push({ buf, data })
      next += PIECE
    }
  }
  try {
    more()
    while (reading.length > 0 && !closed) {
      const { buf, data } = reading.shift()!
      const bytes = await data
      if (closed) {
        pool.give(buf)
        break
      }
      more()
      const ok = out.write(bytes, (err) => {
        if (!err) pool.give(buf)
      })
      if (!ok && !closed) {
        await new Promise<void>((resolve) => {
          const done = () => {
            out.off('drain', done)
            wake = undefined
            resolve()
          }
          wake = done
          out.once('drain', done)
        })
      }
    }
    if (!closed) out.end()
  } catch (err) {
    if (!out.destroyed) out.destroy(err instanceof Error ? err : new Error(String(err)))
    throw err
  } finally {
    out.off('close', onClose)
    out.off('error', onClose)
    // Reads still running when the client went away: their buffers come back once they end.
    for (const r of reading)
      void r.data.then(
        () => pool.give(r.buf),
        () => pool.give(r.buf),
      )
  }
}
