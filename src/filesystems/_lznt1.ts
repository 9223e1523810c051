// LZNT1, the compression of NTFS compressed files (MS-XCA 2.5). A compression unit (16 clusters) is a
// sequence of chunks, each decompressing to at most 4096 bytes: a u16 header (low 12 bits: chunk bytes
// after the header minus 1; bit 15: compressed; 0 ends the unit), then either 4096 raw bytes or groups of
// a flag byte and eight tokens (bit clear: a literal byte; bit set: a u16 back reference whose split
// between offset and length depends on how far into the chunk the output is).
import { corrupt } from './_errors.js'

/** Decompresses one compression unit into `out` (zero-filled past the data); throws FileSystemCorrupt. */
export function decompressLznt1(input: Buffer, out: Buffer, what: string): void {
  const bad = (why: string) => corrupt(`Cannot read ${what}: its compressed data is damaged (${why})`)
  let inPos = 0
  let outPos = 0
  out.fill(0)
  while (inPos + 2 <= input.length && outPos < out.length) {
    const header = input.readUInt16LE(inPos)
    if (header === 0) break
    const chunkEnd = inPos + 2 + (header & 0x0fff) + 1
    if (chunkEnd > input.length) throw bad('a chunk runs past the unit')
    inPos += 2
    const chunkStart = outPos
    const chunkLimit = Math.min(out.length, chunkStart + 4096)
    if ((header & 0x8000) === 0) {
      const n = Math.min(chunkEnd - inPos, chunkLimit - outPos)
      input.copy(out, outPos, inPos, inPos + n)
      outPos = chunkStart + 4096
      inPos = chunkEnd
      continue
    }
    while (inPos < chunkEnd && outPos < chunkLimit) {
      const flags = input[inPos++]!
      for (let bit = 0; bit < 8 && inPos < chunkEnd && outPos < chunkLimit; bit++) {
        if ((flags & (1 << bit)) === 0) {
          out[outPos++] = input[inPos++]!
          continue
        }
        if (inPos + 2 > chunkEnd) throw bad('a back reference is cut off')
        const token = input.readUInt16LE(inPos)
        inPos += 2
        let lengthBits = 12
        for (let p = outPos - chunkStart - 1; p >= 0x10; p >>= 1) lengthBits--
        const back = (token >> lengthBits) + 1
        let length = (token & ((1 << lengthBits) - 1)) + 3
        if (back > outPos - chunkStart) throw bad('a back reference points before its chunk')
        if (outPos + length > chunkLimit) length = chunkLimit - outPos
        for (let i = 0; i < length; i++, outPos++) out[outPos] = out[outPos - back]!
      }
    }
    // A chunk that decompresses to less than 4096 bytes is followed by zeros up to the next chunk.
    outPos = chunkStart + 4096
    inPos = chunkEnd
  }
}
