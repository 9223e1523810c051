// FAT12/16/32 reader over a CachedSource, with VFAT long names.
//
// Layout (Microsoft's FAT specification; the boot sector in _fat-boot.ts): the FAT after the reserved
// sectors (12, 16 or 28 bits per cluster; >= 0xFF8/0xFFF8/0x0FFFFFF8 ends a chain, 0xFF7/… marks a bad
// cluster), then (FAT12/16) the fixed root directory, then the clusters, numbered from 2. A directory is
// 32-byte entries: first byte 0x00 ends it, 0xE5 marks a deleted entry (never listed); attribute 0x0F is a
// long-name piece (sequence in byte 0, 0x40 on the last; 13 UTF-16LE units at 1, 14, 28; the checksum of
// the short name at 13), 0x08 a volume label, 0x10 a directory. The short entry: name 8+3 (byte 12 bits
// 0x08/0x10 lower-case them), first cluster high at 20 (FAT32) and low at 26, write time at 22, date at
// 24 (local time; read as UTC), size at 28. Chains are bounded by the cluster count and checked for loops.
import { BaseFileSystem, type Node } from './_base-file-system.js'
import type { CachedSource } from './_cached-source.js'
import { corrupt } from './_errors.js'
import { type FatBoot, parseFatBoot } from './_fat-boot.js'
import type { FileEntry, VolumeType } from './types.js'

interface FatHandle {
  /** First cluster (0 for an empty file, and for the FAT12/16 root). */
  cluster: number
  root: boolean
}

const MAX_DIR_ENTRIES = 65536

/** Reader of one FAT12/16/32 file system. */
export class FatFileSystem extends BaseFileSystem<FatHandle> {
  readonly type: VolumeType = 'fat'
  readonly fsType: string
  protected override caseInsensitive = true
  readonly #src: CachedSource
  readonly #boot: FatBoot
  readonly #chains = new Map<number, number[]>()

  private constructor(src: CachedSource, boot: FatBoot) {
    super()
    this.#src = src
    this.#boot = boot
    this.fsType = boot.fsType
    if (boot.label !== '') this.label = boot.label
  }

  /** Opens the file system: checks the boot sector and that its regions fit the volume. */
  static async open(src: CachedSource): Promise<FatFileSystem> {
    const boot = parseFatBoot(await src.read(0, Math.min(src.size, 512), 'the FAT boot sector'))
    if (boot === undefined)
      throw corrupt('Cannot open the FAT file system: its boot sector is not a valid FAT one')
    const end = boot.dataStart + boot.clusterCount * boot.clusterSize
    if (end > src.size) {
      throw corrupt(
        `Cannot open the FAT file system: it claims ${end} bytes but the volume has ${src.size} (truncated?)`,
      )
    }
    if (boot.fsType === 'fat32' && (boot.rootCluster < 2 || boot.rootCluster >= boot.clusterCount + 2)) {
      throw corrupt(`Cannot open the FAT file system: its root cluster ${boot.rootCluster} does not exist`)
    }
    return new FatFileSystem(src, boot)
  }

  protected async rootNode(): Promise<Node<FatHandle>> {
    const cluster = this.#boot.fsType === 'fat32' ? this.#boot.rootCluster : 0
    return {
      entry: {
        name: '/',
        type: 'dir',
        size: 0,
        mode: 0o40755,
        uid: 0,
        gid: 0,
        mtime: 0,
        id: 'root',
        nlink: 1,
      },
      handle: { cluster, root: true },
    }
  }

