// ext2/3/4 reader over a CachedSource (a window of a BlockSource).
//
// Why our own reader and not the `ext2fs` npm package (WASM libext2fs), measured on one image over one
// counting file callback (docs/filesystems.md, "Why our own readers"):
//  - listing a 10,000-entry directory with each entry's stat took ext2fs 1.5 million source reads (1.57 GB,
//    13.5 s CPU); this reader 16 reads and 0.4 s CPU. ext2fs reads one block per call (20,482 reads for a
//    20 MiB file) and a 20 MiB read in one call aborted the WASM module (OOM), dead for every later caller;
//  - one Asyncify WASM instance serialises every call of every mounted file system; it mounts read-write;
//    its module installs process-wide `uncaughtException`/`unhandledRejection` handlers that rethrow,
//    which would change how the whole service handles errors;
//  - it cannot bound walks (extent tree or directory loops) for us, and its errors are errno numbers, not
//    FileSystemCorrupt/FileSystemUnsupported.
// The format is well documented (kernel Documentation/filesystems/ext4) and the read side is small.
//
// Layout read here (little-endian): superblock at byte 1024 (magic 0xEF53 at 56); group descriptors in the
// block after the superblock (32 bytes, or s_desc_size with 64bit; META_BG places them per meta group);
// inodes in each group's table; file blocks by extent tree (magic 0xF30A, depth <= 5) or by direct and
// 1/2/3-level indirect blocks; inline data in i_block plus the `system.data` in-inode xattr; directories
// as a linear scan of their blocks (htree index blocks look like empty entries and are skipped).

import { BaseFileSystem, type Node } from './_base-file-system.js'
import type { CachedSource } from './_cached-source.js'
import { corrupt, unsupported } from './_errors.js'
import type { FileEntry, VolumeType } from './types.js'

const SUPER_MAGIC = 0xef53
const EXTENT_MAGIC = 0xf30a
const ROOT_INO = 2

// Incompatible features (s_feature_incompat).
const INCOMPAT_COMPRESSION = 0x1
const INCOMPAT_FILETYPE = 0x2
const INCOMPAT_JOURNAL_DEV = 0x8
const INCOMPAT_META_BG = 0x10
const INCOMPAT_EXTENTS = 0x40
const INCOMPAT_64BIT = 0x80
const INCOMPAT_DIRDATA = 0x1000
const INCOMPAT_KNOWN =
  0x1 |
  0x2 |
  0x4 |
  0x8 |
  0x10 |
  0x40 |
  0x80 |
  0x100 |
  0x200 |
  0x400 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000

// Inode flags.
const FLAG_ENCRYPT = 0x800
const FLAG_EXTENTS = 0x80000
const FLAG_INLINE_DATA = 0x10000000

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

/** The most blocks a directory may have before it is called damaged (1 GiB of 4 KiB blocks). */
const MAX_DIR_BYTES = 1024 * 1024 * 1024

interface Inode {
  ino: number
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  links: number
  flags: number
  /** i_block, 60 bytes. */
  block: Buffer
  /** The whole on-disk inode (for in-inode xattrs). */
  raw: Buffer
}

interface Run {
  /** First logical block. */
  logical: number
  /** Physical block, or -1 for a hole (or an unwritten extent, which reads as zeros). */
  physical: number
  count: number
}

/** Reader of one ext2/3/4 file system. */
export class ExtFileSystem extends BaseFileSystem<Inode> {
  readonly type: VolumeType = 'ext'
  readonly fsType: string
  readonly #src: CachedSource
  readonly #blockSize: number
  readonly #blocksCount: number
  readonly #inodesCount: number
  readonly #inodesPerGroup: number
  readonly #inodeSize: number
  readonly #incompat: number
  readonly #inodeTables: number[]
  readonly #runs = new Map<number, Run[]>()

  private constructor(src: CachedSource, fields: ExtFields, inodeTables: number[]) {
    super()
    this.#src = src
    this.fsType = fields.fsType
    if (fields.label !== '') this.label = fields.label
    this.#blockSize = fields.blockSize
    this.#blocksCount = fields.blocksCount
    this.#inodesCount = fields.inodesCount
    this.#inodesPerGroup = fields.inodesPerGroup
    this.#inodeSize = fields.inodeSize
    this.#incompat = fields.incompat
    this.#inodeTables = inodeTables
  }

