// Azure Storage's CRC64 (`x-ms-content-crc64`): the reflected CRC-64 with polynomial 0x9A6C9329AC4BC9B5
// (CRC-64/NVME), initial value and final xor all ones, sent as 8 little-endian bytes in base64.
// Every Put Page body passes through here, so this is on the upload path (docs/blobapi.md, "Durability
// and speed"). The native addon (native/crc64.c, built by `npm run build`) folds with carry-less
// multiplication at 7-9 GB/s on one core here; where it was not built (no C compiler), hash-wasm's
// WebAssembly does it at ~1.35 GB/s (BENCHMARKS.md, "CRC64 on every Put Page").
import { createCRC64 } from 'hash-wasm'
import { nativeAddon } from '../util/index.js'

interface NativeCrc64 {
  /** The CRC of `data` continued from `initial`, the CRC of the bytes before it (0n: none). */
  crc64(data: Uint8Array, initial?: bigint): bigint
  implementation(): 'pclmulqdq' | 'table'
}

const native = loadNative()
// hash-wasm takes the polynomial in its reflected form. One hasher per thread is enough because every
// call runs to its end.
const hasher = await createCRC64('9a6c9329ac4bc9b5')

/** Which code sums: the addon with carry-less multiply, the addon's table loop, or WebAssembly. */
export const crc64Implementation: 'pclmulqdq' | 'table' | 'wasm' = native?.implementation() ?? 'wasm'

/** Azure's CRC64 of `data`, as the 8 bytes Azure sends (little-endian). */
export const crc64: (data: Uint8Array) => Buffer = native === undefined ? crc64Wasm : crc64Native

/**
 * A CRC64 summed piece by piece as the bytes arrive, or undefined without the native addon (then the
 * whole body is summed afterwards, off the event loop: _crc64-offload.ts). A Put Page body sums each
 * chunk while it is still in the cache from the socket, instead of reading 4 MiB back from memory.
 */
export function crc64Sum(): Crc64Sum | undefined {
  return native === undefined ? undefined : new Crc64Sum(native)
}

/** See `crc64Sum`. */
export class Crc64Sum {
  #native: NativeCrc64
  #value = 0n

  constructor(n: NativeCrc64) {
    this.#native = n
  }

  update(chunk: Uint8Array): void {
    this.#value = this.#native.crc64(chunk, this.#value)
  }

  /** The CRC64 of every byte given so far, as the 8 bytes Azure sends. */
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8)
    out.writeBigUInt64LE(this.#value)
    return out
  }
}

function crc64Native(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeBigUInt64LE(native!.crc64(data))
  return out
}

/** The WebAssembly CRC64, whatever `crc64` uses (the fallback, kept callable for its tests). */
export function crc64Wasm(data: Uint8Array): Buffer {
  hasher.init()
  hasher.update(data)
  // hash-wasm answers the value big-endian; Azure sends it little-endian.
  return Buffer.from(hasher.digest('binary')).reverse()
}

function loadNative(): NativeCrc64 | undefined {
  if (process.env.CAIRN_CRC64 === 'wasm') return undefined
  return nativeAddon<NativeCrc64>('crc64')
}
