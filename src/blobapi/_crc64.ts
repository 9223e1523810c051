// Azure Storage's CRC64 (`x-ms-content-crc64`): the reflected CRC-64 with polynomial 0x9A6C9329AC4BC9B5
// (CRC-64/NVME), initial value and final xor all ones, sent as 8 little-endian bytes in base64.
// Table-driven, slicing by 16: 16 tables of 256 64-bit entries (each as two 32-bit halves, since BigInt
// per byte is far too slow) consume 16 bytes per step, read as four 32-bit words. Every Put Page body
// passes through here, so this is on the upload path (docs/blobapi.md, "Durability and speed").

const POLY_LO = 0xac4bc9b5
const POLY_HI = 0x9a6c9329
const SLICES = 16

/** LO[k][b], HI[k][b]: the CRC of byte b followed by k zero bytes (k = 0 is the classic table). */
const LO: Uint32Array[] = []
const HI: Uint32Array[] = []
for (let k = 0; k < SLICES; k++) {
  LO.push(new Uint32Array(256))
  HI.push(new Uint32Array(256))
}
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
  LO[0]![i] = lo
  HI[0]![i] = hi
}
for (let k = 1; k < SLICES; k++) {
  for (let i = 0; i < 256; i++) {
    const lo = LO[k - 1]![i]!
    const hi = HI[k - 1]![i]!
    LO[k]![i] = (((lo >>> 8) | (hi << 24)) ^ LO[0]![lo & 0xff]!) >>> 0
    HI[k]![i] = ((hi >>> 8) ^ HI[0]![lo & 0xff]!) >>> 0
  }
}
/** The sixteen tables, named one by one below: the hot loop reads locals, not an array of tables. */
type Sixteen = [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
]
const [L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15] = LO as Sixteen
const [H0, H1, H2, H3, H4, H5, H6, H7, H8, H9, H10, H11, H12, H13, H14, H15] = HI as Sixteen

/** The words are read in the machine's order; the slicing below assumes little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** Azure's CRC64 of `data`, as the 8 bytes Azure sends (little-endian). */
export function crc64(data: Uint8Array): Buffer {
  let lo = 0xffffffff
  let hi = 0xffffffff
  const n = data.length
  let i = 0
  if (LITTLE_ENDIAN && (data.byteOffset & 3) === 0 && n >= 16) {
    const w = new Uint32Array(data.buffer, data.byteOffset, n >>> 2)
    const words = (n >>> 4) << 2
    for (let j = 0; j < words; j += 4) {
      const a = (lo ^ w[j]!) >>> 0
      const b = (hi ^ w[j + 1]!) >>> 0
      const c = w[j + 2]!
      const d = w[j + 3]!
      lo =
        L15[a & 0xff]! ^
        L14[(a >>> 8) & 0xff]! ^
        L13[(a >>> 16) & 0xff]! ^
        L12[a >>> 24]! ^
        L11[b & 0xff]! ^
        L10[(b >>> 8) & 0xff]! ^
        L9[(b >>> 16) & 0xff]! ^
        L8[b >>> 24]! ^
        L7[c & 0xff]! ^
        L6[(c >>> 8) & 0xff]! ^
        L5[(c >>> 16) & 0xff]! ^
        L4[c >>> 24]! ^
        L3[d & 0xff]! ^
        L2[(d >>> 8) & 0xff]! ^
        L1[(d >>> 16) & 0xff]! ^
        L0[d >>> 24]!
      hi =
        H15[a & 0xff]! ^
        H14[(a >>> 8) & 0xff]! ^
        H13[(a >>> 16) & 0xff]! ^
        H12[a >>> 24]! ^
        H11[b & 0xff]! ^
        H10[(b >>> 8) & 0xff]! ^
        H9[(b >>> 16) & 0xff]! ^
        H8[b >>> 24]! ^
        H7[c & 0xff]! ^
        H6[(c >>> 8) & 0xff]! ^
        H5[(c >>> 16) & 0xff]! ^
        H4[c >>> 24]! ^
        H3[d & 0xff]! ^
        H2[(d >>> 8) & 0xff]! ^
        H1[(d >>> 16) & 0xff]! ^
        H0[d >>> 24]!
    }
    i = words << 2
  }
  for (; i < n; i++) {
    const idx = (lo ^ data[i]!) & 0xff
    lo = ((lo >>> 8) | (hi << 24)) ^ L0[idx]!
    hi = (hi >>> 8) ^ H0[idx]!
  }
  const out = Buffer.alloc(8)
  out.writeUInt32LE(~lo >>> 0, 0)
  out.writeUInt32LE(~hi >>> 0, 4)
  return out
}