  /** Opens the file system: checks the superblock and reads the group descriptors. */
  static async open(src: CachedSource): Promise<ExtFileSystem> {
    if (src.size < 2048)
      throw corrupt('Cannot open the ext file system: the volume is too small for a superblock')
    const sb = await src.read(1024, 1024, 'the ext superblock')
    const fields = parseExtSuperblock(sb)
    if (fields === undefined)
      throw corrupt('Cannot open the ext file system: the superblock has no ext magic (0xEF53)')
    const problem = checkExtFields(fields, src.size)
    if (problem !== undefined) throw corrupt(`Cannot open the ext file system: ${problem}`)
    const unknown = fields.incompat & ~INCOMPAT_KNOWN
    if (unknown !== 0) {
      throw unsupported(
        `Cannot open the ext file system: it uses unknown incompatible features 0x${unknown.toString(16)}`,
      )
    }
    if (fields.incompat & INCOMPAT_COMPRESSION)
      throw unsupported('Cannot open the ext file system: it uses compression')
    if (fields.incompat & INCOMPAT_JOURNAL_DEV)
      throw unsupported('Cannot open the ext file system: it is an external journal device')
    if (fields.incompat & INCOMPAT_DIRDATA)
      throw unsupported('Cannot open the ext file system: it uses dirdata (Lustre)')
    const groups = Math.ceil((fields.blocksCount - fields.firstDataBlock) / fields.blocksPerGroup)
    const descSize = fields.incompat & INCOMPAT_64BIT ? fields.descSize : 32
    const perBlock = Math.floor(fields.blockSize / descSize)
    const descBlocks = Math.ceil(groups / perBlock)
    const tables: number[] = []
    const bs = fields.blockSize
    const descBlock = (i: number): number => {
      if (!(fields.incompat & INCOMPAT_META_BG) || i < fields.firstMetaBg)
        return fields.firstDataBlock + 1 + i
      const group = i * perBlock
      return (
        fields.firstDataBlock + group * fields.blocksPerGroup + (hasSuper(group, fields.roCompat) ? 1 : 0)
      )
    }
    if (!(fields.incompat & INCOMPAT_META_BG)) {
      await src.prefetch([{ offset: (fields.firstDataBlock + 1) * bs, length: descBlocks * bs }])
    }
    for (let i = 0; i < descBlocks; i++) {
      const blk = descBlock(i)
      if (blk >= fields.blocksCount)
        throw corrupt(`Cannot open the ext file system: group descriptor block ${blk} lies past its end`)
      const buf = await src.read(blk * bs, bs, 'the ext group descriptors')
      for (let j = 0; j < perBlock && tables.length < groups; j++) {
        const d = buf.subarray(j * descSize, (j + 1) * descSize)
        const lo = d.readUInt32LE(8)
        const hi = descSize >= 64 ? d.readUInt32LE(0x28) : 0
        tables.push(hi * 2 ** 32 + lo)
      }
    }
    return new ExtFileSystem(src, fields, tables)
  }

  protected async rootNode(): Promise<Node<Inode>> {
    return this.#node('/', await this.#inode(ROOT_INO))
  }

