// NTFS reader over a CachedSource (structures in _ntfs-record.ts, compression in _lznt1.ts).
//
// The $MFT is found from the boot sector and mapped through its own $DATA runs (record 0, extended by its
// $ATTRIBUTE_LIST when it has one). A file is its base MFT record plus the extension records its
// $ATTRIBUTE_LIST names; extents of one attribute are joined by starting VCN. Directories are the $I30
// index: entries in $INDEX_ROOT and in 'INDX' blocks of $INDEX_ALLOCATION (fixups checked, the block's own
// VCN checked), walked in B+ tree order with every block visited at most once. An entry is a file
// reference and the $FILE_NAME key; DOS-only names (namespace 2) are the short twins of Win32 names and are
// skipped; the metadata files (records 0-15: $MFT, $Bitmap, $Extend, …) are not listed. Each listed entry's
// record is read (the MFT pages in one prefetch) for its size, times and kind: $STANDARD_INFORMATION gives
// mtime and attributes, the unnamed $DATA the size and bytes (resident, or non-resident with sparse runs;
// past the initialized size reads zeros; LZNT1-compressed units decompressed), $REPARSE_POINT symlinks and
// junctions (and WSL symlinks) are reported as symlinks, ntfs-3g's Interix symlinks ("IntxLNK\1" in a
// system file) too. EFS-encrypted files and files compressed by Windows' WOF (CompactOS) or deduplicated
// are listed but refused when read (FileSystemUnsupported). Names match case-insensitively, as Windows
// does. Named streams (alternate data streams) are not shown.
import { isCairnError } from '../util/index.js'
import { BaseFileSystem, type Node } from './_base-file-system.js'
import type { CachedSource } from './_cached-source.js'
import { corrupt, unsupported } from './_errors.js'
import { decompressLznt1 } from './_lznt1.js'
import {
  AT_ATTRIBUTE_LIST,
  AT_DATA,
  AT_FILE_NAME,
  AT_INDEX_ALLOCATION,
  AT_INDEX_ROOT,
  AT_REPARSE_POINT,
  AT_STANDARD_INFORMATION,
  AT_VOLUME_NAME,
  ATTR_COMPRESSED,
  ATTR_ENCRYPTED,
  type Attribute,
  applyFixups,
  fileReference,
  type MftRecord,
  mapRuns,
  type NtfsBoot,
  ntfsTime,
  parseNtfsBoot,
  parseRecord,
} from './_ntfs-record.js'
import type { FileEntry, VolumeType } from './types.js'

const ROOT_RECORD = 5
const VOLUME_RECORD = 3
/** Records below this are NTFS's own metadata files. */
const FIRST_USER_RECORD = 16
const FILE_ATTRIBUTE_READONLY = 0x1
const FILE_ATTRIBUTE_SYSTEM = 0x4
const FILE_ATTRIBUTE_ENCRYPTED = 0x4000
const TAG_MOUNT_POINT = 0xa0000003
const TAG_SYMLINK = 0xa000000c
const TAG_LX_SYMLINK = 0xa000001d
const TAG_DEDUP = 0x80000013
const TAG_WOF = 0x80000017
const MAX_EXTENSION_RECORDS = 4096
const MAX_LIST_BYTES = 4 * 1024 * 1024
const MAX_INDEX_DEPTH = 64
const MAX_DIR_ENTRIES = 10_000_000
/** At most this many bytes of a directory's index blocks are fetched ahead in one go. */
const INDEX_PREFETCH_BYTES = 16 * 1024 * 1024

interface NtfsHandle {
  record: number
  /** The unnamed $DATA, joined from its extents. */
  data?: Attribute
  /** Why reading the data is refused. */
  refuse?: string
  /** Why the file's own MFT record cannot be believed (reads and listings of it are FileSystemCorrupt). */
  damage?: string
  target?: string
}

interface IndexEntry {
  record: number
  sequence: number
  name: string
  /** What the index key says of the file (its $FILE_NAME copy), used when its own record is damaged. */
  isDir: boolean
  size: number
  mtime: number
}

/** Reader of one NTFS file system. */
export class NtfsFileSystem extends BaseFileSystem<NtfsHandle> {
  readonly type: VolumeType = 'ntfs'
  readonly fsType = 'ntfs'
  protected override caseInsensitive = true
  readonly #src: CachedSource
  readonly #boot: NtfsBoot
  #mft: Attribute

