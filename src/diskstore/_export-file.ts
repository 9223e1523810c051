// Export of a disk or snapshot to a raw image file or a block device, from a pinned root (later
// writes do not show up half-way, and compaction keeps its data).

import { constants, rmSync, statSync } from 'node:fs'
import { type FileHandle, open as openFile } from 'node:fs/promises'
import { CairnError } from '../util/index.js'
import type { Root } from './_extent-tree.js'
import { forEachExtent } from './_extent-tree.js'
import { refText } from './_names.js'
import type { DiskState, Version } from './_store-state.js'
import type { ByteRange, DiskRef, LongOperationOptions } from './types.js'

const EXPORT_BLOCK = 4 * 1024 * 1024

/** What an export sees and does of the store (LogDiskStore provides it). */
export interface ExportHost {
  /** Roots an export is reading: their data stays live. */
  readonly pins: Root[]
  /** Counts reloads after a failed append. */
  readonly epoch: number
  /** Throws when the store is closed or broken. */
  open(): void
  disk(ref: DiskRef): DiskState
  version(disk: DiskState, snapshot: string | undefined): Version
  /** Gives a disk a new owner token: its later writes edit copies of the nodes its root has now. */
  share(disk: DiskState): void
  sameEpoch(epoch: number, what: string): void
  /** The bytes of a range of a root, read synchronously. */
  readRoot(root: Root, offset: number, length: number, what: string): Buffer
}

/** Writes a disk or snapshot, as of the call, to a raw image file or a block device. */
export async function exportFile(
  host: ExportHost,
  ref: DiskRef,
  path: string,
  options: LongOperationOptions & { snapshot?: string } = {},
): Promise<void> {
  const { signal, onProgress } = options
  const d = host.disk(ref)
  const v = host.version(d, options.snapshot)
  const what = `export disk "${refText(ref)}"${options.snapshot ? `@${options.snapshot}` : ''} to "${path}"`
  // Read a fixed root: later writes to the disk do not show up half-way (a live disk's root is
  // shared first, as a snapshot shares it, so its writes copy the nodes they edit instead of
  // changing this root's), and the pin keeps its data from compaction.
  if (options.snapshot === undefined) host.share(d)
  const root = v.root
  const size = v.size
  const ranges: ByteRange[] = []
  forEachExtent(root, 0, size, (s, e) => {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last.end === s) last.end = e
    else ranges.push({ start: s, end: e })
  })
  let blockDevice = false
  try {
    blockDevice = statSync(path).isBlockDevice()
  } catch {}
  if (blockDevice) {
    // A device keeps old bytes where the disk has holes: write those as zeros too.
    ranges.splice(0, ranges.length, { start: 0, end: size })
  }
  let total = 0
  for (const r of ranges) total += r.end - r.start
  host.pins.push(root)
  const epoch = host.epoch
  let fh: FileHandle | undefined
  let ok = false
  try {
    try {
      // Never through a link in the last component (docs/security.md).
      const flags = blockDevice
        ? constants.O_RDWR
        : constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC
      fh = await openFile(path, flags | constants.O_NOFOLLOW)
    } catch (err) {
      throw new CairnError('FileNotFound', `Cannot ${what}: ${(err as Error).message}`, { cause: err })
    }
    if (!blockDevice) await fh.truncate(size)
    let done = 0
    onProgress?.({ bytesDone: 0, bytesTotal: total })
    for (const r of ranges) {
      for (let at = r.start; at < r.end; at += EXPORT_BLOCK) {
        if (signal?.aborted) throw new CairnError('Cancelled', `Cannot ${what}: it was cancelled`)
        host.open()
        host.sameEpoch(epoch, what)
        const n = Math.min(EXPORT_BLOCK, r.end - at)
        const data = host.readRoot(root, at, n, what)
        let written = 0
        while (written < n) written += (await fh.write(data, written, n - written, at + written)).bytesWritten
        done += n
        onProgress?.({ bytesDone: done, bytesTotal: total })
      }
    }
    await fh.sync()
    ok = true
  } finally {
    host.pins.splice(host.pins.indexOf(root), 1)
    await fh?.close()
    if (!ok && fh !== undefined && !blockDevice) rmSync(path, { force: true })
  }
}
