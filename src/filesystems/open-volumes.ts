// Partition tables, read from a BlockSource.
//
// MBR (sector 0, signature 0x55AA at 510): four 16-byte entries at 446 — status, CHS, type (byte 4),
// CHS, first LBA (u32 at 8), sector count (u32 at 12). Types 0x05/0x0F/0x85 are extended: a chain of
// EBRs, each with the logical partition (relative to that EBR) in its first entry and the next EBR
// (relative to the extended partition's start) in its second; logicals are numbered 5, 6, … as Linux does.
// A type 0xEE entry is GPT's protective MBR.
// GPT (LBA 1, "EFI PART"): header size at 12, header CRC32 at 16 (computed with itself zeroed), backup LBA
// at 32, entries LBA at 72, entry count at 80, entry size at 84, entries CRC32 at 88; entries hold type
// GUID, unique GUID, first and last LBA (u64 at 32, 40) and a UTF-16LE name at 56. A primary header or
// array with a bad CRC falls back to the backup header at the disk's last LBA. 512- and 4096-byte sectors.
// No table, but a file system at byte 0: one whole-disk volume.
import { crc32 } from 'node:zlib'
import { damaged } from './_base-file-system.js'
import { CachedSource } from './_cached-source.js'
import { DETECT_BYTES, detectVolume } from './_detect.js'
import { corrupt } from './_errors.js'
import { NtfsFileSystem } from './ntfs-file-system.js'
import type { BlockSource, Volume } from './types.js'

const EXTENDED = new Set([0x05, 0x0f, 0x85])
/** More logical partitions than this is a loop in the EBR chain or nonsense. */
const MAX_LOGICAL = 128
const MAX_GPT_ENTRIES = 4096

interface Slot {
  partition: number | null
  start: number
  size: number
  scheme: Volume['scheme']
  partitionType?: string
  partitionName?: string
}

/** The volumes of a disk: its partitions (MBR with logical partitions, or GPT), or the whole disk. */
export function openVolumes(src: BlockSource): Promise<Volume[]> {
  return damaged('read the partition table', () => volumesOf(src))
}

async function volumesOf(src: BlockSource): Promise<Volume[]> {
  const disk = new CachedSource(src, 0, src.size, { cacheBytes: 4 * 1024 * 1024 })
  if (disk.size < 512) throw corrupt(`Cannot read the disk: it has ${disk.size} bytes, less than one sector`)
  const head = await disk.read(0, Math.min(disk.size, DETECT_BYTES), 'the first sectors')
  const slots = await partitionSlots(disk, head)
  const volumes: Volume[] = []
  for (const slot of slots) {
    const end = slot.start + slot.size
    if (end > disk.size) {
      volumes.push({
        ...slot,
        size: slot.size,
        type: 'unknown',
        fsType: 'unknown',
        supported: false,
        reason: `the partition ends at byte ${end}, past the end of the disk (${disk.size} bytes): a truncated image?`,
      })
      continue
    }
    const v =
      slot.start === 0 && slot.partition === null
        ? head
        : await disk.read(slot.start, Math.min(slot.size, DETECT_BYTES))
    const volume: Volume = { ...slot, ...detectVolume(v) }
    // NTFS keeps its label in the $Volume file, not in the boot sector: a few reads of the MFT.
    if (volume.type === 'ntfs' && volume.supported) {
      const label = await NtfsFileSystem.open(new CachedSource(src, slot.start, slot.size)).then(
        (fs) => fs.label,
        () => undefined,
      )
      if (label !== undefined) volume.label = label
    }
    volumes.push(volume)
  }
  return volumes
}

async function partitionSlots(disk: CachedSource, head: Buffer): Promise<Slot[]> {
  const whole: Slot[] = [{ partition: null, start: 0, size: disk.size, scheme: 'none' }]
  const hasSignature = head.readUInt16LE(510) === 0xaa55
  const entries = hasSignature ? mbrEntries(head) : []
  if (entries.some((e) => e.type === 0xee)) return gptSlots(disk, head)
  // A FAT or NTFS boot sector also ends in 0x55AA: a file system at byte 0 wins over a "table" in its code.
  const first = detectVolume(head)
  if (first.type !== 'unknown' || !hasSignature) return whole
  if (!entries.every((e) => e.status === 0 || e.status === 0x80)) return whole
  const used = entries.filter((e) => e.type !== 0 && e.count > 0)
  if (used.length === 0) return whole
  const slots: Slot[] = []
  for (const e of used) {
    const typeHex = `0x${e.type.toString(16).padStart(2, '0')}`
    if (EXTENDED.has(e.type)) {
      slots.push(...(await logicalSlots(disk, e.lba * 512, e.count * 512)))
      continue
    }
    slots.push({
      partition: e.index + 1,
      start: e.lba * 512,
      size: e.count * 512,
      scheme: 'mbr',
      partitionType: typeHex,
    })
  }
  return slots.sort((a, b) => (a.partition ?? 0) - (b.partition ?? 0))
}

interface MbrEntry {
  index: number
  status: number
  type: number
  lba: number
  count: number
}

function mbrEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = []
  for (let i = 0; i < 4; i++) {
    const e = 446 + i * 16
    out.push({
      index: i,
      status: sector[e]!,
      type: sector[e + 4]!,
      lba: sector.readUInt32LE(e + 8),
      count: sector.readUInt32LE(e + 12),
    })
  }
  return out
}