  protected async readDirectory(node: Node<Inode>, signal?: AbortSignal): Promise<Array<Node<Inode>>> {
    const dir = node.handle
    if (dir.flags & FLAG_ENCRYPT)
      throw unsupported(`Cannot list directory inode ${dir.ino}: it is encrypted (fscrypt)`)
    if (dir.size > MAX_DIR_BYTES)
      throw corrupt(`Cannot list directory inode ${dir.ino}: its size ${dir.size} is not believable`)
    const found: Array<{ name: string; ino: number }> = []
    if (dir.flags & FLAG_INLINE_DATA) {
      // i_block: the parent inode (4 bytes), then entries; more entries in system.data.
      this.#parseEntries(dir.block.subarray(4), dir.block.length - 4, found, dir.ino)
      const more = inlineXattr(dir.raw, this.#inodeSize)
      if (more !== undefined && more.length > 0) this.#parseEntries(more, more.length, found, dir.ino)
    } else {
      const data = await this.#readAll(dir, signal)
      this.#parseEntries(data, this.#blockSize, found, dir.ino)
    }
    // Read the inode table blocks of every entry in a few big reads before parsing them one by one.
    await this.#src.prefetch(
      found.map((f) => ({ offset: this.#inodeOffset(f.ino), length: this.#inodeSize })),
    )
    const nodes: Array<Node<Inode>> = []
    for (const f of found) {
      signal?.throwIfAborted()
      nodes.push(this.#node(f.name, await this.#inode(f.ino)))
    }
    return nodes
  }

  protected async readData(
    node: Node<Inode>,
    offset: number,
    length: number,
    into?: Buffer,
  ): Promise<Buffer> {
    const inode = node.handle
    if (inode.flags & FLAG_ENCRYPT)
      throw unsupported(`Cannot read inode ${inode.ino}: it is encrypted (fscrypt)`)
    if (inode.flags & FLAG_INLINE_DATA)
      return (await this.#inlineData(inode)).subarray(offset, offset + length)
    return this.#readRange(inode, offset, length, false, into)
  }

  protected async readTarget(node: Node<Inode>): Promise<string> {
    const inode = node.handle
    if (inode.size > 65536)
      throw corrupt(`Cannot read the symlink inode ${inode.ino}: its size ${inode.size} is not believable`)
    let bytes: Buffer
    if (inode.flags & FLAG_INLINE_DATA) bytes = (await this.#inlineData(inode)).subarray(0, inode.size)
    else if (!(inode.flags & FLAG_EXTENTS) && inode.size < 60) bytes = inode.block.subarray(0, inode.size)
    else bytes = await this.#readRange(inode, 0, inode.size)
    return bytes.toString('utf8')
  }

  #node(name: string, inode: Inode): Node<Inode> {
    const fmt = inode.mode & S_IFMT
    const type: FileEntry['type'] =
      fmt === S_IFDIR ? 'dir' : fmt === S_IFREG ? 'file' : fmt === S_IFLNK ? 'symlink' : 'other'
    const entry: Omit<FileEntry, 'path'> = {
      name,
      type,
      size: inode.size,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      mtime: inode.mtime,
      id: String(inode.ino),
      nlink: inode.links,
    }
    return { entry, handle: inode }
  }

  #inodeOffset(ino: number): number {
    const group = Math.floor((ino - 1) / this.#inodesPerGroup)
    const index = (ino - 1) % this.#inodesPerGroup
    const table = this.#inodeTables[group]
    if (table === undefined) return -1
    return table * this.#blockSize + index * this.#inodeSize
  }

  async #inode(ino: number): Promise<Inode> {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.#inodesCount) {
      throw corrupt(`Cannot read inode ${ino}: the file system has inodes 1-${this.#inodesCount}`)
    }
    const at = this.#inodeOffset(ino)
    if (at < 0) throw corrupt(`Cannot read inode ${ino}: its group has no inode table`)
    const raw =
      this.#src.cached(at, this.#inodeSize) ?? (await this.#src.read(at, this.#inodeSize, `inode ${ino}`))
    const extra = this.#inodeSize > 128 ? raw.readUInt16LE(128) : 0
    const has = (end: number) => 128 + extra >= end
    const sizeHi = raw.readUInt32LE(108)
    let mtime = raw.readInt32LE(16) * 1000
    if (has(0x8c)) {
      const mx = raw.readUInt32LE(0x88)
      mtime = (raw.readInt32LE(16) + (mx & 3) * 2 ** 32) * 1000 + Math.floor((mx >>> 2) / 1e6)
    }
    return {
      ino,
      mode: raw.readUInt16LE(0),
      uid: raw.readUInt16LE(2) + raw.readUInt16LE(120) * 65536,
      gid: raw.readUInt16LE(24) + raw.readUInt16LE(122) * 65536,
      size: sizeHi * 2 ** 32 + raw.readUInt32LE(4),
      mtime,
      links: raw.readUInt16LE(26),
      flags: raw.readUInt32LE(32),
      block: raw.subarray(40, 100),
      raw,
    }
  }

  #parseEntries(
    data: Buffer,
    blockSize: number,
    out: Array<{ name: string; ino: number }>,
    dirIno: number,
  ): void {
    const filetype = (this.#incompat & INCOMPAT_FILETYPE) !== 0
    for (let blockStart = 0; blockStart < data.length; blockStart += blockSize) {
      const end = Math.min(data.length, blockStart + blockSize)
      let at = blockStart
      while (at + 8 <= end) {
        const ino = data.readUInt32LE(at)
        let recLen = data.readUInt16LE(at + 4)
        if (recLen === 0 || recLen === 65535) recLen = 65536 // 64 KiB blocks store 65536 this way
        const nameLen = filetype ? data[at + 6]! : data.readUInt16LE(at + 6)
        if (recLen < 8 || at + recLen > end || (ino !== 0 && 8 + nameLen > recLen)) {
          throw corrupt(
            `Cannot list directory inode ${dirIno}: a directory entry at byte ${at} has a bad length`,
          )
        }
        if (ino !== 0 && nameLen > 0) {
          const name = data.toString('utf8', at + 8, at + 8 + nameLen)
          if (name !== '.' && name !== '..') out.push({ name, ino })
        }
        at += recLen
      }
    }
  }

  async #readAll(inode: Inode, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted()
    return this.#readRange(inode, 0, inode.size, true)
  }

  async #inlineData(inode: Inode): Promise<Buffer> {
    const more = inlineXattr(inode.raw, this.#inodeSize) ?? Buffer.alloc(0)
    return Buffer.concat([inode.block, more])
  }

  /**
   * File bytes from offset, following the block map; holes and unwritten extents read as zeros. Metadata
   * (directories) goes through the page cache, its scattered blocks fetched in a few merged reads.
   */
  async #readRange(
    inode: Inode,
    offset: number,
    length: number,
    metadata = false,
    into?: Buffer,
  ): Promise<Buffer> {
    const bs = this.#blockSize
    const runs = await this.#blockMap(inode)
    if (length === 0) return Buffer.alloc(0)
    const firstBlock = Math.floor(offset / bs)
    const lastBlock = Math.floor((offset + length - 1) / bs)
    const pieces: Array<{ disk: number; at: number; length: number }> = []
    for (const run of runs) {
      const a = Math.max(run.logical, firstBlock)
      const b = Math.min(run.logical + run.count - 1, lastBlock)
      if (a > b || run.physical < 0) continue
      const fileFrom = Math.max(offset, a * bs)
      const fileTo = Math.min(offset + length, (b + 1) * bs)
      const disk = (run.physical + (a - run.logical)) * bs + (fileFrom - a * bs)
      pieces.push({ disk, at: fileFrom - offset, length: fileTo - fileFrom })
    }
    const what = `inode ${inode.ino}`
    // Holes (bytes no run covers) read as zeros; data is read in place, straight into the answer.
    const covered = pieces.reduce((n, p) => n + p.length, 0)
    const out = into?.subarray(0, length) ?? Buffer.allocUnsafe(length)
    if (covered < length) out.fill(0)
    if (metadata) await this.#src.prefetch(pieces.map((p) => ({ offset: p.disk, length: p.length })))
    for (let i = 0; i < pieces.length; i += 8) {
      await Promise.all(
        pieces.slice(i, i + 8).map(async (p) => {
          if (metadata) (await this.#src.read(p.disk, p.length, what)).copy(out, p.at)
          else await this.#src.readDirect(p.disk, p.length, what, out.subarray(p.at, p.at + p.length))
        }),
      )
    }
    return out
  }

  /** The file's block runs in logical order (cached per inode). */
  async #blockMap(inode: Inode): Promise<Run[]> {
    const cached = this.#runs.get(inode.ino)
    if (cached !== undefined) return cached
    const runs: Run[] = []
    const maxLogical = Math.ceil(inode.size / this.#blockSize)
    if (inode.flags & FLAG_EXTENTS) await this.#extents(inode, inode.block, 0, runs)
    else await this.#indirect(inode, maxLogical, runs)
    for (const r of runs) {
      if (r.physical >= 0 && r.physical + r.count > this.#blocksCount) {
        throw corrupt(
          `Cannot read inode ${inode.ino}: its blocks ${r.physical}-${r.physical + r.count - 1} lie past the end of the file system (${this.#blocksCount} blocks)`,
        )
      }
    }
    if (this.#runs.size > 4096) this.#runs.clear()
    this.#runs.set(inode.ino, runs)
    return runs
  }

  async #extents(inode: Inode, node: Buffer, depth: number, runs: Run[]): Promise<void> {
    if (depth > 5)
      throw corrupt(`Cannot read inode ${inode.ino}: its extent tree is deeper than 5 levels (a loop?)`)
    if (node.length < 12 || node.readUInt16LE(0) !== EXTENT_MAGIC) {
      throw corrupt(`Cannot read inode ${inode.ino}: an extent tree node has no extent magic`)
    }
    const entries = node.readUInt16LE(2)
    const treeDepth = node.readUInt16LE(6)
    if (12 + entries * 12 > node.length)
      throw corrupt(`Cannot read inode ${inode.ino}: an extent node claims too many entries`)
    for (let i = 0; i < entries; i++) {
      const e = 12 + i * 12
      if (treeDepth === 0) {
        const logical = node.readUInt32LE(e)
        let len = node.readUInt16LE(e + 4)
        const unwritten = len > 32768
        if (unwritten) len -= 32768
        const physical = node.readUInt16LE(e + 6) * 2 ** 32 + node.readUInt32LE(e + 8)
        const prev = runs.at(-1)
        if (prev !== undefined && logical < prev.logical + prev.count) {
          throw corrupt(`Cannot read inode ${inode.ino}: its extents overlap or are out of order`)
        }
        runs.push({ logical, physical: unwritten ? -1 : physical, count: len })
      } else {
        const leaf = node.readUInt16LE(e + 8) * 2 ** 32 + node.readUInt32LE(e + 4)
        if (leaf >= this.#blocksCount) {
          throw corrupt(
            `Cannot read inode ${inode.ino}: an extent index points to block ${leaf}, past the end of the file system`,
          )
        }
        const child = await this.#src.read(
          leaf * this.#blockSize,
          this.#blockSize,
          `inode ${inode.ino} extent block`,
        )
        if (child.readUInt16LE(6) !== treeDepth - 1) {
          throw corrupt(
            `Cannot read inode ${inode.ino}: an extent block at ${leaf} has the wrong depth (a loop?)`,
          )
        }
        await this.#extents(inode, child, depth + 1, runs)
      }
    }
  }

  async #indirect(inode: Inode, maxLogical: number, runs: Run[]): Promise<void> {
    const bs = this.#blockSize
    const perBlock = bs / 4
    const push = (logical: number, physical: number) => {
      if (physical === 0) return
      const prev = runs.at(-1)
      if (
        prev !== undefined &&
        prev.logical + prev.count === logical &&
        prev.physical + prev.count === physical
      )
        prev.count++
      else runs.push({ logical, physical, count: 1 })
    }
    let logical = 0
    for (let i = 0; i < 12 && logical < maxLogical; i++, logical++)
      push(logical, inode.block.readUInt32LE(i * 4))
    const walk = async (blk: number, level: number): Promise<void> => {
      const span = perBlock ** level
      if (blk === 0) {
        logical += span
        return
      }
      if (blk >= this.#blocksCount) {
        throw corrupt(
          `Cannot read inode ${inode.ino}: an indirect block ${blk} lies past the end of the file system`,
        )
      }
      const buf = await this.#src.read(blk * bs, bs, `inode ${inode.ino} indirect block`)
      for (let i = 0; i < perBlock && logical < maxLogical; i++) {
        const p = buf.readUInt32LE(i * 4)
        if (level === 1) push(logical++, p)
        else await walk(p, level - 1)
      }
    }
    for (let level = 1; level <= 3 && logical < maxLogical; level++)
      await walk(inode.block.readUInt32LE((11 + level) * 4), level)
  }
}

