// Test support: a small in-memory implementation of the part of the disk store that NBD uses,
// with the same observable rules (512-byte pages, 4 MiB writes, holes, read-only snapshots).
import type { ByteRange, DiskInfo, DiskRef, Listing } from '../diskstore/index.js'
import { MAX_WRITE_SIZE, PAGE_SIZE } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type { NbdDiskStore } from './_disk-export.js'

const BLOCK = 64 * 1024
const PAGES = BLOCK / PAGE_SIZE

interface Block {
  data: Buffer
  written: Uint8Array
}

interface Disk {
  ref: DiskRef
  size: number
  blocks: Map<number, Block>
  snapshots: Map<string, Map<number, Block>>
}

/** An in-memory NbdDiskStore for protocol tests. */
export class TestStore implements NbdDiskStore {
  readonly #disks = new Map<string, Disk>()
  flushes = 0

  createDisk(ref: DiskRef, size: number): void {
    this.#disks.set(key(ref), { ref, size, blocks: new Map(), snapshots: new Map() })
  }

  snapshot(ref: DiskRef, id: string): void {
    const d = this.#disk(ref)
    const copy = new Map<number, Block>()
    for (const [i, b] of d.blocks)
      copy.set(i, { data: Buffer.from(b.data), written: Uint8Array.from(b.written) })
    d.snapshots.set(id, copy)
  }

