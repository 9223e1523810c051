// The extent stream: a disk image sent as its data extents only (`cairn disk import` over the API).
//
// A stream is a sequence of frames, each a 16-byte header — the magic "CXT1", the data length (u32,
// big-endian) and the disk offset (u64, big-endian) — followed by that many bytes. Lengths are whole
// 512-byte pages, at most 4 MiB; offsets rise. The stream ends with an end frame of length 0 whose
// offset is the disk's size, and nothing after it: a stream cut short never has one, so it is refused.

import { CairnError } from '../util/index.js'
import { MAX_WRITE_SIZE, PAGE_SIZE } from './types.js'

/** The size of a frame header. */
export const EXTENT_HEADER_SIZE = 16
const MAGIC = 0x43585431 // "CXT1"

/** One run of an image's bytes at a disk offset. */
export interface ImageExtent {
  offset: number
  data: Uint8Array
}

/** The header of a frame of `length` bytes at `offset` (length 0, offset = size: the end frame). */
export function extentHeader(offset: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(EXTENT_HEADER_SIZE)
  h.writeUInt32BE(MAGIC, 0)
  h.writeUInt32BE(length, 4)
  h.writeUInt32BE(Math.floor(offset / 2 ** 32), 8)
  h.writeUInt32BE(offset % 2 ** 32, 12)
  return h
}

const invalid = (why: string) =>
  new CairnError('ImageStreamInvalid', `Cannot import the streamed image: ${why}; nothing was imported`)

/**
 * Reads an extent stream: yields each extent and, at the end frame, checks that it names `size` and
 * that nothing follows. The bytes of a yielded extent are valid until the next one is asked for (one
 * buffer is reused). A stream that ends before its end frame throws ImageStreamInvalid.
 */
export async function* readExtentStream(
  chunks: AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<ImageExtent> {
  const head = Buffer.alloc(EXTENT_HEADER_SIZE)
  let headFill = 0
  let data: Buffer | undefined
  let dataFill = 0
  let want = -1 // bytes of the current frame's data; -1 while reading a header
  let offset = 0
  let ended = false
  for await (const chunk of chunks) {
    let at = 0
    while (at < chunk.length) {
      if (ended) throw invalid('bytes follow its end frame')
      if (want < 0) {
        const n = Math.min(EXTENT_HEADER_SIZE - headFill, chunk.length - at)
        head.set(chunk.subarray(at, at + n), headFill)
        headFill += n
        at += n
        if (headFill < EXTENT_HEADER_SIZE) continue
        headFill = 0
        if (head.readUInt32BE(0) !== MAGIC) throw invalid('a frame does not start with "CXT1"')
        want = head.readUInt32BE(4)
        offset = head.readUInt32BE(8) * 2 ** 32 + head.readUInt32BE(12)
        if (want > MAX_WRITE_SIZE || want % PAGE_SIZE !== 0)
          throw invalid(`a frame holds ${want} bytes (whole 512-byte pages, at most 4 MiB)`)
        if (want === 0) {
          if (offset !== size) throw invalid(`its end frame names ${offset} bytes, not the disk's ${size}`)
          ended = true
          want = -1
        }
        continue
      }
      data ??= Buffer.allocUnsafe(MAX_WRITE_SIZE)
      const n = Math.min(want - dataFill, chunk.length - at)
      data.set(chunk.subarray(at, at + n), dataFill)
      dataFill += n
      at += n
      if (dataFill < want) continue
      yield { offset, data: data.subarray(0, want) }
      dataFill = 0
      want = -1
    }
  }
  if (!ended) throw invalid('it ended before its end frame (cut short)')
}