  private constructor(src: CachedSource, boot: NtfsBoot, mft: Attribute) {
    super()
    this.#src = src
    this.#boot = boot
    this.#mft = mft
  }

  /** Opens the file system: checks the boot sector, maps the $MFT, reads the volume label. */
  static async open(src: CachedSource): Promise<NtfsFileSystem> {
    const boot = parseNtfsBoot(await src.read(0, Math.min(src.size, 512), 'the NTFS boot sector'), src.size)
    if (typeof boot === 'string') throw corrupt(`Cannot open the NTFS file system: ${boot}`)
    const at = boot.mftCluster * boot.clusterSize
    const raw = await src.read(at, boot.recordSize, 'the $MFT record')
    const first = parseRecord(applyFixups(raw, 'FILE', 'the $MFT record'), 0, boot.totalClusters)
    const data = first.attributes.find((a) => a.type === AT_DATA && a.name === '' && a.startVcn === 0)
    if (data === undefined || data.value !== undefined)
      throw corrupt('Cannot open the NTFS file system: the $MFT record has no non-resident $DATA')
    const fs = new NtfsFileSystem(src, boot, data)
    // A fragmented $MFT lists more extents in its $ATTRIBUTE_LIST; they live in records the first extent maps.
    if (first.attributes.some((a) => a.type === AT_ATTRIBUTE_LIST)) {
      const all = await fs.#attributes(first)
      const joined = joinExtents(all, AT_DATA, '', 'the $MFT')
      if (joined !== undefined) fs.#mft = joined
    }
    try {
      const vol = await fs.#record(VOLUME_RECORD)
      const name = vol.attributes.find((a) => a.type === AT_VOLUME_NAME)?.value
      if (name !== undefined && name.length > 0) fs.label = name.toString('utf16le')
    } catch {
      // A damaged $Volume costs the label only.
    }
    return fs
  }

  protected async rootNode(): Promise<Node<NtfsHandle>> {
    const rec = await this.#record(ROOT_RECORD)
    const node = await this.#node(rec, '/')
    if (node.entry.type !== 'dir')
      throw corrupt('Cannot open the NTFS root directory: record 5 is not a directory')
    return node
  }

  protected async readDirectory(
    node: Node<NtfsHandle>,
    signal?: AbortSignal,
  ): Promise<Array<Node<NtfsHandle>>> {
    if (node.handle.damage !== undefined) throw corrupt(node.handle.damage)
    const rec = await this.#record(node.handle.record)
    const entries = await this.#indexEntries(rec, node.entry.name, signal)
    const mft = this.#mft
    const rs = this.#boot.recordSize
    // Fetch the MFT pages of every child at once (neighbouring records merge into big reads).
    const ranges = entries.flatMap((e) => {
      try {
        return mapRuns(mft.runs, this.#boot.clusterSize, e.record * rs, rs, 'the $MFT').flatMap((p) =>
          p.at === null ? [] : [{ offset: p.at, length: p.length }],
        )
      } catch {
        return []
      }
    })
    await this.#src.prefetch(ranges)
    const nodes: Array<Node<NtfsHandle>> = []
    for (const e of entries) {
      signal?.throwIfAborted()
      nodes.push(await this.#child(e))
    }
    return nodes
  }

  /**
   * A directory entry's node from its own MFT record; when that record is damaged (a torn write, an
   * unused or reused record), the entry is still listed from its index key and every read of it is
   * FileSystemCorrupt, so one bad record does not hide its siblings.
   */
  async #child(e: IndexEntry): Promise<Node<NtfsHandle>> {
    try {
      const child = await this.#record(e.record)
      if ((child.flags & 1) === 0 || child.base !== child.number)
        throw corrupt(`Cannot read "${e.name}": its MFT record ${e.record} is not in use`)
      if (e.sequence !== 0 && child.sequence !== e.sequence)
        throw corrupt(
          `Cannot read "${e.name}": MFT record ${e.record} now holds another file (sequence ${child.sequence}, not ${e.sequence})`,
        )
      return await this.#node(child, e.name)
    } catch (err) {
      const damage =
        err instanceof RangeError
          ? `Cannot read "${e.name}": its MFT record ${e.record} is damaged (${err.message})`
          : isCairnError(err) && err.code === 'FileSystemCorrupt'
            ? err.message
            : undefined
      if (damage === undefined) throw err
      return {
        entry: {
          name: e.name,
          type: e.isDir ? 'dir' : 'file',
          size: e.isDir ? 0 : e.size,
          mode: e.isDir ? 0o40755 : 0o100644,
          uid: 0,
          gid: 0,
          mtime: e.mtime,
          id: String(e.record),
          nlink: 1,
        },
        handle: { record: e.record, damage },
      }
    }
  }

