import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Job } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import {
  type FileEntry,
  type FileSystem,
  normalizePath,
  openFileSystem,
  openVolumes,
  type Volume,
} from '../filesystems/index.js'
import { CairnError, type DiskLabel, type HostPaths, isCairnError, parseDiskLabel } from '../util/index.js'
import {
  type ArchiveProgress,
  type ArchiveRoot,
  archiveRoots,
  MAX_ARCHIVE_PATHS,
  tarArchive,
  zipArchive,
} from './_file-archive.js'
import { removeTemporaryFile } from './_job-steps.js'
import { type EncodedPage, ListingCache } from './_listing-cache.js'
import { PIECE, sendPieces } from './_send-pieces.js'
import type { JobService, StartedJob } from './job-service.js'
import { openPointDisk, pointDiskSource } from './point-disk-readers.js'
import type { ProtectedItem, ProtectionStore, VmRecoveryPoint } from './protection-store.js'
import type { ReplicaItems } from './replica-items.js'
import type { DiskByteReader, VaultTransfer } from './vault-transfer.js'

/** Where in a recovery point: a disk (default `os`) and a partition (default: the first browsable one; null: the whole disk). */
export interface FileLocation {
  vault?: string
  disk?: string
  partition?: number | null
}

/** A volume of a recovery point's disk. */
export interface PointVolume extends Volume {
  disk: DiskLabel
}

/** One version of a file across the recovery points of a VM. */
export interface FileVersion {
  /** The points holding this very content (same size, mtime and SHA-256), oldest first. */
  points: { id: string; time: string }[]
  size: number
  mtime: number
  sha256: string
}

/** An archive format of downloads. */
export type ArchiveFormat = 'tar' | 'zip'

/** Open file systems kept between requests (a warm listing does no I/O of the index or the superblock). */
const OPEN_KEPT = 8
/** Bytes of encoded directory listings kept (a 10,000-entry folder takes about 1.5 MiB). */
const LISTINGS_KEPT = 32 * 1024 * 1024

interface Opened {
  fs: FileSystem
  reader: DiskByteReader
  /** The disk-store snapshot read, while the point is read from one (checked before each use). */
  snapshot?: { source: DiskRef; snapshot: string }
  disk: DiskLabel
  partition: number | null
}

/**
 * Browsing the file systems inside a VM's recovery points without restoring or mounting anything:
 * volumes, listings, stat, file reads, tar and zip archives (streamed, or written to a host file by a
 * job), and the history of one file across every point. Each disk is read from its snapshot while it
 * exists, else straight from the vault (src/filesystems does the reading).
 */
export class FileBrowser {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #vault: VaultTransfer | undefined
  readonly #jobs: JobService | undefined
  readonly #hostPaths: HostPaths | undefined
  readonly #snapshotExists: (ref: DiskRef, snapshot: string) => boolean
  readonly #reconcile: (vm: string) => Promise<unknown>
  readonly #replicas: ReplicaItems | undefined
  readonly #open = new Map<string, Promise<Opened>>()
  readonly #listings = new ListingCache(LISTINGS_KEPT)

  constructor(options: {
    store: ProtectionStore
    disks: DiskStore
    vault?: VaultTransfer | undefined
    jobs?: JobService
    hostPaths?: HostPaths
    snapshotExists: (ref: DiskRef, snapshot: string) => boolean
    reconcile: (vm: string) => Promise<unknown>
    /** The VMs of replica vaults, read from their replicated points (browsed under the vault's path). */
    replicaItems?: ReplicaItems
  }) {
    this.#store = options.store
    this.#disks = options.disks
    this.#vault = options.vault
    this.#jobs = options.jobs
    this.#hostPaths = options.hostPaths
    this.#snapshotExists = options.snapshotExists
    this.#reconcile = options.reconcile
    this.#replicas = options.replicaItems
  }

  /** Every volume of every disk of a point: partitions, their file systems, browsable or why not. */
  async volumes(vm: string, pointId: string, where: { vault?: string } = {}): Promise<PointVolume[]> {
    const { point, vault } = await this.#point(vm, pointId, where.vault)
    const out: PointVolume[] = []
    for (const d of point.disks) {
      const reader = await this.#reader(point, vault, d.name)
      try {
        for (const v of await openVolumes(reader)) out.push({ disk: d.name, ...v })
      } finally {
        await reader.close()
      }
    }
    return out
  }

