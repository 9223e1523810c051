// NTFS on-disk structures below the file level: the boot sector, update-sequence fixups, MFT records,
// attribute headers and data runs (layout as documented by the Linux-NTFS project, "NTFS Documentation",
// and as ntfs-3g writes it; all fields little-endian).
//
// Boot sector: OEM id "NTFS    " at 3, bytes per sector u16 at 0x0B, sectors per cluster u8 at 0x0D (a
// value above 0x80 means 2^(256-v)), total sectors u64 at 0x28, $MFT cluster u64 at 0x30, clusters per MFT
// record i8 at 0x40 and per index block i8 at 0x44 (negative v means 2^-v bytes), serial u64 at 0x48,
// 0xAA55 at 510.
// Multi-sector records ("FILE", "INDX"): magic at 0, update sequence array offset u16 at 4 and count u16 at
// 6. The last two bytes of every 512-byte stride hold the update sequence number (the array's first
// entry) on disk; the array keeps the real bytes. A stride whose tail differs from the number is a torn
// write: the record is refused.
// MFT record: sequence u16 at 0x10, link count u16 at 0x12, first attribute u16 at 0x14, flags u16 at 0x16
// (1 in use, 2 directory), bytes in use u32 at 0x18, base record reference u64 at 0x20 (0 for a base).
// Attribute: type u32 (0xFFFFFFFF ends the list), length u32 at 4, non-resident u8 at 8, name length u8
// at 9 and offset u16 at 0x0A (UTF-16), flags u16 at 0x0C (0x00FF compressed, 0x4000 encrypted, 0x8000
// sparse), id u16 at 0x0E. Resident: value length u32 at 0x10, offset u16 at 0x14. Non-resident: first and
// last VCN u64 at 0x10/0x18, runs offset u16 at 0x20, compression unit u16 at 0x22 (log2 clusters),
// allocated u64 at 0x28, data size at 0x30, initialized size at 0x38.
// Data runs: a header byte (low nibble: bytes of the length, high nibble: bytes of the signed cluster
// delta from the previous run; 0 bytes of delta is a sparse run), 0 ends them.
import { corrupt } from './_errors.js'

export const AT_STANDARD_INFORMATION = 0x10
export const AT_ATTRIBUTE_LIST = 0x20
export const AT_FILE_NAME = 0x30
export const AT_VOLUME_NAME = 0x60
export const AT_DATA = 0x80
export const AT_INDEX_ROOT = 0x90
export const AT_INDEX_ALLOCATION = 0xa0
export const AT_REPARSE_POINT = 0xc0

export const ATTR_COMPRESSED = 0x00ff
export const ATTR_ENCRYPTED = 0x4000

/** The fields of an NTFS boot sector a reader needs. */
export interface NtfsBoot {
  sectorSize: number
  clusterSize: number
  totalClusters: number
  mftCluster: number
  recordSize: number
  indexBlockSize: number
  serial: string
}

/** The boot sector's geometry, or a reason it cannot be believed. */
export function parseNtfsBoot(b: Buffer, volumeSize: number): NtfsBoot | string {
  if (b.length < 512 || b.toString('latin1', 3, 11) !== 'NTFS    ' || b.readUInt16LE(510) !== 0xaa55)
    return 'the boot sector has no NTFS signature'
  const sectorSize = b.readUInt16LE(0x0b)
  if (!isPow2(sectorSize) || sectorSize < 256 || sectorSize > 4096)
    return `the sector size ${sectorSize} is not valid`
  const spc = b[0x0d]!
  const clusterSize = spc > 0x80 ? sectorSize * 2 ** (256 - spc) : sectorSize * spc
  if (!isPow2(clusterSize) || clusterSize > 2 * 1024 * 1024)
    return `the cluster size ${clusterSize} is not valid`
  const sizeOf = (v: number) => (v >= 0x80 ? 2 ** (256 - v) : v * clusterSize)
  const recordSize = sizeOf(b[0x40]!)
  const indexBlockSize = sizeOf(b[0x44]!)
  if (!isPow2(recordSize) || recordSize < 512 || recordSize > 65536)
    return `the MFT record size ${recordSize} is not valid`
  if (!isPow2(indexBlockSize) || indexBlockSize < 512 || indexBlockSize > 65536)
    return `the index block size ${indexBlockSize} is not valid`
  const totalSectors = Number(b.readBigUInt64LE(0x28))
  const totalClusters = Math.floor((totalSectors * sectorSize) / clusterSize)
  if (!Number.isSafeInteger(totalSectors) || totalSectors * sectorSize > volumeSize)
    return `it claims ${totalSectors} sectors of ${sectorSize} bytes but the volume has ${volumeSize} bytes (truncated?)`
  const mftCluster = Number(b.readBigUInt64LE(0x30))
  if (!Number.isSafeInteger(mftCluster) || mftCluster === 0 || mftCluster >= totalClusters)
    return `its $MFT cluster ${mftCluster} lies outside the volume`
  const serial = b.readBigUInt64LE(0x48).toString(16).padStart(16, '0').toUpperCase()
  return { sectorSize, clusterSize, totalClusters, mftCluster, recordSize, indexBlockSize, serial }
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
}