async function logicalSlots(disk: CachedSource, extStart: number, extSize: number): Promise<Slot[]> {
  const slots: Slot[] = []
  const seen = new Set<number>()
  let ebr = extStart
  for (let n = 5; ; n++) {
    if (seen.has(ebr))
      throw corrupt(
        `Cannot read the partition table: the extended partition's EBR chain loops at byte ${ebr}`,
      )
    if (n - 5 >= MAX_LOGICAL)
      throw corrupt(`Cannot read the partition table: more than ${MAX_LOGICAL} logical partitions`)
    seen.add(ebr)
    if (ebr + 512 > disk.size) {
      throw corrupt(
        `Cannot read the partition table: an extended boot record at byte ${ebr} lies past the end of the disk`,
      )
    }
    const sector = await disk.read(ebr, 512, 'an extended boot record')
    if (sector.readUInt16LE(510) !== 0xaa55) {
      throw corrupt(
        `Cannot read the partition table: the extended boot record at byte ${ebr} has no 0x55AA signature`,
      )
    }
    const [logical, next] = mbrEntries(sector)
    if (logical !== undefined && logical.type !== 0 && logical.count > 0) {
      slots.push({
        partition: n,
        start: ebr + logical.lba * 512,
        size: logical.count * 512,
        scheme: 'mbr',
        partitionType: `0x${logical.type.toString(16).padStart(2, '0')}`,
      })
    }
    if (next === undefined || next.type === 0 || next.lba === 0) break
    ebr = extStart + next.lba * 512
    if (ebr >= extStart + extSize)
      throw corrupt(`Cannot read the partition table: an EBR link points outside the extended partition`)
  }
  return slots
}

async function gptSlots(disk: CachedSource, head: Buffer): Promise<Slot[]> {
  const problems: string[] = []
  for (const sectorSize of [512, 4096]) {
    if (head.length < sectorSize * 2 || head.toString('latin1', sectorSize, sectorSize + 8) !== 'EFI PART')
      continue
    const primary = await readGpt(disk, sectorSize, 1)
    if (typeof primary !== 'string') return primary
    problems.push(`the primary GPT header ${primary}`)
    const lastLba = Math.floor(disk.size / sectorSize) - 1
    const backup = await readGpt(disk, sectorSize, lastLba)
    if (typeof backup !== 'string') return backup
    problems.push(`the backup GPT header at LBA ${lastLba} ${backup}`)
  }
  if (problems.length === 0) {
    // The protective MBR without a primary header: try the backup at the disk's end.
    const backup = await readGpt(disk, 512, Math.floor(disk.size / 512) - 1)
    if (typeof backup !== 'string') return backup
    problems.push('no GPT header at LBA 1', `the backup GPT header ${backup}`)
  }
  throw corrupt(`Cannot read the GPT partition table: ${problems.join('; ')}`)
}

/** The partitions of the GPT header at `lba`, or why it cannot be believed. */
async function readGpt(disk: CachedSource, sectorSize: number, lba: number): Promise<Slot[] | string> {
  if (lba < 1 || (lba + 1) * sectorSize > disk.size) return 'lies past the end of the disk'
  const hdr = await disk.read(lba * sectorSize, sectorSize, 'a GPT header')
  if (hdr.toString('latin1', 0, 8) !== 'EFI PART') return 'has no "EFI PART" signature'
  const headerSize = hdr.readUInt32LE(12)
  if (headerSize < 92 || headerSize > sectorSize) return `has a bad header size ${headerSize}`
  const copy = Buffer.from(hdr.subarray(0, headerSize))
  copy.writeUInt32LE(0, 16)
  if (crc32(copy) !== hdr.readUInt32LE(16)) return 'has a bad CRC32'
  const entriesLba = Number(hdr.readBigUInt64LE(72))
  const count = hdr.readUInt32LE(80)
  const entrySize = hdr.readUInt32LE(84)
  if (count > MAX_GPT_ENTRIES || entrySize < 128 || entrySize > 4096 || entrySize % 8 !== 0) {
    return `claims ${count} entries of ${entrySize} bytes`
  }
  const bytes = count * entrySize
  if (entriesLba * sectorSize + bytes > disk.size)
    return 'has its partition entries past the end of the disk (truncated?)'
  const array = await disk.read(entriesLba * sectorSize, bytes, 'the GPT partition entries')
  if (crc32(array) !== hdr.readUInt32LE(88)) return 'has partition entries with a bad CRC32'
  const slots: Slot[] = []
  for (let i = 0; i < count; i++) {
    const e = array.subarray(i * entrySize, (i + 1) * entrySize)
    if (e.subarray(0, 16).every((b) => b === 0)) continue
    const first = Number(e.readBigUInt64LE(32))
    const last = Number(e.readBigUInt64LE(40))
    if (last < first) return `has entry ${i + 1} ending before it starts`
    const name = e.toString('utf16le', 56, 128).replace(/\0.*$/s, '')
    slots.push({
      partition: i + 1,
      start: first * sectorSize,
      size: (last - first + 1) * sectorSize,
      scheme: 'gpt',
      partitionType: guid(e.subarray(0, 16)),
      ...(name ? { partitionName: name } : {}),
    })
  }
  return slots
}

/** A GPT GUID in its usual text form (the first three fields are little-endian). */
function guid(b: Buffer): string {
  const h = (from: number, to: number, le: boolean) => {
    const part = Buffer.from(b.subarray(from, to))
    return (le ? part.reverse() : part).toString('hex')
  }
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`.toUpperCase()
}
