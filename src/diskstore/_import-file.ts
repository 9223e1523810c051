// Import of a raw disk image into the disk store: a pending (invisible) disk filled with WRITE
// records for the data runs of the file, published by one record once all of it is in.

import { constants } from 'node:fs'
import { type FileHandle, open as openFile } from 'node:fs/promises'
import { CairnError } from '../util/index.js'
import { applyWrite, type MetaOp, writeMeta } from './_apply-record.js'
import type { Room } from './_compact-log.js'
import type { ImageExtent } from './_image-stream.js'
import { checkDiskName, refText } from './_names.js'
import { dataRanges, forEachDataRun, rawSize } from './_raw-file.js'
import { type LogRecord, RecordType } from './_segment-log.js'
import type { ContainerState, DiskState, StoreState } from './_store-state.js'
import { checkDiskSize } from './_write-conditions.js'
import { type DiskInfo, type DiskRef, type LongOperationOptions, MAX_WRITE_SIZE, PAGE_SIZE } from './types.js'

const IMPORT_BLOCK = 4 * 1024 * 1024

/** What an import sees and does of the store (LogDiskStore provides it). */
export interface ImportHost {
  readonly state: StoreState
  /** Counts reloads after a failed append. */
  readonly epoch: number
  readonly closed: boolean
  now(): number
  /** Throws when the store is closed or broken. */
  open(): void
  container(account: string, name: string): ContainerState
  getDisk(ref: DiskRef): DiskInfo
  commit(op: MetaOp): Promise<void>
  commitNow(op: MetaOp): void
  append(type: number, meta: Uint8Array, data: Uint8Array | undefined, room: Room, what: string): LogRecord
  sameEpoch(epoch: number, what: string): void
}

/** Appends and applies one write, without waiting for durability. */
function writeNow(host: ImportHost, disk: DiskState, offset: number, data: Uint8Array): void {
  for (let at = 0; at < data.length; at += MAX_WRITE_SIZE) {
    const part = data.subarray(at, Math.min(data.length, at + MAX_WRITE_SIZE))
    const t = host.now()
    const writeId = host.state.nextWriteId
    const meta = writeMeta(disk.id, writeId, offset + at, part.length, t)
    const rec = host.append(RecordType.write, meta, part, 'grow', 'import into the disk store')
    applyWrite(host.state, disk.id, writeId, offset + at, part.length, t, rec.segment, rec.dataOffset)
  }
}

/** Imports a raw disk image as a new disk: invisible until all of it is in, dropped if cut short. */
export async function importFile(
  host: ImportHost,
  path: string,
  ref: DiskRef,
  options: LongOperationOptions = {},
): Promise<DiskInfo> {
  const what = `import "${path}" into disk "${refText(ref)}"`
  const c = host.container(ref.account, ref.container)
  checkDiskName(ref.disk)
  if (c.disks.has(ref.disk)) throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the disk exists`)
  const raw = rawSize(path)
  const size = Math.ceil(raw.size / PAGE_SIZE) * PAGE_SIZE
  checkDiskSize(size, what)
  let fh: FileHandle
  try {
    // Never through a link in the last component, never waiting on a FIFO (docs/security.md).
    fh = await openFile(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    throw new CairnError('FileNotFound', `Cannot ${what}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return await importExtents(host, ref, size, fileBlocks(fh, path, raw.size, size), what, options)
  } finally {
    await fh.close()
  }
}

/** The blocks of the data ranges of a file, read into one reused buffer (past its end: zeros). */
async function* fileBlocks(
  fh: FileHandle,
  path: string,
  bytes: number,
  size: number,
): AsyncGenerator<ImageExtent> {
  const buf = Buffer.allocUnsafe(IMPORT_BLOCK)
  const ranges = (await dataRanges(path, bytes)) ?? [{ start: 0, end: size }]
  for (const range of ranges) {
    for (let pos = range.start; pos < range.end; pos += IMPORT_BLOCK) {
      const want = Math.min(IMPORT_BLOCK, range.end - pos)
      let got = 0
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      if (got < want) buf.fill(0, got, want)
      yield { offset: pos, data: buf.subarray(0, want) }
    }
  }
}

/**
 * Imports an image sent as its data extents (the extent stream of `cairn disk import`) as a new disk
 * of `size` bytes: invisible until the last extent is in, dropped if the stream fails or is cut short.
 */
export async function importImage(
  host: ImportHost,
  ref: DiskRef,
  image: { size: number; extents: AsyncIterable<ImageExtent> },
  options: LongOperationOptions = {},
): Promise<DiskInfo> {
  const what = `import a streamed image into disk "${refText(ref)}"`
  const c = host.container(ref.account, ref.container)
  checkDiskName(ref.disk)
  if (c.disks.has(ref.disk)) throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the disk exists`)
  checkDiskSize(image.size, what)
  return importExtents(host, ref, image.size, image.extents, what, options)
}

/**
 * Fills a pending disk of `size` bytes with the data pages of `extents` (rising, whole pages, inside
 * the disk; zero pages stay holes) and publishes it with one fsync; on any failure the pending disk is
 * deleted. Each extent's bytes are written before the next is asked for.
 */
async function importExtents(
  host: ImportHost,
  ref: DiskRef,
  size: number,
  extents: AsyncIterable<ImageExtent>,
  what: string,
  options: LongOperationOptions,
): Promise<DiskInfo> {
  const { signal, onProgress } = options
  const id = host.state.nextDiskId++
  try {
    // Not waited for: a crash before the publish record drops the pending disk anyway.
    host.commitNow({
      op: 'createDisk',
      id,
      account: ref.account,
      container: ref.container,
      name: ref.disk,
      size,
      sequenceNumber: 0,
      metadata: {},
      content: {},
      incrementalCopy: false,
      pending: true,
      t: host.now(),
    })
    const disk = host.state.diskById(id)
    const epoch = host.epoch
    let end = 0
    for await (const { offset, data } of extents) {
      if (signal?.aborted) throw new CairnError('Cancelled', `Cannot ${what}: it was cancelled`)
      if (
        offset % PAGE_SIZE !== 0 ||
        data.length % PAGE_SIZE !== 0 ||
        offset < end ||
        offset + data.length > size
      )
        throw new CairnError(
          'ImageStreamInvalid',
          `Cannot ${what}: ${data.length} bytes at ${offset} are not whole 512-byte pages after ${end} inside its ${size} bytes`,
        )
      end = offset + data.length
      host.open()
      host.sameEpoch(epoch, what)
      const buf = Buffer.from(data.buffer, data.byteOffset, data.length)
      forEachDataRun(buf, buf.length, (s, e) => writeNow(host, disk, offset + s, buf.subarray(s, e)))
      onProgress?.({ bytesDone: end, bytesTotal: size })
    }
    if (signal?.aborted) throw new CairnError('Cancelled', `Cannot ${what}: it was cancelled`)
    onProgress?.({ bytesDone: size, bytesTotal: size })
    const target = host.container(ref.account, ref.container)
    if (target.disks.has(ref.disk))
      throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the disk was created meanwhile`)
    // One fsync makes the data and the publish record durable together.
    await host.commit({ op: 'publishDisk', id, t: host.now() })
  } catch (err) {
    if (host.state.disks.get(id)?.pending && !host.closed) {
      await host.commit({ op: 'deleteDisk', id, snapshots: 'include', t: host.now() }).catch(() => {})
    }
    throw err
  }
  return host.getDisk(ref)
}