/** The value of the in-inode xattr `system.data` (inline data past i_block), if any. */
function inlineXattr(raw: Buffer, inodeSize: number): Buffer | undefined {
  if (inodeSize <= 128) return undefined
  const start = 128 + raw.readUInt16LE(128)
  if (start + 4 > raw.length || raw.readUInt32LE(start) !== 0xea020000) return undefined
  const base = start + 4
  let at = base
  while (at + 16 <= raw.length && raw.readUInt32LE(at) !== 0) {
    const nameLen = raw[at]!
    const index = raw[at + 1]!
    const valueOffs = raw.readUInt16LE(at + 2)
    const valueSize = raw.readUInt32LE(at + 8)
    const name = raw.toString('latin1', at + 16, at + 16 + nameLen)
    if (index === 7 && name === 'data') {
      if (base + valueOffs + valueSize > raw.length) return undefined
      return raw.subarray(base + valueOffs, base + valueOffs + valueSize)
    }
    at += (16 + nameLen + 3) & ~3
  }
  return undefined
}

function hasSuper(group: number, roCompat: number): boolean {
  if (!(roCompat & 0x1) || group <= 1) return true
  for (const p of [3, 5, 7]) {
    let n = p
    while (n < group) n *= p
    if (n === group) return true
  }
  return false
}