  /**
   * One page of a directory's entries, sorted by name, as a JSON array ready to send (symlinks with
   * their targets, as `ls -l`): encoded once per directory and sliced for later pages.
   */
  async listPage(
    vm: string,
    pointId: string,
    path: string,
    options: FileLocation & { start?: number; limit?: number } = {},
  ): Promise<EncodedPage & { disk: DiskLabel; partition: number | null }> {
    const where = `${this.#key(vm, pointId, options)}\u0000${normalizePath(path)}`
    return this.#with(vm, pointId, options, async (o) => {
      const page = await this.#listings.page(
        where,
        o.fs,
        path,
        Math.max(0, options.start ?? 0),
        options.limit ?? Number.MAX_SAFE_INTEGER,
      )
      return { ...page, disk: o.disk, partition: o.partition }
    })
  }

  /** The entry at a path (a symlink is not followed). */
  stat(vm: string, pointId: string, path: string, options: FileLocation = {}): Promise<FileEntry> {
    return this.#with(vm, pointId, options, (o) => o.fs.stat(path))
  }

  /**
   * A file's bytes `[start, end)` (default the whole file) with its entry: as a stream (`body`), or
   * written to a Node writable such as an HTTP answer from a few reused buffers (`send`, no fresh
   * memory per MiB); a range past the end is clipped (InvalidRequest when it starts past the end).
   */
  async read(
    vm: string,
    pointId: string,
    path: string,
    options: FileLocation & { start?: number; end?: number } = {},
  ): Promise<{
    entry: FileEntry
    start: number
    end: number
    body: Readable
    send: (out: Parameters<typeof sendPieces>[0]) => Promise<void>
  }> {
    return this.#with(vm, pointId, options, async (o) => {
      const entry = await o.fs.stat(path)
      if (entry.type !== 'file')
        throw new CairnError(
          'FileSystemWrongType',
          `Cannot read ${entry.path}: it is a ${entry.type}, not a file`,
        )
      const start = options.start ?? 0
      const end = Math.min(options.end ?? entry.size, entry.size)
      if (start > end || (start >= entry.size && entry.size > 0))
        throw new CairnError(
          'InvalidRequest',
          `Cannot read bytes from ${start} of ${entry.path}: it holds ${entry.size}`,
        )
      const fs = o.fs
      const body = Readable.from(
        readAhead(start, end, (at) => fs.read(entry, at, Math.min(STREAM_PIECE, end - at))),
        { highWaterMark: 1 },
      )
      const send = (out: Parameters<typeof sendPieces>[0]) =>
        sendPieces(out, start, end, (at, length, into) => fs.read(entry, at, length, into))
      return { entry, start, end, body, send }
    })
  }

  /**
   * Folders and files (one path or several of one volume) as a streaming tar or zip archive, each under
   * its own name at the top (see archiveRoots); the entries answered are the archive's tops.
   */
  async archive(
    vm: string,
    pointId: string,
    paths: string | string[],
    options: FileLocation & { format: ArchiveFormat; signal?: AbortSignal },
  ): Promise<{ entries: FileEntry[]; body: Readable }> {
    return this.#with(vm, pointId, options, async (o) => {
      const roots = await this.#roots(o.fs, paths)
      const make = options.format === 'zip' ? zipArchive : tarArchive
      return {
        entries: roots.map((r) => r.entry),
        body: make(o.fs, roots, options.signal ? { signal: options.signal } : {}),
      }
    })
  }

  /**
   * Writes an archive of one path or several to a file under an export root, as a job with progress
   * (bytes of file content archived, of the total found by a first walk).
   */
  async archiveToFile(
    vm: string,
    pointId: string,
    paths: string | string[],
    options: FileLocation & { format: ArchiveFormat; to: string; overwrite?: boolean; startedBy?: string },
  ): Promise<StartedJob> {
    const host = this.#hostPaths
    const jobs = this.#jobs
    if (!host || !jobs)
      throw new CairnError(
        'ServiceUnavailable',
        'Cannot write archives to host files: this service has no jobs or export roots',
      )
    const overwrite = options.overwrite ? { overwrite: true } : {}
    await host.checkExport(options.to, overwrite)
    const { item, point } = await this.#point(vm, pointId, options.vault)
    const roots = await this.#with(vm, pointId, options, (o) => this.#roots(o.fs, paths))
    return jobs.start(
      {
        kind: 'download',
        resource: `vms/${vm}`,
        vm,
        itemId: item.id,
        vault: item.vault,
        startedBy: options.startedBy ?? 'local',
      },
      async (ctx) => {
        await ctx.phase('Count')
        let total = 0
        await this.#with(vm, point.id, options, async (o) => {
          for (const { entry } of roots)
            if (entry.type === 'file') total += entry.size
            else if (entry.type === 'dir')
              for await (const w of o.fs.walk(entry.path, { signal: ctx.signal }))
                if (w.entry.type === 'file') total += w.entry.size
        })
        ctx.progress({ bytesDone: 0, bytesTotal: total })
        await ctx.phase('Archive')
        let written = 0
        await host.export(options.to, overwrite, async (temporary) => {
          // Named in the job first: if the service dies, the next start removes the half-written file.
          ctx.details.temporaryFile = temporary
          await ctx.save()
          const { body } = await this.#with(vm, point.id, options, async (o) => ({
            body: (options.format === 'zip' ? zipArchive : tarArchive)(o.fs, roots, {
              signal: ctx.signal,
              onProgress: (p: ArchiveProgress) => ctx.progress({ bytesDone: p.bytes, bytesTotal: total }),
            }),
          }))
          const file = createWriteStream(temporary)
          body.on('data', (b: Buffer) => {
            written += b.length
          })
          await pipeline(body, file)
        })
        const { temporaryFile: _t, ...rest } = ctx.details
        return { ...rest, path: options.to, format: options.format, bytes: written, contentBytes: total }
      },
    )
  }

  /** The tops of an archive of `paths` (each stat'ed: a missing one fails the whole request). */
  async #roots(fs: FileSystem, paths: string | string[]): Promise<ArchiveRoot[]> {
    const list = typeof paths === 'string' ? [paths] : paths
    if (list.length === 0)
      throw new CairnError('InvalidRequest', 'Cannot make an archive of nothing: give at least one path')
    if (list.length > MAX_ARCHIVE_PATHS)
      throw new CairnError(
        'InvalidRequest',
        `Cannot archive ${list.length} paths at once: one archive takes at most ${MAX_ARCHIVE_PATHS} (archive a folder that holds them)`,
      )
    const entries: FileEntry[] = []
    for (const p of list) {
      if (p.includes('\u0000'))
        throw new CairnError('InvalidRequest', 'Cannot archive a path with a NUL character in it')
      entries.push(await fs.stat(p))
    }
    return archiveRoots(entries)
  }

  /**
   * The versions of one file across every recovery point of a VM, oldest first: points holding the
   * same content (size, mtime, SHA-256) are one version. Points where the path is missing or not a
   * file are left out.
   */
  async history(vm: string, path: string, options: FileLocation = {}): Promise<FileVersion[]> {
    let points: VmRecoveryPoint[]
    try {
      await this.#catalogItem(vm, options.vault)
      await this.#reconcile(vm)
      points = await this.#store.listRecoveryPoints(vm)
    } catch (err) {
      points = (await this.#replica(vm, options.vault, err)).points
    }
    const versions: FileVersion[] = []
    for (const p of points) {
      let entry: FileEntry
      let sha: string
      try {
        ;({ entry, sha } = await this.#with(vm, p.id, options, async (o) => {
          const e = await o.fs.stat(path)
          if (e.type !== 'file') throw new CairnError('FileSystemWrongType', `${e.path} is not a file`)
          const h = createHash('sha256')
          const buf = Buffer.allocUnsafe(Math.min(PIECE, e.size))
          for (let at = 0; at < e.size; at += PIECE)
            h.update(await o.fs.read(e, at, Math.min(PIECE, e.size - at), buf))
          return { entry: e, sha: h.digest('hex') }
        }))
      } catch (err) {
        if (
          isCairnError(err) &&
          (err.code === 'FileSystemPathNotFound' || err.code === 'FileSystemWrongType')
        )
          continue
        throw err
      }
      const last = versions.at(-1)
      if (last && last.sha256 === sha && last.size === entry.size && last.mtime === entry.mtime)
        last.points.push({ id: p.id, time: p.time })
      else
        versions.push({
          points: [{ id: p.id, time: p.time }],
          size: entry.size,
          mtime: entry.mtime,
          sha256: sha,
        })
    }
    return versions
  }

  /** Removes the temporary file of an archive job a stopped service cut short. */
  async cleanInterrupted(job: Job): Promise<string[]> {
    return job.kind === 'download' ? removeTemporaryFile(job) : []
  }

  /** Closes the open file systems. */
  async close(): Promise<void> {
    const open = [...this.#open.values()]
    this.#open.clear()
    for (const o of open) await (await o.catch(() => undefined))?.reader.close()
  }

  /** Runs `fn` on the open file system of a location; a snapshot deleted meanwhile is retried from the vault. */
  async #with<T>(
    vm: string,
    pointId: string,
    where: FileLocation,
    fn: (o: Opened) => Promise<T>,
  ): Promise<T> {
    const disk = diskOf(where)
    const key = this.#key(vm, pointId, where)
    for (let attempt = 0; ; attempt++) {
      let opening = this.#open.get(key)
      if (opening) {
        this.#open.delete(key)
        this.#open.set(key, opening)
      } else {
        opening = this.#openFs(vm, pointId, disk, where)
        this.#open.set(key, opening)
        opening.catch(() => this.#open.delete(key))
        while (this.#open.size > OPEN_KEPT) {
          const [oldest, o] = this.#open.entries().next().value as [string, Promise<Opened>]
          this.#open.delete(oldest)
          void o.then((x) => x.reader.close()).catch(() => {})
        }
      }
      const opened = await opening
      // The snapshot was deleted since: reopen from the vault before any byte is read.
      if (opened.snapshot && !this.#snapshotExists(opened.snapshot.source, opened.snapshot.snapshot)) {
        this.#open.delete(key)
        void opened.reader.close()
        if (attempt === 0) continue
      }
      try {
        return await fn(opened)
      } catch (err) {
        // The snapshot went away under an open file system: reopen (from the vault) once.
        if (attempt === 0 && isCairnError(err) && err.code === 'RecoveryPointNotFound') {
          this.#open.delete(key)
          continue
        }
        throw err
      }
    }
  }

  /** Names a volume of a point as a location gives it (the partition as asked: `auto` when not). */
  #key(vm: string, pointId: string, where: FileLocation): string {
    return `${vm}\u0000${pointId}\u0000${diskOf(where)}\u0000${where.partition === undefined ? 'auto' : String(where.partition)}`
  }

  async #openFs(vm: string, pointId: string, disk: DiskLabel, where: FileLocation): Promise<Opened> {
    const { point, vault } = await this.#point(vm, pointId, where.vault)
    const d = point.disks.find((x) => x.name === disk)
    const src = d ? pointDiskSource(point, d, vault, this.#snapshotExists) : undefined
    const reader = await this.#reader(point, vault, disk)
    try {
      const volumes = await openVolumes(reader)
      let volume: Volume | undefined
      if (where.partition === undefined) {
        volume = volumes.find((v) => v.supported)
        if (!volume) {
          const found = volumes.map(
            (v) => `${v.partition ?? 'disk'}: ${v.fsType}${v.reason ? ` (${v.reason})` : ''}`,
          )
          throw new CairnError(
            'FileSystemUnsupported',
            `Cannot browse disk ${disk} of recovery point ${point.id}: no volume holds a file system Cairn reads (${found.join('; ') || 'nothing found'})`,
          )
        }
      } else {
        volume = volumes.find((v) => v.partition === where.partition)
        if (!volume)
          throw new CairnError(
            'FileSystemPathNotFound',
            `Cannot browse ${where.partition === null ? 'the whole disk' : `partition ${where.partition}`} of disk ${disk}: its volumes are ${volumes.map((v) => v.partition ?? 'the whole disk').join(', ') || 'none'}`,
          )
      }
      const fs = await openFileSystem(reader, volume)
      return {
        fs,
        reader,
        disk,
        partition: volume.partition,
        ...(src?.from === 'Snapshot' ? { snapshot: { source: src.source, snapshot: src.snapshot } } : {}),
      }
    } catch (err) {
      await reader.close()
      throw err
    }
  }

  async #reader(point: VmRecoveryPoint, vault: string, disk: DiskLabel): Promise<DiskByteReader> {
    const d = point.disks.find((x) => x.name === disk)
    if (!d)
      throw new CairnError(
        'RecoveryPointDiskNotFound',
        `Cannot browse disk ${disk}: recovery point ${point.id} holds ${point.disks.map((x) => x.name).join(', ')}`,
      )
    return openPointDisk(pointDiskSource(point, d, vault, this.#snapshotExists), d.size, {
      disks: this.#disks,
      vault: this.#vault,
      cacheBytes: 32 * 1024 * 1024,
    })
  }

  async #point(
    vm: string,
    pointId: string,
    vault?: string,
  ): Promise<{ item: ProtectedItem; point: VmRecoveryPoint; vault: string }> {
    let item: ProtectedItem
    try {
      item = await this.#catalogItem(vm, vault)
    } catch (err) {
      // A VM of a replica vault: its points are read from the vault's manifests (vault tier only).
      const replica = await this.#replica(vm, vault, err)
      const point = replica.points.find((p) => p.id === pointId)
      if (!point)
        throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${pointId}" of VM "${vm}"`)
      return { item: replica.item, point, vault: replica.item.vault }
    }
    let point = await this.#store.findRecoveryPoint(pointId)
    if (!point || point.itemId !== item.id)
      throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${pointId}" of VM "${vm}"`)
    if (point.disks.some((d) => d.snapshot !== undefined && !this.#snapshotExists(d.source, d.snapshot))) {
      await this.#reconcile(vm)
      point = await this.#store.getRecoveryPoint(pointId)
    }
    return { item, point, vault: item.vault }
  }

  /** The VM's item in the catalog (in `vault` when given). */
  async #catalogItem(vm: string, vault: string | undefined): Promise<ProtectedItem> {
    const item = await this.#store.getItem(vm)
    if (vault !== undefined && item.vault !== vault)
      throw new CairnError('ProtectedItemNotFound', `VM "${vm}" is not protected in vault "${vault}"`)
    return item
  }

  /** After `err` (the catalog has no such item), the VM of that name in replica vault `vault`, or `err`. */
  async #replica(vm: string, vault: string | undefined, err: unknown) {
    const missing = isCairnError(err) && (err.code === 'VmNotFound' || err.code === 'ProtectedItemNotFound')
    const found = missing && vault !== undefined ? await this.#replicas?.find(vault, vm) : undefined
    if (!found) throw err
    return found
  }
}

/** The disk a location names (default `os`). */
function diskOf(where: FileLocation): DiskLabel {
  return where.disk === undefined ? 'os' : (parseDiskLabel(where.disk, 'disk') as DiskLabel)
}

/** Bytes of a file read at a time into the `body` stream of a read. */
const STREAM_PIECE = 1024 * 1024
/** Pieces of a file read while the one before is sent: the disk or vault read overlaps the socket write. */
const PIECES_AHEAD = 2

/** The pieces of [start, end) in order, PIECES_AHEAD of them read before they are asked for. */
async function* readAhead(
  start: number,
  end: number,
  readPiece: (at: number) => Promise<Buffer>,
): AsyncGenerator<Buffer> {
  const pending: Promise<Buffer>[] = []
  let next = start
  const more = () => {
    while (pending.length < PIECES_AHEAD && next < end) {
      const p = readPiece(next)
      // Read ahead of a reader that may go away: a failure is answered when its piece is asked for.
      p.catch(() => {})
      pending.push(p)
      next += STREAM_PIECE
    }
  }
  more()
  while (pending.length > 0) {
    const piece = await pending.shift()!
    more()
    yield piece
  }
}

export { MAX_ARCHIVE_PATHS, normalizePath }
