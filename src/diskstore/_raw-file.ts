// Helpers for raw images: the size of a file or block device, and finding the non-zero pages of a block.
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
  let runStart = -1
  const STEP = 16 * PAGE_SIZE
  for (let at = 0; at < length; at += STEP) {
    const stepEnd = Math.min(at + STEP, length)
    if (isZero(buf, at, stepEnd)) {
      if (runStart >= 0) {
        visit(runStart, at)
        runStart = -1
      }
      continue
    }
    for (let p = at; p < stepEnd; p += PAGE_SIZE) {
      const pe = Math.min(p + PAGE_SIZE, stepEnd)
      const zero = buf.compare(ZERO, 0, pe - p, p, pe) === 0
      if (zero && runStart >= 0) {
        visit(runStart, p)
        runStart = -1
      } else if (!zero && runStart < 0) runStart = p
    }
  }
  if (runStart >= 0) visit(runStart, length)
}