/** The superblock fields the reader and the volume detector need. */
export interface ExtFields {
  fsType: 'ext2' | 'ext3' | 'ext4'
  label: string
  uuid: string
  blockSize: number
  blocksCount: number
  inodesCount: number
  inodesPerGroup: number
  blocksPerGroup: number
  firstDataBlock: number
  inodeSize: number
  descSize: number
  firstMetaBg: number
  incompat: number
  roCompat: number
}

/** Parses a 1 KiB ext superblock; undefined when its magic is not there. */
export function parseExtSuperblock(sb: Buffer): ExtFields | undefined {
  if (sb.length < 1024 || sb.readUInt16LE(56) !== SUPER_MAGIC) return undefined
  const compat = sb.readUInt32LE(92)
  const incompat = sb.readUInt32LE(96)
  const roCompat = sb.readUInt32LE(100)
  const is64 = (incompat & INCOMPAT_64BIT) !== 0
  const logBlock = sb.readUInt32LE(24)
  const rev = sb.readUInt32LE(76)
  const ext4ish = (incompat & ~(INCOMPAT_FILETYPE | 0x4 | INCOMPAT_META_BG)) !== 0 || (roCompat & ~0x7) !== 0
  const uuid = sb.subarray(104, 120).toString('hex')
  return {
    fsType: ext4ish || (incompat & INCOMPAT_EXTENTS) !== 0 ? 'ext4' : compat & 0x4 ? 'ext3' : 'ext2',
    label: sb.toString('utf8', 120, 136).replace(/\0.*$/s, ''),
    uuid: `${uuid.slice(0, 8)}-${uuid.slice(8, 12)}-${uuid.slice(12, 16)}-${uuid.slice(16, 20)}-${uuid.slice(20)}`,
    blockSize: logBlock <= 6 ? 1024 << logBlock : 0,
    blocksCount: sb.readUInt32LE(4) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0),
    inodesCount: sb.readUInt32LE(0),
    inodesPerGroup: sb.readUInt32LE(40),
    blocksPerGroup: sb.readUInt32LE(32),
    firstDataBlock: sb.readUInt32LE(20),
    inodeSize: rev >= 1 ? sb.readUInt16LE(88) : 128,
    descSize: is64 ? sb.readUInt16LE(0xfe) : 32,
    firstMetaBg: sb.readUInt32LE(0x104),
    incompat,
    roCompat,
  }
}

