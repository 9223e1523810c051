// ReadOperations: the read side of LogDiskStore: reads of a disk or snapshot (checked, then served
// by _read-root.ts, with data written directly read on the thread pool), page ranges and diffs
// between versions (_diff-versions.ts). Nothing here appends to the log.

import { CairnError } from '../util/index.js'
import { diffVersions, pageRangesOf } from './_diff-versions.js'
import { refText } from './_names.js'
import type { OperationHost } from './_operation-host.js'
import type { ByteRange, DiskDiff, DiskRef, DiskStore } from './types.js'

const MAX_READ = 1024 ** 3

/** Options of diff: the base version (of this disk or another of its lineage), the other one, a range and a page. */
export type DiffOptions = Parameters<DiskStore['diff']>[1]

/** The read methods of the disk store. */
export class ReadOperations {
  readonly #host: OperationHost

  constructor(host: OperationHost) {
    this.#host = host
  }

  async read(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Promise<Buffer> {
    // Bytes a direct append wrote are read on the thread pool (they come from the device, not the
    // cache); the rest at once. The answer is the disk as of this call either way.
    const later: Promise<void>[] = []
    const out = this.#readChecked(ref, offset, length, options, later)
    if (later.length === 0) return out
    // Every read must end before the buffer goes back to the caller, failed or not.
    const settled = await Promise.allSettled(later)
    const failed = settled.find((r) => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return out
  }

  /** `read` without the promise: the bytes as of this instant. */
  readSync(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer } = {},
  ): Buffer {
    return this.#readChecked(ref, offset, length, options)
  }

  #readChecked(
    ref: DiskRef,
    offset: number,
    length: number,
    options: { snapshot?: string; into?: Buffer },
    later?: Promise<void>[],
  ): Buffer {
    const d = this.#host.disk(ref)
    const v = this.#host.version(d, options.snapshot)
    const what = `read ${length} bytes at ${offset} of disk "${refText(ref)}"`
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new CairnError('InvalidRequest', `Cannot ${what}: offset and length must be whole numbers`)
    }
    if (offset + length > v.size) {
      throw new CairnError('RangeOutOfBounds', `Cannot ${what}: the disk ends at ${v.size}`)
    }
    if (length > MAX_READ)
      throw new CairnError('ReadTooLarge', `Cannot ${what}: a single read is limited to 1 GiB`)
    const into = options.into
    if (into !== undefined && into.length < length) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot ${what}: the buffer given holds only ${into.length} bytes`,
      )
    }
    return this.#host.readRoot(v.root, offset, length, what, into?.subarray(0, length), later)
  }

  pageRanges(
    ref: DiskRef,
    options: { snapshot?: string; offset?: number; length?: number } = {},
  ): ByteRange[] {
    const d = this.#host.disk(ref)
    const v = this.#host.version(d, options.snapshot)
    return pageRangesOf(v, options.offset, options.length, `list the page ranges of "${refText(ref)}"`)
  }

  diff(ref: DiskRef, options: DiffOptions): DiskDiff {
    const d = this.#host.disk(ref)
    const base = options.fromDisk === undefined ? d : this.#host.disk(options.fromDisk)
    const from = this.#host.version(base, options.from)
    const to = this.#host.version(d, options.to)
    const fromText =
      options.fromDisk === undefined ? options.from : `"${refText(options.fromDisk)}"@${options.from}`
    const what = `diff disk "${refText(ref)}" from ${fromText} to ${options.to ?? 'the live disk'}`
    // Versions of one disk are always diffed (its snapshots may predate an overwrite); across disks,
    // only within a lineage.
    if (base !== d && from.lineage !== to.lineage)
      throw new CairnError(
        'LineageMismatch',
        `Cannot ${what}: the two are not of one lineage (neither was copied from the other or from a common disk)`,
      )
    return diffVersions(from, to, options, what, base !== d)
  }
}
