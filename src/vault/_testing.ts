// Helpers for the vault's tests: in-memory sources and sinks, and test data.
import { randomBytes } from 'node:crypto'
import type { BackupSource, ByteRange, RestoreSink, SourceChanges } from './types.js'

/** A buffer as a backup source; `ranges` defaults to the whole buffer. */
export function bufferSource(
  name: string,
  data: Buffer,
  options: { changes?: SourceChanges; ranges?: ByteRange[]; lun?: number } = {},
): BackupSource & { reads: number; bytesRead: number } {
  const s = {
    name,
    size: data.length,
    reads: 0,
    bytesRead: 0,
    async read(offset: number, length: number) {
      s.reads++
      s.bytesRead += length
      return Buffer.from(data.subarray(offset, offset + length))
    },
    async ranges() {
      return options.ranges ?? (data.length ? [{ start: 0, end: data.length }] : [])
    },
    ...(options.changes ? { changes: options.changes } : {}),
    ...(options.lun !== undefined ? { lun: options.lun } : {}),
  }
  return s
}

/** A buffer as a restore target. */
export function bufferSink(size: number, fill = 0xee): RestoreSink & { data: Buffer } {
  const data = Buffer.alloc(size, fill)
  return {
    data,
    size,
    async write(offset, chunk) {
      chunk.copy(data, offset)
    },
    async zero(offset, length) {
      data.fill(0, offset, offset + length)
    },
  }
}

/** Text-like, compressible bytes. */
export function textBytes(n: number, seed = 1): Buffer {
  const words = ['cairn', 'vault', 'disk', 'snapshot', 'page', 'blob', 'restore', 'backup', 'chunk', 'pack']
  const out = Buffer.alloc(n)
  let x = seed
  let o = 0
  while (o < n) {
    x = (x * 1103515245 + 12345) >>> 0
    o += out.write(`${words[x % words.length]} `, o)
  }
  return out
}

/** A disk image of `size` bytes with text, random data, zeros and repeats. */
export function mixedImage(size: number): Buffer {
  const img = Buffer.alloc(size)
  const quarter = Math.floor(size / 4)
  textBytes(quarter).copy(img, 0)
  randomBytes(quarter).copy(img, quarter)
  // third quarter stays zero; the last repeats the first
  img.copy(img, 3 * quarter, 0, Math.min(quarter, size - 3 * quarter))
  return img
}

/** Writes `count` random 4 KiB blocks at scattered 4 KiB-aligned offsets; returns the changed ranges. */
export function scatterWrites(img: Buffer, count: number, seed = 7): ByteRange[] {
  const pages = Math.floor(img.length / 4096)
  const changed: ByteRange[] = []
  let x = seed
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    const p = x % pages
    randomBytes(4096).copy(img, p * 4096)
    changed.push({ start: p * 4096, end: p * 4096 + 4096 })
  }
  return changed
}