/** Why the superblock cannot be believed, or undefined when it can. */
function checkExtFields(f: ExtFields, volumeSize: number): string | undefined {
  if (f.blockSize === 0) return 'the superblock block size is not valid'
  if (f.inodeSize < 128 || f.inodeSize > f.blockSize || (f.inodeSize & (f.inodeSize - 1)) !== 0) {
    return `the superblock inode size ${f.inodeSize} is not valid`
  }
  if (f.blocksPerGroup === 0 || f.blocksPerGroup > f.blockSize * 8)
    return 'the superblock blocks-per-group is not valid'
  if (f.inodesPerGroup === 0 || f.inodesPerGroup > f.blockSize * 8)
    return 'the superblock inodes-per-group is not valid'
  if (f.blocksCount <= f.firstDataBlock) return 'the superblock block count is not valid'
  if (
    f.incompat & INCOMPAT_64BIT &&
    (f.descSize < 32 || f.descSize > 1024 || (f.descSize & (f.descSize - 1)) !== 0)
  ) {
    return `the group descriptor size ${f.descSize} is not valid`
  }
  if (f.blocksCount * f.blockSize > volumeSize) {
    return `it claims ${f.blocksCount * f.blockSize} bytes but the volume has ${volumeSize} (a truncated partition?)`
  }
  return undefined
}