  listAccounts() {
    const names = [...new Set([...this.#disks.values()].map((d) => d.ref.account))].sort()
    return names.map((name) => ({
      name,
      region: 'local',
      redundancy: 'LRS',
      keys: ['', ''] as [string, string],
      createdOn: '',
    }))
  }

  listContainers(account: string): Listing<ReturnType<TestStore['getContainer']>> {
    const names = [
      ...new Set(
        [...this.#disks.values()].filter((d) => d.ref.account === account).map((d) => d.ref.container),
      ),
    ]
    return { items: names.sort().map((name) => this.getContainer(account, name)) }
  }

  getContainer(account: string, name: string) {
    return { account, name, metadata: {}, etag: '', lastModified: '', createdOn: '' }
  }

  listDisks(account: string, container: string, options?: { includeSnapshots?: boolean }): Listing<DiskInfo> {
    const items: DiskInfo[] = []
    for (const d of this.#disks.values()) {
      if (d.ref.account !== account || d.ref.container !== container) continue
      if (options?.includeSnapshots) for (const id of d.snapshots.keys()) items.push(this.getDisk(d.ref, id))
      items.push(this.getDisk(d.ref))
    }
    return { items }
  }

  getDisk(ref: DiskRef, snapshot?: string): DiskInfo {
    const d = this.#disk(ref)
    if (snapshot !== undefined && !d.snapshots.has(snapshot)) {
      throw new CairnError('SnapshotNotFound', `Snapshot ${snapshot} of "${ref.disk}" does not exist`)
    }
    return {
      ref: d.ref,
      ...(snapshot === undefined ? {} : { snapshot }),
      size: d.size,
      sequenceNumber: 0,
      metadata: {},
      content: {},
      etag: '',
      lastModified: '',
      createdOn: '',
      lease: { state: 'available', status: 'unlocked' },
      usedBytes: 0,
    }
  }

  async read(ref: DiskRef, offset: number, length: number, options?: { snapshot?: string }): Promise<Buffer> {
    const d = this.#disk(ref)
    const blocks = this.#blocks(d, options?.snapshot)
    if (offset < 0 || offset + length > d.size) throw new CairnError('RangeOutOfBounds', 'Read past the end')
    const out = Buffer.alloc(length)
    for (let pos = offset; pos < offset + length; ) {
      const i = Math.floor(pos / BLOCK)
      const within = pos - i * BLOCK
      const n = Math.min(BLOCK - within, offset + length - pos)
      blocks.get(i)?.data.copy(out, pos - offset, within, within + n)
      pos += n
    }
    return out
  }

  async writePages(
    ref: DiskRef,
    offset: number,
    data: Uint8Array,
  ): Promise<{ etag: string; lastModified: string; sequenceNumber: number }> {
    const d = this.#disk(ref)
    this.#checkRange(d, offset, data.length)
    if (data.length > MAX_WRITE_SIZE) throw new CairnError('WriteTooLarge', 'Write larger than 4 MiB')
    const src = Buffer.from(data.buffer, data.byteOffset, data.length)
    for (let pos = offset; pos < offset + data.length; ) {
      const i = Math.floor(pos / BLOCK)
      const within = pos - i * BLOCK
      const n = Math.min(BLOCK - within, offset + data.length - pos)
      let b = d.blocks.get(i)
      if (b === undefined) {
        b = { data: Buffer.alloc(BLOCK), written: new Uint8Array(PAGES) }
        d.blocks.set(i, b)
      }
      src.copy(b.data, within, pos - offset, pos - offset + n)
      b.written.fill(1, within / PAGE_SIZE, (within + n) / PAGE_SIZE)
      pos += n
    }
    return { etag: '', lastModified: '', sequenceNumber: 0 }
  }

  async clearPages(
    ref: DiskRef,
    offset: number,
    length: number,
  ): Promise<{ etag: string; lastModified: string; sequenceNumber: number }> {
    const d = this.#disk(ref)
    this.#checkRange(d, offset, length)
    for (let pos = offset; pos < offset + length; ) {
      const i = Math.floor(pos / BLOCK)
      const within = pos - i * BLOCK
      const n = Math.min(BLOCK - within, offset + length - pos)
      const b = d.blocks.get(i)
      if (b !== undefined) {
        b.data.fill(0, within, within + n)
        b.written.fill(0, within / PAGE_SIZE, (within + n) / PAGE_SIZE)
        if (!b.written.includes(1)) d.blocks.delete(i)
      }
      pos += n
    }
    return { etag: '', lastModified: '', sequenceNumber: 0 }
  }

  pageRanges(ref: DiskRef, options?: { snapshot?: string; offset?: number; length?: number }): ByteRange[] {
    const d = this.#disk(ref)
    const blocks = this.#blocks(d, options?.snapshot)
    const from = options?.offset ?? 0
    const to = options?.length === undefined ? d.size : from + options.length
    const out: ByteRange[] = []
    for (const i of [...blocks.keys()].sort((a, b) => a - b)) {
      const b = blocks.get(i) as Block
      for (let p = 0; p < PAGES; p++) {
        const start = i * BLOCK + p * PAGE_SIZE
        if (!b.written[p] || start + PAGE_SIZE <= from || start >= to) continue
        const last = out[out.length - 1]
        if (last !== undefined && last.end === start) last.end += PAGE_SIZE
        else out.push({ start, end: start + PAGE_SIZE })
      }
    }
    return out
  }

  async flush(): Promise<void> {
    this.flushes++
  }

  #disk(ref: DiskRef): Disk {
    const d = this.#disks.get(key(ref))
    if (d === undefined) throw new CairnError('DiskNotFound', `Disk "${ref.disk}" does not exist`)
    return d
  }

  #blocks(d: Disk, snapshot: string | undefined): Map<number, Block> {
    if (snapshot === undefined) return d.blocks
    const s = d.snapshots.get(snapshot)
    if (s === undefined) throw new CairnError('SnapshotNotFound', `Snapshot ${snapshot} does not exist`)
    return s
  }

  #checkRange(d: Disk, offset: number, length: number): void {
    if (offset % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0) {
      throw new CairnError('RangeNotAligned', `Range ${offset}+${length} is not page-aligned`)
    }
    if (offset + length > d.size) throw new CairnError('RangeOutOfBounds', 'Range past the end')
  }
}

const key = (ref: DiskRef) => `${ref.account}/${ref.container}/${ref.disk}`
