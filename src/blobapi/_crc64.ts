// Azure Storage's CRC64 (`x-ms-content-crc64`): the reflected CRC-64 with polynomial 0x9A6C9329AC4BC9B5
// (CRC-64/NVME), initial value and final xor all ones, sent as 8 little-endian bytes in base64.
// Computed on two 32-bit halves because BigInt per byte is far too slow for 4 MiB bodies.

const POLY_LO = 0xac4bc9b5
const POLY_HI = 0x9a6c9329

const TABLE_LO = new Uint32Array(256)
const TABLE_HI = new Uint32Array(256)
for (let i = 0; i < 256; i++) {
  let lo = i
  let hi = 0
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1
    lo = ((lo >>> 1) | (hi << 31)) >>> 0
    hi = hi >>> 1
    if (carry) {
      lo = (lo ^ POLY_LO) >>> 0
      hi = (hi ^ POLY_HI) >>> 0
    }
  }
  TABLE_LO[i] = lo
  TABLE_HI[i] = hi
}

/** Azure's CRC64 of `data`, as the 8 bytes Azure sends (little-endian). */
export function crc64(data: Uint8Array): Buffer {
  let lo = 0xffffffff
  let hi = 0xffffffff
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ data[i]!) & 0xff
    lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!
    hi = (hi >>> 8) ^ TABLE_HI[idx]!
  }
  const out = Buffer.alloc(8)
  out.writeUInt32LE(~lo >>> 0, 0)
  out.writeUInt32LE(~hi >>> 0, 4)
  return out
}