/** Checks and undoes the update-sequence fixups of a "FILE" or "INDX" record (on a copy). */
export function applyFixups(raw: Buffer, magic: string, what: string): Buffer {
  if (raw.toString('latin1', 0, 4) !== magic) throw corrupt(`Cannot read ${what}: it has no "${magic}" magic`)
  const usaOffset = raw.readUInt16LE(4)
  const usaCount = raw.readUInt16LE(6)
  if (usaCount !== raw.length / 512 + 1 || usaOffset < 8 || usaOffset + usaCount * 2 > raw.length)
    throw corrupt(`Cannot read ${what}: its update sequence array does not fit it`)
  const buf = Buffer.from(raw)
  const usn = buf.readUInt16LE(usaOffset)
  for (let i = 1; i < usaCount; i++) {
    const tail = i * 512 - 2
    if (buf.readUInt16LE(tail) !== usn)
      throw corrupt(`Cannot read ${what}: sector ${i - 1} fails its update sequence check (a torn write)`)
    buf.writeUInt16LE(raw.readUInt16LE(usaOffset + i * 2), tail)
  }
  return buf
}

/** One extent of an attribute's clusters; `lcn` -1 is a sparse run (reads as zeros). */
export interface Run {
  vcn: number
  lcn: number
  length: number
}

/** One attribute record. */
export interface Attribute {
  type: number
  name: string
  flags: number
  id: number
  /** Resident value. */
  value?: Buffer
  /** Non-resident fields. */
  startVcn: number
  lastVcn: number
  runs: Run[]
  compressionUnit: number
  allocatedSize: number
  dataSize: number
  initializedSize: number
}

/** A parsed MFT record. */
export interface MftRecord {
  number: number
  sequence: number
  flags: number
  /** The base record this one extends, or its own number for a base record. */
  base: number
  attributes: Attribute[]
}

/** The 48-bit record number and 16-bit sequence of a file reference. */
export function fileReference(buf: Buffer, at: number): { record: number; sequence: number } {
  return { record: buf.readUIntLE(at, 6), sequence: buf.readUInt16LE(at + 6) }
}

/** Parses an MFT record (fixups already undone); the runs are checked against the volume's clusters. */
export function parseRecord(buf: Buffer, number: number, totalClusters: number): MftRecord {
  const what = `MFT record ${number}`
  const flags = buf.readUInt16LE(0x16)
  const inUse = Math.min(buf.readUInt32LE(0x18), buf.length)
  let at = buf.readUInt16LE(0x14)
  const baseRef = fileReference(buf, 0x20).record
  const attributes: Attribute[] = []
  while (at + 8 <= inUse) {
    const type = buf.readUInt32LE(at)
    if (type === 0xffffffff) break
    const length = buf.readUInt32LE(at + 4)
    if (length < 24 || length % 8 !== 0 || at + length > inUse)
      throw corrupt(`Cannot read ${what}: an attribute at byte ${at} has a bad length ${length}`)
    if (attributes.length >= 512) throw corrupt(`Cannot read ${what}: too many attributes`)
    const a = buf.subarray(at, at + length)
    const nameLength = a[9]!
    const nameOffset = a.readUInt16LE(0x0a)
    if (nameOffset + nameLength * 2 > length)
      throw corrupt(`Cannot read ${what}: an attribute name lies outside its attribute`)
    const attr: Attribute = {
      type,
      name: a.toString('utf16le', nameOffset, nameOffset + nameLength * 2),
      flags: a.readUInt16LE(0x0c),
      id: a.readUInt16LE(0x0e),
      startVcn: 0,
      lastVcn: -1,
      runs: [],
      compressionUnit: 0,
      allocatedSize: 0,
      dataSize: 0,
      initializedSize: 0,
    }
    if (a[8] === 0) {
      const valueLength = a.readUInt32LE(0x10)
      const valueOffset = a.readUInt16LE(0x14)
      if (valueOffset + valueLength > length)
        throw corrupt(`Cannot read ${what}: a resident value lies outside its attribute`)
      attr.value = a.subarray(valueOffset, valueOffset + valueLength)
      attr.dataSize = attr.initializedSize = attr.allocatedSize = valueLength
    } else {
      if (length < 64) throw corrupt(`Cannot read ${what}: a non-resident attribute is too short`)
      attr.startVcn = safe(a.readBigInt64LE(0x10), what)
      attr.lastVcn = safe(a.readBigInt64LE(0x18), what)
      attr.compressionUnit = a.readUInt16LE(0x22)
      attr.allocatedSize = safe(a.readBigInt64LE(0x28), what)
      attr.dataSize = safe(a.readBigInt64LE(0x30), what)
      attr.initializedSize = safe(a.readBigInt64LE(0x38), what)
      if (
        attr.startVcn < 0 ||
        attr.lastVcn < attr.startVcn - 1 ||
        attr.dataSize < 0 ||
        attr.initializedSize < 0 ||
        attr.compressionUnit > 16
      )
        throw corrupt(`Cannot read ${what}: a non-resident attribute has impossible sizes`)
      attr.runs = decodeRuns(a, a.readUInt16LE(0x20), attr.startVcn, totalClusters, what)
      const count = attr.runs.reduce((n, r) => n + r.length, 0)
      if (count !== attr.lastVcn - attr.startVcn + 1)
        throw corrupt(
          `Cannot read ${what}: its data runs cover ${count} clusters, not ${attr.lastVcn - attr.startVcn + 1}`,
        )
    }
    attributes.push(attr)
    at += length
  }
  return {
    number,
    sequence: buf.readUInt16LE(0x10),
    flags,
    base: baseRef === 0 ? number : baseRef,
    attributes,
  }
}

