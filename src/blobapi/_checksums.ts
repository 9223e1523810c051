// The checksums a client may send with page bytes (`Content-MD5`, `x-ms-content-crc64`, or their
// `x-ms-source-` forms for a source range): checked against the bytes, and answered back.
import { createHash } from 'node:crypto'
import { crc64 } from './_crc64.js'
import { blobError } from './blob-errors.js'

/** The MD5 of `data` in base64; `Md5Mismatch` when the client's `expected` differs. */
export function checkMd5(data: Uint8Array, expected: string, what: string): string {
  const actual = createHash('md5').update(data).digest('base64')
  if (actual !== expected)
    throw blobError(
      'Md5Mismatch',
      `Cannot write pages: ${what} MD5 is ${actual}, the request says ${expected}`,
      {
        UserSpecifiedMd5: expected,
        ServerCalculatedMd5: actual,
      },
    )
  return actual
}

/**
 * Azure's CRC64 of `data` in base64; `Crc64Mismatch` when the client sent one that differs. `summed` is
 * the CRC64 of `data` when it was already summed as it arrived.
 */
export function checkCrc64(
  data: Uint8Array,
  expected: string | undefined,
  what: string,
  summed?: Buffer,
): string {
  const actual = (summed ?? crc64(data)).toString('base64')
  if (expected !== undefined && actual !== expected)
    throw blobError(
      'Crc64Mismatch',
      `Cannot write pages: ${what} CRC64 is ${actual}, the request says ${expected}`,
      { UserSpecifiedCrc64: expected, ServerCalculatedCrc64: actual },
    )
  return actual
}
