import { createRequire } from 'node:module'
import { crc32 as zlibCrc32 } from 'node:zlib'

type Crc32 = (data: Uint8Array, initial?: number) => number

/**
 * CRC-32 (IEEE, the checksum of zlib and of every disk store record), continued from `initial`.
 * @node-rs/crc32 computes it with carry-less multiplication (PCLMULQDQ), about 3x the speed of
 * zlib.crc32 in Node 20; where its native part is not available, zlib.crc32 gives the same values.
 */
const fast = loadFast()
export const crc32: Crc32 = fast ?? ((data, initial) => zlibCrc32(data, initial))

/**
 * Which implementation `crc32` is: 'zlib' means @node-rs/crc32 is missing from node_modules (run
 * `npm install`), and every write pays about three times the checksum time.
 */
export const crc32Implementation: 'node-rs' | 'zlib' = fast === undefined ? 'zlib' : 'node-rs'

function loadFast(): Crc32 | undefined {
  try {
    const fast = createRequire(import.meta.url)('@node-rs/crc32') as {
      crc32: (data: Uint8Array, initial?: number) => number
    }
    // It answers 0 for empty input whatever the initial value; zlib (rightly) answers the initial value.
    return (data, initial) => (data.length === 0 ? (initial ?? 0) : fast.crc32(data, initial))
  } catch {
    return undefined
  }
}
