// Pack files: many chunk blobs back to back, then an index of them, then a fixed footer.
//
//   offset  size    field
//   0       8       magic "CRNPACK1"
//   8       2       version, u16 LE (1)
//   10      6       reserved, 0
//   16      …       chunk blobs (see _chunk-codec.ts)
//   T       48 × n  index entries: chunk id (32), blob offset u32, blob length u32,
//                   plaintext length u32, kind u8, reserved (3)
//   T+48n   56      footer: index offset T u64, entry count n u32, SHA-256 of the index (32),
//                   version u16, reserved u16, magic "CRNPEND1"
//
// A reader first reads the footer (the last 56 bytes), checks magic, version and the index checksum,
// then believes the index. Packs are written once, with create-if-absent, and never changed.
import { createHash, randomBytes } from 'node:crypto'
import { CairnError } from '../util/index.js'
import type { ChunkKind } from './_chunk-codec.js'

const HEAD_MAGIC = Buffer.from('CRNPACK1', 'ascii')
const END_MAGIC = Buffer.from('CRNPEND1', 'ascii')
const VERSION = 1
/** Bytes of a pack header. */
export const PACK_HEADER = 16
/** Bytes of a pack footer. */
export const PACK_FOOTER = 56
const ENTRY = 48

/** One chunk in a pack's index. */
export interface PackEntry {
  id: Buffer
  offset: number
  length: number
  rawLength: number
  kind: ChunkKind
}

/** A fresh, random pack object name. */
export function newPackName(): string {
  const hex = randomBytes(16).toString('hex')
  return `packs/${hex.slice(0, 2)}/${hex}`
}

/** The header every pack starts with. */
export function packHeader(): Buffer {
  const h = Buffer.alloc(PACK_HEADER)
  HEAD_MAGIC.copy(h, 0)
  h.writeUInt16LE(VERSION, 8)
  return h
}

/** The index and footer that end a pack whose blobs end at `indexOffset`. */
export function packTrailer(entries: PackEntry[], indexOffset: number): Buffer {
  const index = Buffer.alloc(entries.length * ENTRY)
  entries.forEach((e, i) => {
    const o = i * ENTRY
    e.id.copy(index, o)
    index.writeUInt32LE(e.offset, o + 32)
    index.writeUInt32LE(e.length, o + 36)
    index.writeUInt32LE(e.rawLength, o + 40)
    index[o + 44] = e.kind
  })
  const footer = Buffer.alloc(PACK_FOOTER)
  footer.writeBigUInt64LE(BigInt(indexOffset), 0)
  footer.writeUInt32LE(entries.length, 8)
  createHash('sha256').update(index).digest().copy(footer, 12)
  footer.writeUInt16LE(VERSION, 44)
  END_MAGIC.copy(footer, 48)
  return Buffer.concat([index, footer])
}

/** Reads a pack footer; returns where the index is and how many entries it has. */
export function parsePackFooter(
  footer: Buffer,
  name: string,
  size: number,
): { offset: number; count: number; sum: Buffer } {
  const bad = (why: string) => new CairnError('VaultCorrupt', `Cannot read pack ${name}: ${why}`)
  if (footer.length !== PACK_FOOTER || size < PACK_HEADER + PACK_FOOTER)
    throw bad(`it is truncated (${size} bytes)`)
  if (!footer.subarray(48).equals(END_MAGIC))
    throw bad('its footer magic is wrong (truncated or overwritten)')
  if (footer.readUInt16LE(44) !== VERSION) throw bad(`it has unknown version ${footer.readUInt16LE(44)}`)
  const offset = Number(footer.readBigUInt64LE(0))
  const count = footer.readUInt32LE(8)
  if (offset < PACK_HEADER || offset + count * ENTRY + PACK_FOOTER !== size) {
    throw bad('its footer does not match its size')
  }
  return { offset, count, sum: footer.subarray(12, 44) }
}

/** Reads a pack index checked against the footer's checksum. */
export function parsePackIndex(index: Buffer, sum: Buffer, name: string, indexOffset: number): PackEntry[] {
  if (!createHash('sha256').update(index).digest().equals(sum)) {
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: its index fails its checksum`)
  }
  const out: PackEntry[] = []
  for (let o = 0; o < index.length; o += ENTRY) {
    const e: PackEntry = {
      id: Buffer.from(index.subarray(o, o + 32)),
      offset: index.readUInt32LE(o + 32),
      length: index.readUInt32LE(o + 36),
      rawLength: index.readUInt32LE(o + 40),
      kind: index[o + 44] as ChunkKind,
    }
    if (e.offset < PACK_HEADER || e.offset + e.length > indexOffset) {
      throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: an index entry points outside the pack`)
    }
    out.push(e)
  }
  return out
}

/** Checks a pack's header. */
export function checkPackHeader(head: Buffer, name: string): void {
  if (head.length < PACK_HEADER || !head.subarray(0, 8).equals(HEAD_MAGIC)) {
    throw new CairnError('VaultCorrupt', `Cannot read pack ${name}: its header magic is wrong`)
  }
}