  protected async readData(
    node: Node<NtfsHandle>,
    offset: number,
    length: number,
    into?: Buffer,
  ): Promise<Buffer> {
    const { data, refuse, damage } = node.handle
    const what = `"${node.entry.name}"`
    if (damage !== undefined) throw corrupt(damage)
    if (refuse !== undefined) throw unsupported(`Cannot read ${what}: ${refuse}`)
    if (data === undefined) throw corrupt(`Cannot read ${what}: it has no data stream`)
    if (data.value !== undefined) return Buffer.from(data.value.subarray(offset, offset + length))
    const out = into?.subarray(0, length).fill(0) ?? Buffer.alloc(length)
    const valid = Math.min(offset + length, data.initializedSize)
    if (valid <= offset) return out
    if ((data.flags & ATTR_COMPRESSED) !== 0) {
      await this.#readCompressed(data, offset, valid - offset, out, what)
      return out
    }
    await this.#readPieces(data, offset, valid - offset, out, what)
    return out
  }

  protected async readTarget(node: Node<NtfsHandle>): Promise<string> {
    if (node.handle.target === undefined)
      throw corrupt(`Cannot read the link "${node.entry.name}": it has no target`)
    return node.handle.target
  }

  async #readPieces(
    data: Attribute,
    offset: number,
    length: number,
    out: Buffer,
    what: string,
  ): Promise<void> {
    const pieces = mapRuns(data.runs, this.#boot.clusterSize, offset, length, what)
    const reads: Array<Promise<void>> = []
    let pos = 0
    for (const p of pieces) {
      if (p.at !== null)
        reads.push(
          this.#src.readDirect(p.at, p.length, what, out.subarray(pos, pos + p.length)).then(() => {}),
        )
      if (reads.length >= 8) await Promise.all(reads.splice(0))
      pos += p.length
    }
    await Promise.all(reads)
  }

  async #readCompressed(
    data: Attribute,
    offset: number,
    length: number,
    out: Buffer,
    what: string,
  ): Promise<void> {
    const cs = this.#boot.clusterSize
    // NTFS compresses in units of 16 clusters of at most 4 KiB; anything else is not what Windows writes.
    if (data.compressionUnit !== 4 || cs > 4096)
      throw unsupported(
        `Cannot read ${what}: it is compressed with units of 2^${data.compressionUnit} clusters`,
      )
    const unit = cs * 2 ** data.compressionUnit
    const allocated = data.runs.reduce((n, r) => n + r.length, 0) * cs
    for (let u = Math.floor(offset / unit) * unit; u < offset + length; u += unit) {
      const span = Math.min(unit, allocated - u)
      if (span <= 0) throw corrupt(`Cannot read ${what}: its data runs end before its data`)
      const pieces = mapRuns(data.runs, cs, u, span, what)
      const holes = pieces.filter((p) => p.at === null).length
      let plain: Buffer
      if (holes === pieces.length) continue
      if (holes === 0 || span < unit) {
        plain = Buffer.alloc(span)
        await this.#readPieces(data, u, span, plain, what)
      } else {
        const stored = await Promise.all(
          pieces.filter((p) => p.at !== null).map((p) => this.#src.readDirect(p.at!, p.length, what)),
        )
        plain = Buffer.alloc(unit)
        decompressLznt1(Buffer.concat(stored), plain, what)
      }
      const from = Math.max(offset, u)
      const to = Math.min(offset + length, u + span)
      plain.copy(out, from - offset, from - u, to - u)
    }
  }

  /** One MFT record, fixups checked and undone. */
  async #record(number: number): Promise<MftRecord> {
    const rs = this.#boot.recordSize
    const what = `MFT record ${number}`
    if (number * rs + rs > this.#mft.dataSize)
      throw corrupt(`Cannot read ${what}: it lies past the end of the $MFT`)
    const pieces = mapRuns(this.#mft.runs, this.#boot.clusterSize, number * rs, rs, what)
    const parts: Buffer[] = []
    for (const p of pieces) {
      if (p.at === null) throw corrupt(`Cannot read ${what}: the $MFT has a hole there`)
      parts.push(this.#src.cached(p.at, p.length) ?? (await this.#src.read(p.at, p.length, what)))
    }
    const raw = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    return parseRecord(applyFixups(raw, 'FILE', what), number, this.#boot.totalClusters)
  }

  /** Every attribute of a file: its base record's, and those of the extension records its list names. */
  async #attributes(base: MftRecord): Promise<Attribute[]> {
    const list = base.attributes.find((a) => a.type === AT_ATTRIBUTE_LIST)
    if (list === undefined) return base.attributes
    const what = `the attribute list of MFT record ${base.number}`
    const bytes = await this.#attributeBytes(list, what, MAX_LIST_BYTES)
    const others = new Set<number>()
    for (let at = 0; at + 0x1a <= bytes.length; ) {
      const length = bytes.readUInt16LE(at + 4)
      if (length < 0x1a || at + length > bytes.length)
        throw corrupt(`Cannot read ${what}: an entry has a bad length`)
      const ref = fileReference(bytes, at + 0x10).record
      if (ref !== base.number) others.add(ref)
      if (others.size > MAX_EXTENSION_RECORDS) throw corrupt(`Cannot read ${what}: it names too many records`)
      at += length
    }
    const all = base.attributes.filter((a) => a.type !== AT_ATTRIBUTE_LIST)
    for (const n of others) {
      const ext = await this.#record(n)
      if (ext.base !== base.number || (ext.flags & 1) === 0)
        throw corrupt(`Cannot read ${what}: record ${n} does not belong to the file`)
      all.push(...ext.attributes)
    }
    return all
  }

  /** The whole value of a small attribute (resident or not), capped. */
  async #attributeBytes(a: Attribute, what: string, cap: number): Promise<Buffer> {
    if (a.value !== undefined) return a.value
    if (a.dataSize > cap) throw corrupt(`Cannot read ${what}: it claims ${a.dataSize} bytes`)
    const out = Buffer.alloc(a.dataSize)
    const valid = Math.min(a.dataSize, a.initializedSize)
    const pieces = mapRuns(a.runs, this.#boot.clusterSize, 0, valid, what)
    let pos = 0
    for (const p of pieces) {
      if (p.at !== null) (await this.#src.read(p.at, p.length, what)).copy(out, pos)
      pos += p.length
    }
    return out
  }

  /** The public entry of a base record, with what reading it needs. */
  async #node(rec: MftRecord, name: string): Promise<Node<NtfsHandle>> {
    const attrs = await this.#attributes(rec)
    const what = `"${name}" (MFT record ${rec.number})`
    const si = attrs.find((a) => a.type === AT_STANDARD_INFORMATION)?.value
    if (si === undefined || si.length < 48)
      throw corrupt(`Cannot read ${what}: it has no $STANDARD_INFORMATION`)
    const fileAttributes = si.readUInt32LE(32)
    const isDir = (rec.flags & 2) !== 0
    const data = isDir ? undefined : joinExtents(attrs, AT_DATA, '', what)
    const handle: NtfsHandle = { record: rec.number }
    if (data !== undefined) handle.data = data
    let type: FileEntry['type'] = isDir ? 'dir' : 'file'
    const reparse = attrs.find((a) => a.type === AT_REPARSE_POINT)
    if (reparse !== undefined) {
      const value = await this.#attributeBytes(reparse, what, 65536)
      const tag = value.length >= 8 ? value.readUInt32LE(0) : 0
      const target = reparseTarget(tag, value.subarray(8, 8 + value.readUInt16LE(4)))
      if (target !== undefined) {
        type = 'symlink'
        handle.target = target
      } else if (tag === TAG_WOF || tag === TAG_DEDUP) {
        handle.refuse = `Windows keeps it ${tag === TAG_WOF ? 'compressed by WOF (CompactOS)' : 'deduplicated'}, which Cairn does not read`
      }
    } else if (
      type === 'file' &&
      fileAttributes & FILE_ATTRIBUTE_SYSTEM &&
      data !== undefined &&
      data.dataSize > 8 &&
      data.dataSize <= 8 + 2 * 4096
    ) {
      const bytes = await this.#attributeBytes(data, what, 65536)
      if (bytes.toString('latin1', 0, 8) === 'IntxLNK\x01') {
        type = 'symlink'
        handle.target = bytes.toString('utf16le', 8, bytes.length - (bytes.length % 2))
      }
    }
    if (type === 'file' && handle.refuse === undefined) {
      if (data === undefined) throw corrupt(`Cannot read ${what}: a file without a $DATA attribute`)
      if (data.flags & ATTR_ENCRYPTED || fileAttributes & FILE_ATTRIBUTE_ENCRYPTED)
        handle.refuse = 'it is encrypted (EFS), which Cairn cannot decrypt'
      else if (data.dataSize > data.allocatedSize && data.value === undefined)
        throw corrupt(
          `Cannot read ${what}: its size ${data.dataSize} exceeds its ${data.allocatedSize} allocated bytes`,
        )
    }
    const names = attrs.filter((a) => a.type === AT_FILE_NAME && a.value !== undefined && a.value[0x41] !== 2)
    const size =
      type === 'symlink' ? Buffer.byteLength(handle.target!) : type === 'file' ? (data?.dataSize ?? 0) : 0
    const mode =
      type === 'dir'
        ? 0o40755
        : type === 'symlink'
          ? 0o120777
          : fileAttributes & FILE_ATTRIBUTE_READONLY
            ? 0o100444
            : 0o100644
    return {
      entry: {
        name,
        type,
        size,
        mode,
        uid: 0,
        gid: 0,
        mtime: ntfsTime(si, 8),
        ...(handle.target === undefined ? {} : { target: handle.target }),
        id: String(rec.number),
        nlink: Math.max(1, names.length),
      },
      handle,
    }
  }

  /** The $I30 index of a directory, in B+ tree order. */
  async #indexEntries(rec: MftRecord, dirName: string, signal?: AbortSignal): Promise<IndexEntry[]> {
    const what = `the directory "${dirName}" (MFT record ${rec.number})`
    const attrs = await this.#attributes(rec)
    const root = attrs.find((a) => a.type === AT_INDEX_ROOT && a.name === '$I30')?.value
    if (root === undefined || root.length < 32)
      throw corrupt(`Cannot list ${what}: it has no $I30 index root`)
    const alloc = joinExtents(attrs, AT_INDEX_ALLOCATION, '$I30', what)
    const blockSize = root.readUInt32LE(8)
    const cs = this.#boot.clusterSize
    const vcnShift = blockSize >= cs ? cs : 512
    if (alloc !== undefined) {
      if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0)
        throw corrupt(`Cannot list ${what}: its index block size ${blockSize} is not valid`)
      const ahead = Math.min(alloc.initializedSize, INDEX_PREFETCH_BYTES)
      await this.#src.prefetch(
        mapRuns(alloc.runs, cs, 0, ahead, what).flatMap((p) =>
          p.at === null ? [] : [{ offset: p.at, length: p.length }],
        ),
      )
    }
    const out: IndexEntry[] = []
    const visited = new Set<number>()
    const walk = async (node: Buffer, header: number, depth: number): Promise<void> => {
      signal?.throwIfAborted()
      if (depth > MAX_INDEX_DEPTH)
        throw corrupt(`Cannot list ${what}: its index is deeper than ${MAX_INDEX_DEPTH}`)
      const end = Math.min(node.length, header + node.readUInt32LE(header + 4))
      let at = header + node.readUInt32LE(header)
      for (;;) {
        if (at + 16 > end) throw corrupt(`Cannot list ${what}: an index node has no last entry`)
        const length = node.readUInt16LE(at + 8)
        const keyLength = node.readUInt16LE(at + 10)
        const flags = node.readUInt32LE(at + 12)
        if (length < 16 || at + length > end || length % 8 !== 0)
          throw corrupt(`Cannot list ${what}: an index entry has a bad length ${length}`)
        if (flags & 1) {
          if (alloc === undefined || length < 24)
            throw corrupt(`Cannot list ${what}: an index entry points to a block it does not have`)
          const vcn = Number(node.readBigUInt64LE(at + length - 8))
          await walk(...(await this.#indexBlock(alloc, vcn * vcnShift, blockSize, visited, what)), depth + 1)
        }
        if (flags & 2) break
        if (keyLength < 0x42 || 16 + keyLength > length)
          throw corrupt(`Cannot list ${what}: an index entry has a bad key length ${keyLength}`)
        const nameLength = node[at + 16 + 0x40]!
        const namespace = node[at + 16 + 0x41]!
        if (0x42 + nameLength * 2 > keyLength)
          throw corrupt(`Cannot list ${what}: an index entry's name runs past its key`)
        const ref = fileReference(node, at)
        if (namespace !== 2 && !(rec.number === ROOT_RECORD && ref.record < FIRST_USER_RECORD)) {
          const name = node.toString('utf16le', at + 16 + 0x42, at + 16 + 0x42 + nameLength * 2)
          if (name === '' || name.includes('/') || name.includes('\0'))
            throw corrupt(`Cannot list ${what}: an entry has the name "${name}", which NTFS does not allow`)
          if (out.length >= MAX_DIR_ENTRIES)
            throw corrupt(`Cannot list ${what}: it has more than ${MAX_DIR_ENTRIES} entries`)
          const key = at + 16
          out.push({
            ...ref,
            name,
            isDir: (node.readUInt32LE(key + 0x38) & 0x10000000) !== 0,
            size: Math.max(0, Number(node.readBigInt64LE(key + 0x30))),
            mtime: ntfsTime(node, key + 0x10),
          })
        }
        at += length
      }
    }
    await walk(root, 16, 0)
    return out
  }

  /** One 'INDX' block of a directory, fixups checked; each block may be visited once. */
  async #indexBlock(
    alloc: Attribute,
    offset: number,
    blockSize: number,
    visited: Set<number>,
    what: string,
  ): Promise<[Buffer, number]> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + blockSize > alloc.dataSize)
      throw corrupt(`Cannot list ${what}: an index entry points past its index allocation`)
    if (visited.has(offset)) throw corrupt(`Cannot list ${what}: its index loops back to a block met before`)
    visited.add(offset)
    const pieces = mapRuns(alloc.runs, this.#boot.clusterSize, offset, blockSize, what)
    const parts: Buffer[] = []
    for (const p of pieces) {
      if (p.at === null) throw corrupt(`Cannot list ${what}: its index allocation has a hole`)
      parts.push(await this.#src.read(p.at, p.length, what))
    }
    const block = applyFixups(Buffer.concat(parts), 'INDX', `an index block of ${what}`)
    if (block.length < 0x28) throw corrupt(`Cannot list ${what}: an index block is too short`)
    return [block, 0x18]
  }
}