function safe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -1n)
    throw corrupt(`Cannot read ${what}: a size is out of range`)
  return Number(v)
}

function decodeRuns(a: Buffer, offset: number, startVcn: number, totalClusters: number, what: string): Run[] {
  const runs: Run[] = []
  let at = offset
  let vcn = startVcn
  let lcn = 0
  for (;;) {
    if (at >= a.length) throw corrupt(`Cannot read ${what}: its data runs run past the attribute`)
    const header = a[at]!
    if (header === 0) break
    const lengthBytes = header & 0x0f
    const deltaBytes = header >> 4
    if (
      lengthBytes === 0 ||
      lengthBytes > 8 ||
      deltaBytes > 8 ||
      at + 1 + lengthBytes + deltaBytes > a.length
    )
      throw corrupt(`Cannot read ${what}: a data run header is not valid`)
    const length = Number(readIntLE(a, at + 1, lengthBytes, false))
    if (!Number.isSafeInteger(length) || length <= 0)
      throw corrupt(`Cannot read ${what}: a data run is empty`)
    let runLcn = -1
    if (deltaBytes > 0) {
      lcn += Number(readIntLE(a, at + 1 + lengthBytes, deltaBytes, true))
      if (!Number.isSafeInteger(lcn) || lcn < 0 || lcn + length > totalClusters)
        throw corrupt(`Cannot read ${what}: a data run points past the end of the volume`)
      runLcn = lcn
    }
    runs.push({ vcn, lcn: runLcn, length })
    vcn += length
    if (runs.length > 1_000_000) throw corrupt(`Cannot read ${what}: too many data runs`)
    at += 1 + lengthBytes + deltaBytes
  }
  return runs
}

function readIntLE(buf: Buffer, at: number, bytes: number, signed: boolean): bigint {
  let v = 0n
  for (let i = bytes - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[at + i]!)
  if (signed && buf[at + bytes - 1]! & 0x80) v -= 1n << BigInt(bytes * 8)
  return v
}

/** An NTFS time (100 ns ticks since 1601) as ms since the epoch. */
export function ntfsTime(buf: Buffer, at: number): number {
  return Number(buf.readBigUInt64LE(at) / 10000n) - 11644473600000
}

/** A piece of a byte range of an attribute: where on the volume, or null for a hole. */
export interface Piece {
  at: number | null
  length: number
}

/** Maps bytes [offset, offset + length) of a non-resident attribute to volume bytes through its runs. */
export function mapRuns(
  runs: Run[],
  clusterSize: number,
  offset: number,
  length: number,
  what: string,
): Piece[] {
  const pieces: Piece[] = []
  let pos = offset
  const end = offset + length
  // Binary search for the run holding the first byte.
  let lo = 0
  let hi = runs.length - 1
  const vcn0 = Math.floor(offset / clusterSize)
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (runs[mid]!.vcn <= vcn0) lo = mid
    else hi = mid - 1
  }
  for (let i = lo; i < runs.length && pos < end; i++) {
    const r = runs[i]!
    const runStart = r.vcn * clusterSize
    const runEnd = runStart + r.length * clusterSize
    if (runEnd <= pos) continue
    if (runStart > pos) break
    const n = Math.min(end, runEnd) - pos
    pieces.push({ at: r.lcn < 0 ? null : r.lcn * clusterSize + (pos - runStart), length: n })
    pos += n
  }
  if (pos < end) throw corrupt(`Cannot read ${what}: its data runs end at byte ${pos} of ${end}`)
  return pieces
}
