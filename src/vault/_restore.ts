import { CairnError, ioError } from '../util/index.js'
import { AsyncQueue } from './_async-queue.js'
import { ProgressMeter } from './_backup.js'
import { ChunkDamage } from './_chunk-codec.js'
import type { VaultCore } from './_core.js'
import { type Extent, walkLeaves } from './_disk-tree.js'
import { HandleCache } from './_handle-cache.js'
import { churnYoung, release } from './_memory.js'
import { Slots } from './_slots.js'
import type { OperationOptions, RecoveryPoint, RestoreSink } from './types.js'

/** Options of Vault.restore. */
export interface RestoreOptions extends OperationOptions {
  /**
   * Chunks read at once, or leaves (16 MiB of disk) when the workers write the target themselves
   * (default 4: more only adds buffers in flight, not speed).
   */
  concurrency?: number
  /** Pack files held open while idle (default: the vault's `openPacks`, 32); more are opened while in use. */
  openPacks?: number
  /**
   * Leaves (latin1 ids) known to restore: skipped. Once the whole disk restored, its leaves are added
   * (verify's `readData` reads each shared leaf once).
   */
  verifiedLeaves?: Set<string>
}

/**
 * Bytes of chunks (plaintext) a restore reader reads together: a leaf's (16 MiB of disk, a little more
 * when its extents use parts of bigger chunks), so that its chunks, written side by side in a pack,
 * come in one request per pack they lie in (an incremental's: the base's run and the new pages').
 */
const BATCH_BYTES = 20 * 1024 * 1024

/**
 * Pack files a restore's workers read, open in this process while chunks in them are being restored
 * (packs are immutable: an open file stays valid even if GC deletes the pack meanwhile). A pack's
 * descriptor lives from `acquire` to `release`; idle ones beyond the limit are closed and reopened on
 * demand (see HandleCache).
 */
class PackFiles {
  readonly #path: (name: string) => string
  readonly #cache: HandleCache

  constructor(path: (name: string) => string, limit: number) {
    this.#path = path
    this.#cache = new HandleCache(limit)
  }