/** The attribute of a type and name joined from its extents (sorted by first VCN, contiguous). */
function joinExtents(attrs: Attribute[], type: number, name: string, what: string): Attribute | undefined {
  const parts = attrs.filter((a) => a.type === type && a.name === name)
  if (parts.length <= 1) return parts[0]
  if (parts.some((p) => p.value !== undefined))
    throw corrupt(`Cannot read ${what}: an attribute is both resident and not`)
  parts.sort((a, b) => a.startVcn - b.startVcn)
  const first = parts[0]!
  if (first.startVcn !== 0) throw corrupt(`Cannot read ${what}: its first extent does not start at VCN 0`)
  const runs = [...first.runs]
  let next = first.lastVcn + 1
  for (const p of parts.slice(1)) {
    if (p.startVcn !== next) throw corrupt(`Cannot read ${what}: its extents leave a gap at VCN ${next}`)
    runs.push(...p.runs)
    next = p.lastVcn + 1
  }
  return { ...first, lastVcn: next - 1, runs }
}

/** The target of a symlink-like reparse point, or undefined for other tags. */
function reparseTarget(tag: number, data: Buffer): string | undefined {
  if (tag === TAG_LX_SYMLINK) return data.length >= 4 ? data.toString('utf8', 4) : undefined
  if (tag !== TAG_SYMLINK && tag !== TAG_MOUNT_POINT) return undefined
  const buffer = tag === TAG_SYMLINK ? 12 : 8
  if (data.length < buffer) return undefined
  const name = (offset: number, length: number) =>
    buffer + offset + length <= data.length
      ? data.toString('utf16le', buffer + offset, buffer + offset + length)
      : ''
  const relative = tag === TAG_SYMLINK && (data.readUInt32LE(8) & 1) === 1
  let target = name(data.readUInt16LE(4), data.readUInt16LE(6))
  if (target === '') target = name(data.readUInt16LE(0), data.readUInt16LE(2)).replace(/^\\\?\?\\/, '')
  return relative ? target.replaceAll('\\', '/') : target
}