  protected async readDirectory(node: Node<FatHandle>): Promise<Array<Node<FatHandle>>> {
    const b = this.#boot
    let data: Buffer
    if (node.handle.root && b.fsType !== 'fat32') {
      data = await this.#src.read(b.rootDirStart, b.rootEntries * 32, 'the FAT root directory')
    } else {
      if (node.handle.cluster === 0)
        throw corrupt(`Cannot list "${node.entry.name}": its directory entry has no first cluster`)
      const chain = await this.#chain(node.handle.cluster)
      if (chain.length * b.clusterSize > MAX_DIR_ENTRIES * 32) {
        throw corrupt(`Cannot list "${node.entry.name}": the directory is longer than FAT allows`)
      }
      const runs = clusterRuns(chain)
      await this.#src.prefetch(
        runs.map((r) => ({ offset: this.#clusterOffset(r.first), length: r.count * b.clusterSize })),
      )
      const parts: Buffer[] = []
      for (const r of runs)
        parts.push(
          await this.#src.read(this.#clusterOffset(r.first), r.count * b.clusterSize, 'a FAT directory'),
        )
      data = Buffer.concat(parts)
    }
    return this.#parseDirectory(data, node.entry.id)
  }

  protected async readData(
    node: Node<FatHandle>,
    offset: number,
    length: number,
    into?: Buffer,
  ): Promise<Buffer> {
    const cs = this.#boot.clusterSize
    const chain = await this.#chain(node.handle.cluster)
    if (chain.length * cs < node.entry.size) {
      throw corrupt(
        `Cannot read "${node.entry.name}": its cluster chain holds ${chain.length * cs} bytes of its ${node.entry.size}`,
      )
    }
    const out = into?.subarray(0, length).fill(0) ?? Buffer.alloc(length)
    const first = Math.floor(offset / cs)
    const last = Math.floor((offset + length - 1) / cs)
    const runs = clusterRuns(chain.slice(first, last + 1))
    let index = first
    const reads: Array<Promise<void>> = []
    for (const r of runs) {
      const fileFrom = Math.max(offset, index * cs)
      const fileTo = Math.min(offset + length, (index + r.count) * cs)
      const disk = this.#clusterOffset(r.first) + (fileFrom - index * cs)
      const at = fileFrom - offset
      reads.push(
        this.#src
          .readDirect(
            disk,
            fileTo - fileFrom,
            `"${node.entry.name}"`,
            out.subarray(at, at + fileTo - fileFrom),
          )
          .then(() => {}),
      )
      if (reads.length >= 8) await Promise.all(reads.splice(0))
      index += r.count
    }
    await Promise.all(reads)
    return out
  }

  protected async readTarget(): Promise<string> {
    throw corrupt('FAT has no symlinks')
  }

  #clusterOffset(cluster: number): number {
    return this.#boot.dataStart + (cluster - 2) * this.#boot.clusterSize
  }

  /** The clusters of a chain, in order; a loop, a free or bad cluster, or one out of range is corruption. */
  async #chain(start: number): Promise<number[]> {
    if (start === 0) return []
    const cached = this.#chains.get(start)
    if (cached !== undefined) return cached
    const b = this.#boot
    const max = b.clusterCount + 2
    const bits = b.fsType === 'fat12' ? 12 : b.fsType === 'fat16' ? 16 : 28
    const endMark = bits === 12 ? 0xff8 : bits === 16 ? 0xfff8 : 0x0ffffff8
    const chain: number[] = []
    const seen = new Set<number>()
    let c = start
    for (;;) {
      if (c < 2 || c >= max)
        throw corrupt(`Cannot follow the FAT chain from cluster ${start}: cluster ${c} does not exist`)
      if (seen.has(c))
        throw corrupt(`Cannot follow the FAT chain from cluster ${start}: it loops at cluster ${c}`)
      seen.add(c)
      chain.push(c)
      const next = await this.#fatEntry(c, bits)
      if (next >= endMark) break
      if (next === endMark - 1)
        throw corrupt(`Cannot follow the FAT chain from cluster ${start}: cluster ${c} is marked bad`)
      if (next === 0)
        throw corrupt(`Cannot follow the FAT chain from cluster ${start}: it runs into a free cluster`)
      c = next
    }
    if (this.#chains.size > 4096) this.#chains.clear()
    this.#chains.set(start, chain)
    return chain
  }

  async #fatEntry(c: number, bits: number): Promise<number> {
    const fat = this.#boot.fatStart
    if (bits === 12) {
      const at = fat + c + (c >> 1)
      const v = (this.#src.cached(at, 2) ?? (await this.#src.read(at, 2, 'the FAT'))).readUInt16LE(0)
      return c & 1 ? v >> 4 : v & 0xfff
    }
    if (bits === 16) {
      const at = fat + c * 2
      return (this.#src.cached(at, 2) ?? (await this.#src.read(at, 2, 'the FAT'))).readUInt16LE(0)
    }
    const at = fat + c * 4
    return (this.#src.cached(at, 4) ?? (await this.#src.read(at, 4, 'the FAT'))).readUInt32LE(0) & 0x0fffffff
  }

  #parseDirectory(data: Buffer, dirId: string): Array<Node<FatHandle>> {
    const nodes: Array<Node<FatHandle>> = []
    let lfn: string[] = []
    let lfnSum = -1
    let lfnNext = 0
    for (let i = 0; i + 32 <= data.length; i += 32) {
      const e = data.subarray(i, i + 32)
      const first = e[0]!
      if (first === 0) break
      const attr = e[11]!
      if (first === 0xe5) {
        lfn = []
        continue
      }
      if ((attr & 0x3f) === 0x0f) {
        const seq = first & 0x1f
        if (first & 0x40) {
          lfn = []
          lfnSum = e[13]!
          lfnNext = seq
        }
        if (seq !== lfnNext || seq === 0 || e[13] !== lfnSum) {
          lfn = []
          lfnNext = -1
          continue
        }
        let units = ''
        for (const [from, to] of [
          [1, 11],
          [14, 26],
          [28, 32],
        ] as const)
          units += e.toString('utf16le', from, to)
        lfn[seq - 1] = units
        lfnNext = seq - 1
        continue
      }
      const longName = lfn.length > 0 && lfnNext === 0 && checksum(e) === lfnSum ? lfn.join('') : undefined
      lfn = []
      if (attr & 0x08) continue // volume label
      const short = shortName(e)
      if (short === '.' || short === '..') continue
      const name = longName === undefined ? short : trimLongName(longName)
      const cluster = (this.#boot.fsType === 'fat32' ? e.readUInt16LE(20) * 65536 : 0) + e.readUInt16LE(26)
      const isDir = (attr & 0x10) !== 0
      const entry: Omit<FileEntry, 'path'> = {
        name,
        type: isDir ? 'dir' : 'file',
        size: isDir ? 0 : e.readUInt32LE(28),
        mode: isDir ? 0o40755 : attr & 0x01 ? 0o100444 : 0o100644,
        uid: 0,
        gid: 0,
        mtime: fatTime(e.readUInt16LE(24), e.readUInt16LE(22)),
        id: isDir ? `d${cluster}` : `f${dirId}:${i / 32}`,
        nlink: 1,
      }
      nodes.push({ entry, handle: { cluster, root: false } })
    }
    return nodes
  }
}

function clusterRuns(chain: number[]): Array<{ first: number; count: number }> {
  const runs: Array<{ first: number; count: number }> = []
  for (const c of chain) {
    const r = runs.at(-1)
    if (r !== undefined && r.first + r.count === c) r.count++
    else runs.push({ first: c, count: 1 })
  }
  return runs
}

function checksum(e: Buffer): number {
  let sum = 0
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + e[i]!) & 0xff
  return sum
}

function shortName(e: Buffer): string {
  const raw = Buffer.from(e.subarray(0, 11))
  if (raw[0] === 0x05) raw[0] = 0xe5
  let base = raw.toString('latin1', 0, 8).trimEnd()
  let ext = raw.toString('latin1', 8, 11).trimEnd()
  if (e[12]! & 0x08) base = base.toLowerCase()
  if (e[12]! & 0x10) ext = ext.toLowerCase()
  return ext === '' ? base : `${base}.${ext}`
}

function trimLongName(s: string): string {
  const end = s.indexOf('\0')
  return end < 0 ? s : s.slice(0, end)
}

/** A FAT date and time (local, 2-second steps) as ms, read as UTC. */
function fatTime(date: number, time: number): number {
  if (date === 0) return 0
  return Date.UTC(
    1980 + (date >> 9),
    ((date >> 5) & 15) - 1,
    date & 31,
    time >> 11,
    (time >> 5) & 63,
    (time & 31) * 2,
  )
}
