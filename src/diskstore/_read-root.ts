// Reading a range of a version: its extent tree says which write holds each byte, the write table
// where that write's bytes lie in the log; holes read as zeros.

import { CairnError } from '../util/index.js'
import { forEachExtent, type Root } from './_extent-tree.js'
import type { SegmentLog } from './_segment-log.js'
import type { WriteTable } from './_write-table.js'

/**
 * The bytes of `[offset, offset + length)` of a version, in `into` when given (else a new buffer).
 * With `later`, reads the log can do on the thread pool are started and their completions added.
 */
export function readRoot(
  writes: WriteTable,
  log: SegmentLog,
  range: { root: Root; offset: number; length: number; what: string },
  into?: Buffer,
  later?: Promise<void>[],
): Buffer {
  const { root, offset, length, what } = range
  // Only the holes are zeroed: the rest is read over at once.
  const out = into ?? Buffer.allocUnsafe(length)
  let filled = 0
  forEachExtent(root, offset, offset + length, (s, e, writeId, at) => {
    if (s - offset > filled) out.fill(0, filled, s - offset)
    const ok = writes.resolve(writeId, at, e - s, (segment, segOffset, n, into) => {
      if (later === undefined) log.read(segment, segOffset, out, s - offset + into, n)
      else {
        const p = log.readLater(segment, segOffset, out, s - offset + into, n)
        if (p !== null) later.push(p)
      }
    })
    if (!ok) {
      throw new CairnError('StoreCorrupt', `Cannot ${what}: the data of write ${writeId} is missing`)
    }
    filled = e - offset
  })
  if (filled < length) out.fill(0, filled, length)
  return out
}
