import { CairnError } from '../util/index.js'
import type { BlockExtent, ExportInfo, ExportProvider, NbdExport } from './export-provider.js'

/** A read-only byte source with known holes (a mounted recovery point's disk). */
export interface ReadOnlyDisk {
  readonly size: number
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
  /** Ranges inside `[offset, offset + length)` that hold data, sorted and merged. */
  ranges(offset: number, length: number): Promise<{ start: number; end: number }[]>
}

/** Read-only exports by name, beside those of another provider (mounts of recovery points). */
export interface ReaderSource {
  /** Whether `name` is this source's to answer (then the other provider is not asked). */
  owns(name: string): boolean
  /** The disk served under `name` and its description; NbdExportNotFound when there is none (any more). */
  open(name: string): Promise<{ disk: ReadOnlyDisk; description: string }>
}

/**
 * An export provider that serves names a ReaderSource owns as read-only exports over its disks, and
 * every other name from `inner` (the disk store). The source's exports are never listed: their
 * names are secrets of their holders.
 */
export class ReaderExports implements ExportProvider {
  readonly #inner: ExportProvider
  readonly #source: ReaderSource

  constructor(inner: ExportProvider, source: ReaderSource) {
    this.#inner = inner
    this.#source = source
  }

  list(limit: number): ExportInfo[] | Promise<ExportInfo[]> {
    return this.#inner.list(limit)
  }

  async open(name: string): Promise<NbdExport> {
    if (!this.#source.owns(name)) return this.#inner.open(name)
    const { disk, description } = await this.#source.open(name)
    return new ReaderExport(name, description, disk)
  }

  flush(): Promise<void> {
    return this.#inner.flush()
  }
}

/** One connection's read-only export over a ReadOnlyDisk. */
class ReaderExport implements NbdExport {
  readonly name: string
  readonly description: string
  readonly size: number
  readonly readOnly = true
  readonly #disk: ReadOnlyDisk

  constructor(name: string, description: string, disk: ReadOnlyDisk) {
    this.name = name
    this.description = description
    this.size = disk.size
    this.#disk = disk
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.#disk.read(offset, length, into)
  }

  write(): Promise<void> {
    return Promise.reject(this.#readOnly())
  }

  async flush(): Promise<void> {}

  trim(): Promise<void> {
    return Promise.reject(this.#readOnly())
  }

  writeZeroes(): Promise<void> {
    return Promise.reject(this.#readOnly())
  }

  async blockStatus(offset: number, length: number, maxExtents: number): Promise<BlockExtent[]> {
    const end = Math.min(offset + length, this.size)
    const extents: BlockExtent[] = []
    const add = (n: number, hole: boolean): boolean => {
      const last = extents[extents.length - 1]
      if (last !== undefined && last.hole === hole) last.length += n
      else if (extents.length >= maxExtents) return false
      else extents.push({ length: n, hole, zero: hole })
      return true
    }
    let pos = offset
    for (const r of await this.#disk.ranges(offset, end - offset)) {
      const s = Math.max(r.start, pos)
      const e = Math.min(r.end, end)
      if (e <= s) continue
      if (s > pos && !add(s - pos, true)) return extents
      if (!add(e - s, false)) return extents
      pos = e
    }
    if (pos < end) add(end - pos, true)
    return extents
  }

  async close(): Promise<void> {}

  #readOnly(): CairnError {
    return new CairnError('InvalidRequest', `Cannot change export "${this.name}": it is read-only`)
  }
}
