// The bytes of the disk store's data log: segment files `seg-000001.log`, … in the store folder, and
// the records in them. SegmentLog (_segment-log.ts) appends, reads back and cuts them; this file is
// the one place that encodes and checks their headers.
//
// Segment file layout (little-endian):
//   0  u32 magic 0x534E5243 ("CRNS")
//   4  u32 format version (1)
//   8  u32 segment number
//  12  u32 crc32 of bytes 0..11
//  16  records, back to back
//
// Record layout:
//   0  u32 magic 0x4C4E5243 ("CRNL")
//   4  u8  record version (1)
//   5  u8  record type (see RecordType)
//   6  u16 flags (0)
//   8  u32 meta length M
//  12  u32 data length D (at most 4 MiB)
//  16  u32 crc32 of bytes 0..15, the meta and the data
//  20  meta (M bytes: a fixed binary layout for WRITE, CLEAR, RELOCATE; UTF-8 JSON for META)
//  20+M data (D bytes: the pages of a WRITE or RELOCATE)
//
// WRITE records appended with `alignData` have their meta padded so that the data starts on that
// boundary of the file (512 for the store's page writes), so that `overwrite` can later rewrite
// whole pages of them in place (see _overwrite-in-place.ts: only records no replay reads again).

import { readdirSync, readSync } from 'node:fs'
import { crc32 } from './_crc32.js'

const SEGMENT_MAGIC = 0x534e5243
const RECORD_MAGIC = 0x4c4e5243
const FORMAT_VERSION = 1
/** Bytes of the segment file header. */
export const SEGMENT_HEADER_SIZE = 16
/** Bytes of a record header. */
export const RECORD_HEADER_SIZE = 20
const MAX_META = 64 * 1024 * 1024
/** Largest data part of a record. */
export const MAX_DATA = 4 * 1024 * 1024

/** Kinds of log record. */
export const RecordType = {
  write: 1,
  clear: 2,
  meta: 3,
  relocate: 4,
} as const

/** A position in the log: segment number and byte offset in it. */
export interface LogPosition {
  segment: number
  offset: number
}

/** One record read back from the log. */
export interface LogRecord {
  type: number
  segment: number
  /** Offset of the record header in its segment. */
  offset: number
  /** Offset of the data bytes in the segment. */
  dataOffset: number
  meta: Buffer
  dataLength: number
  /** Offset just after the record. */
  end: number
}

/** The file name of segment `n`. */
export const segmentName = (n: number) => `seg-${String(n).padStart(6, '0')}.log`

/** Numbers of the segment files in `dir`, ascending. */
export function listSegments(dir: string): number[] {
  return readdirSync(dir)
    .map((f) => /^seg-(\d{6,})\.log$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b)
}

/** The header of segment `n`. */
export function segmentHeader(n: number): Buffer {
  const h = Buffer.alloc(SEGMENT_HEADER_SIZE)
  h.writeUInt32LE(SEGMENT_MAGIC, 0)
  h.writeUInt32LE(FORMAT_VERSION, 4)
  h.writeUInt32LE(n, 8)
  h.writeUInt32LE(crc32(h.subarray(0, 12)), 12)
  return h
}

/** The header of a record of `type` with this meta and data (its checksum covers all three). */
export function recordHeader(type: number, meta: Uint8Array, data: Uint8Array | undefined): Buffer {
  const dataLength = data?.length ?? 0
  const head = Buffer.alloc(RECORD_HEADER_SIZE)
  head.writeUInt32LE(RECORD_MAGIC, 0)
  head[4] = FORMAT_VERSION
  head[5] = type
  head.writeUInt32LE(meta.length, 8)
  head.writeUInt32LE(dataLength, 12)
  let crc = crc32(meta, crc32(head.subarray(0, 16)))
  if (data !== undefined && dataLength > 0) crc = crc32(data, crc)
  head.writeUInt32LE(crc, 16)
  return head
}

function validSegmentHeader(fd: number, n: number, size: number): boolean {
  if (size < SEGMENT_HEADER_SIZE) return false
  const h = Buffer.alloc(SEGMENT_HEADER_SIZE)
  readSync(fd, h, 0, SEGMENT_HEADER_SIZE, 0)
  return (
    h.readUInt32LE(0) === SEGMENT_MAGIC &&
    h.readUInt32LE(4) === FORMAT_VERSION &&
    h.readUInt32LE(8) === n &&
    h.readUInt32LE(12) === crc32(h.subarray(0, 12))
  )
}

/**
 * Reads the records of segment `n` (open as `fd`, `size` bytes long) from offset `start` on. Returns
 * where the first torn or invalid record (or a bad segment header) stops them, or undefined when the
 * segment ends cleanly.
 */
export function* segmentRecords(
  fd: number,
  n: number,
  size: number,
  start: number,
): Generator<LogRecord, LogPosition | undefined> {
  if (!validSegmentHeader(fd, n, size)) return { segment: n, offset: 0 }
  let pos = Math.max(start, SEGMENT_HEADER_SIZE)
  const head = Buffer.alloc(RECORD_HEADER_SIZE)
  while (pos < size) {
    if (size - pos < RECORD_HEADER_SIZE) return { segment: n, offset: pos }
    readSync(fd, head, 0, RECORD_HEADER_SIZE, pos)
    const metaLength = head.readUInt32LE(8)
    const dataLength = head.readUInt32LE(12)
    if (
      head.readUInt32LE(0) !== RECORD_MAGIC ||
      head[4] !== FORMAT_VERSION ||
      metaLength > MAX_META ||
      dataLength > MAX_DATA ||
      pos + RECORD_HEADER_SIZE + metaLength + dataLength > size
    ) {
      return { segment: n, offset: pos }
    }
    const body = Buffer.alloc(metaLength + dataLength)
    readSync(fd, body, 0, body.length, pos + RECORD_HEADER_SIZE)
    const crc = crc32(body, crc32(head.subarray(0, 16)))
    if (crc !== head.readUInt32LE(16)) return { segment: n, offset: pos }
    const end = pos + RECORD_HEADER_SIZE + metaLength + dataLength
    yield {
      type: head[5]!,
      segment: n,
      offset: pos,
      dataOffset: pos + RECORD_HEADER_SIZE + metaLength,
      meta: body.subarray(0, metaLength),
      dataLength,
      end,
    }
    pos = end
  }
  return undefined
}