  /** The pack's descriptor, held until `release`; null when the pack file is gone. */
  async acquire(name: string): Promise<number | null> {
    try {
      return (await this.#cache.acquire(this.#path(name))).fd
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw ioError(err, `Cannot open pack ${name}`)
    }
  }

  release(name: string): void {
    this.#cache.release(this.#path(name))
  }

  close(): Promise<void> {
    return this.#cache.close()
  }
}

/** Writes one disk of a recovery point into a sink; every chunk is checked before it is written. */
export async function runRestore(
  core: VaultCore,
  rp: RecoveryPoint,
  diskName: string,
  sink: RestoreSink,
  opts: RestoreOptions = {},
): Promise<{ bytesWritten: number }> {
  const disk = rp.disks.find((d) => d.name === diskName)
  if (!disk) {
    throw new CairnError(
      'RecoveryPointDiskNotFound',
      `Cannot restore disk "${diskName}": recovery point "${rp.id}" holds ${rp.disks.map((d) => `"${d.name}"`).join(', ') || 'no disks'}`,
    )
  }
  if (sink.size < disk.size) {
    throw new CairnError(
      'InvalidRequest',
      `Cannot restore disk "${diskName}": the target holds ${sink.size} bytes, the disk ${disk.size}`,
    )
  }
  const what = `Cannot restore disk "${diskName}" of recovery point "${rp.id}"`
  const pages = core.pageStore(undefined, what)
  const progress = new ProgressMeter(opts.onProgress)
  progress.phase = 'restore'
  progress.total = disk.size
  // A local vault restoring into a local file or device: the workers read each chunk from its pack
  // and write it to the target themselves; this thread only walks the tree and hands out chunks
  // (a chunk read here, moved to a worker, opened, moved back and written kept every thread idle about
  // half the time). Elsewhere chunks come through this thread and `sink.write`.
  const localPath = core.backend.localPath?.bind(core.backend)
  const out = sink.descriptors
  const packs = localPath && out ? new PackFiles(localPath, opts.openPacks ?? core.openPacks) : null
  const width = opts.concurrency ?? 4
  let cursor = 0
  let written = 0

  const zeroTo = async (end: number) => {
    if (end > cursor) {
      await sink.zero(cursor, end - cursor)
      progress.add(end - cursor, 0)
    }
    cursor = Math.max(cursor, end)
  }

  const tree = { root: disk.root ? Buffer.from(disk.root, 'hex') : null, depth: disk.depth }
  // The tree walk queues batches of chunk groups (a group: the extents of one chunk); `width` readers
  // drain the queue, so reads overlap across leaves and run ahead of the writes. A batch's chunks are
  // read together: those lying close in one pack come in one ranged read (one request on an object
  // store, not one per chunk).
  const queue = new AsyncQueue<Extent[][]>(width * 2)
  let failed: unknown
  // A reader does not wait for its chunk's writes: they run behind (up to `width` chunks' worth), so
  // the next read and open overlap the target's write latency (a direct write waits for the device).
  const writing = new Set<Promise<void>>()
  // Leaves handed to workers, at most `width` at once.
  const leafJobs = new Set<Promise<void>>()
  const slots = new Slots(width)
  const writeChunk = async (group: Extent[], plain: Buffer) => {
    for (const e of group) {
      await sink.write(e.start, plain.subarray(e.chunkOffset, e.chunkOffset + e.length))
      written += e.length
      progress.add(e.length, 0)
    }
    // Collections on this thread stall every read and write: free the chunk at once where the sink
    // allows (measured: 340 ms of main-thread collections in a 2.4 s restore of 1 GiB).
    if (sink.releasesData) release([plain])
    else churnYoung(plain.length)
  }
  /**
   * Has a worker restore a leaf's extents, reading their chunks from the packs itself; false (nothing
   * done) when a chunk is not in the index or its pack file is gone: the caller reads those here.
   */
  const leafInWorker = async (extents: Extent[]): Promise<boolean> => {
    if (!packs || !out) return false
    await core.loadIndex()
    const chunks: { id: Buffer; fd: number; position: number; length: number }[] = []
    const locs: { pack: string; first: number }[] = []
    const index = new Map<string, number>()
    const jobExtents: { start: number; length: number; chunkOffset: number; chunk: number }[] = []
    const held: string[] = []
    try {
      for (const e of extents) {
        const k = e.id.toString('latin1')
        let i = index.get(k)
        if (i === undefined) {
          const loc = core.index.get(e.id)
          if (!loc) return false
          const fd = await packs.acquire(loc.pack)
          if (fd === null) return false
          held.push(loc.pack)
          i = chunks.length
          index.set(k, i)
          chunks.push({ id: e.id, fd, position: loc.offset, length: loc.length })
          locs.push({ pack: loc.pack, first: e.start })
          if (e.chunkOffset + e.length > loc.rawLength) {
            throw new CairnError(
              'VaultCorrupt',
              `${what}: the extent at offset ${e.start} reaches past its chunk`,
            )
          }
        } else if (e.chunkOffset + e.length > (core.index.get(e.id)?.rawLength ?? 0)) {
          throw new CairnError(
            'VaultCorrupt',
            `${what}: the extent at offset ${e.start} reaches past its chunk`,
          )
        }
        jobExtents.push({ start: e.start, length: e.length, chunkOffset: e.chunkOffset, chunk: i })
      }
      opts.signal?.throwIfAborted()
      await slots.take()
      const job = core.pool.restoreLeaf({ chunks, extents: jobExtents, out }).then(
        (done) => {
          written += done
          progress.add(done, 0)
        },
        (err: unknown) => {
          if (err instanceof ChunkDamage) {
            const c = chunks[err.chunk ?? 0]
            const at = locs[err.chunk ?? 0]
            err = new CairnError(
              'VaultCorrupt',
              `${what}: at offset ${at?.first}: chunk ${c?.id.toString('hex').slice(0, 12)}… in ${at?.pack} is damaged: ${err.message}`,
            )
          }
          failed ??= err
        },
      )
      const pending = held.splice(0)
      const settled = job.finally(() => {
        for (const name of pending) packs.release(name)
        slots.give()
        leafJobs.delete(settled)
      })
      leafJobs.add(settled)
      return true
    } finally {
      for (const name of held) packs.release(name)
    }
  }
  /**
   * An object store restoring into a local file or device: this thread fetches a leaf's blobs (a pack's
   * run at a time) and a worker opens them and writes the target, as from a folder; plaintexts never
   * come through this thread. At most `width` leaves are fetched or restored at once.
   */
  const remoteToFile = !localPath && out !== undefined
  const leafFetched = async (extents: Extent[]): Promise<void> => {
    if (!out) return
    const index = new Map<string, number>()
    const ids: Buffer[] = []
    const first: number[] = []
    const jobExtents: { start: number; length: number; chunkOffset: number; chunk: number }[] = []
    for (const e of extents) {
      const k = e.id.toString('latin1')
      let i = index.get(k)
      if (i === undefined) {
        i = ids.length
        index.set(k, i)
        ids.push(e.id)
        first.push(e.start)
      }
      jobExtents.push({ start: e.start, length: e.length, chunkOffset: e.chunkOffset, chunk: i })
    }
    opts.signal?.throwIfAborted()
    await slots.take()
    const job = (async () => {
      const { blobs, memory } = await core.fetchBlobs(ids, (i) => `${what}: at offset ${first[i]}`)
      try {
        for (const e of jobExtents) {
          if (e.chunkOffset + e.length > blobs[e.chunk]!.loc.rawLength)
            throw new CairnError(
              'VaultCorrupt',
              `${what}: the extent at offset ${e.start} reaches past its chunk`,
            )
        }
      } catch (err) {
        for (const m of memory) core.readBuffers.give(m)
        throw err
      }
      try {
        // The reads' memory moves to the worker and comes back for the next reads.
        const done = await core.pool.restoreLeaf(
          {
            chunks: blobs.map(({ blob, loc }, i) => ({
              id: ids[i]!,
              fd: -1,
              position: 0,
              length: loc.length,
              blob,
            })),
            extents: jobExtents,
            out,
          },
          { memory, returned: (m) => core.readBuffers.give(m) },
        )
        written += done
        progress.add(done, 0)
      } catch (err) {
        if (err instanceof ChunkDamage) {
          const c = err.chunk ?? 0
          throw new CairnError(
            'VaultCorrupt',
            `${what}: at offset ${first[c]}: chunk ${ids[c]?.toString('hex').slice(0, 12)}… in ${blobs[c]?.loc.pack} is damaged: ${err.message}`,
          )
        }
        throw err
      }
    })().catch((err: unknown) => {
      failed ??= err
    })
    const settled = job.finally(() => {
      slots.give()
      leafJobs.delete(settled)
    })
    leafJobs.add(settled)
  }
  const reader = async () => {
    for (let batch = await queue.next(); batch; batch = await queue.next()) {
      try {
        opts.signal?.throwIfAborted()
        const groups = batch
        const plains = await core.readChunks(
          groups.map((g) => g[0]!.id),
          (i) => `${what}: at offset ${groups[i]![0]!.start}`,
        )
        groups.forEach((group, i) => {
          for (const e of group) {
            if (e.chunkOffset + e.length > plains[i]!.length) {
              throw new CairnError(
                'VaultCorrupt',
                `${what}: the extent at offset ${e.start} reaches past its chunk`,
              )
            }
          }
        })
        const w = (async () => {
          for (const [i, group] of groups.entries()) await writeChunk(group, plains[i]!)
        })().catch((err: unknown) => {
          failed ??= err
          queue.close(true)
        })
        writing.add(w)
        void w.finally(() => writing.delete(w))
        // Half as many batches being written as read: each is up to a leaf of plaintext.
        while (writing.size >= Math.max(1, width / 2)) await Promise.race(writing)
      } catch (err) {
        failed ??= err
        queue.close(true)
      }
    }
  }
  const readers = Promise.all(Array.from({ length: width }, reader)).then(async () => {
    while (writing.size > 0) await Promise.all(writing)
  })
  const walked: string[] = []
  try {
    await walkLeaves(pages, tree, async (_start, extents, leafId) => {
      if (failed) throw failed
      opts.signal?.throwIfAborted()
      if (opts.verifiedLeaves) {
        const k = leafId.toString('latin1')
        if (opts.verifiedLeaves.has(k)) return
        walked.push(k)
      }
      for (const e of extents) {
        await zeroTo(e.start)
        cursor = e.start + e.length
      }
      if (remoteToFile) return leafFetched(extents)
      if (await leafInWorker(extents)) return
      // Each chunk is read and opened once per leaf, however many extents share it.
      const byChunk = new Map<string, Extent[]>()
      for (const e of extents) {
        const k = e.id.toString('latin1')
        const list = byChunk.get(k)
        if (list) list.push(e)
        else byChunk.set(k, [e])
      }
      let batch: Extent[][] = []
      let bytes = 0
      for (const group of byChunk.values()) {
        const size = core.index.get(group[0]!.id)?.rawLength ?? core.config.chunkSize
        if (batch.length > 0 && bytes + size > BATCH_BYTES) {
          await queue.push(batch)
          batch = []
          bytes = 0
        }
        batch.push(group)
        bytes += size
      }
      if (batch.length > 0) await queue.push(batch)
    })
  } catch (err) {
    failed ??= err
  } finally {
    queue.close(failed !== undefined)
  }
  await readers
  while (leafJobs.size > 0) await Promise.all(leafJobs)
  await packs?.close()
  if (failed) {
    if (opts.signal?.aborted)
      throw new CairnError('Cancelled', `The restore of disk "${diskName}" was cancelled`)
    throw ioError(failed, what)
  }
  await zeroTo(disk.size)
  for (const k of walked) opts.verifiedLeaves?.add(k)
  progress.finish()
  return { bytesWritten: written }
}
