// Helpers for raw images: the size of a file or block device, and finding the non-zero pages of a block.
import { execFile } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { CairnError } from '../util/index.js'
import { PAGE_SIZE } from './types.js'

const ZERO = Buffer.alloc(64 * 1024)

/** Size in bytes of a regular file or block device (fstat reports 0 for block devices). */
export function rawSize(path: string): { size: number; blockDevice: boolean } {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch (err) {
    throw new CairnError('FileNotFound', `Cannot read "${path}": ${(err as Error).message}`, { cause: err })
  }
  if (st.isFile()) return { size: st.size, blockDevice: false }
  if (st.isBlockDevice()) {
    const rdev = st.rdev
    const major = (rdev >> 8) & 0xfff
    const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
    const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim())
    return { size: sectors * 512, blockDevice: true }
  }
  throw new CairnError('InvalidRequest', `Cannot use "${path}": it is neither a file nor a block device`)
}

/**
 * The byte ranges of a sparse regular file that may hold data, found with `qemu-img map` (SEEK_DATA /
 * SEEK_HOLE, which Node does not expose), rounded out to 512 bytes; undefined when the file is not
 * sparse or the tool is missing, and the caller reads everything. Reading holes costs a zero-fill per
 * byte; skipping them made the import of a quarter-full image several times faster.
 */
export function dataRanges(
  path: string,
  size: number,
): Promise<{ start: number; end: number }[] | undefined> {
  let sparse = false
  try {
    const st = statSync(path)
    sparse = st.isFile() && st.blocks * 512 < st.size
  } catch {}
  if (!sparse) return Promise.resolve(undefined)
  return new Promise((resolve) => {
    execFile(
      'qemu-img',
      ['map', '--output=json', '-f', 'raw', path],
      { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout) => {
        if (err) return resolve(undefined)
        try {
          const entries = JSON.parse(stdout) as { start: number; length: number; data: boolean }[]
          const out: { start: number; end: number }[] = []
          for (const e of entries) {
            if (!e.data) continue
            const start = Math.floor(e.start / PAGE_SIZE) * PAGE_SIZE
            const end = Math.min(
              Math.ceil(size / PAGE_SIZE) * PAGE_SIZE,
              Math.ceil((e.start + e.length) / PAGE_SIZE) * PAGE_SIZE,
            )
            const last = out[out.length - 1]
            if (last !== undefined && last.end >= start) last.end = Math.max(last.end, end)
            else if (end > start) out.push({ start, end })
          }
          resolve(out)
        } catch {
          resolve(undefined)
        }
      },
    )
  })
}

/** True when `buf[start..end)` is all zeros. */
export function isZero(buf: Buffer, start: number, end: number): boolean {
  for (let at = start; at < end; at += ZERO.length) {
    const n = Math.min(ZERO.length, end - at)
    if (buf.compare(ZERO, 0, n, at, at + n) !== 0) return false
  }
  return true
}

/**
 * Calls `visit` with each run of pages of `buf[0..length)` that holds a non-zero byte, as
 * [start, end) offsets in the buffer, merged. A zero page stays a hole.
 */
export function forEachDataRun(
  buf: Buffer,
  length: number,
  visit: (start: number, end: number) => void,
): void {
  if (isZero(buf, 0, length)) return
  // A page whose first 8 bytes are not zero holds data: most data pages are decided by two word reads.
  const words =
    buf.byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, buf.byteOffset, length >>> 2) : undefined
  let runStart = -1
  for (let p = 0; p < length; p += PAGE_SIZE) {
    const pe = Math.min(p + PAGE_SIZE, length)
    const w = p >>> 2
    const zero =
      words !== undefined && pe - p >= 8 && (words[w] !== 0 || words[w + 1] !== 0)
        ? false
        : buf.compare(ZERO, 0, pe - p, p, pe) === 0
    if (zero && runStart >= 0) {
      visit(runStart, p)
      runStart = -1
    } else if (!zero && runStart < 0) runStart = p
  }
  if (runStart >= 0) visit(runStart, length)
}
