// Disk-store disks as vault sources and sinks: a backup snapshots the disks at one instant and reads
// only what the snapshot diff says changed since the previous recovery point's snapshot; a restore
// writes a recovery point's disk into a new or an existing disk-store disk.
import {
  type ByteRange,
  type DiskRef,
  type DiskStore,
  MAX_WRITE_SIZE,
  PAGE_SIZE,
} from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type {
  BackupCheckpoint,
  BackupSource,
  Consistency,
  OperationOptions,
  RecoveryPoint,
  RestoreSink,
  SourceChanges,
  Vault,
} from '../vault/index.js'

/** A disk to back up and how it is named in the recovery point. */
export interface DiskToBackUp {
  ref: DiskRef
  /** Name inside the recovery point (default: the disk's name). */
  name?: string
  lun?: number
}

/** Every changed and cleared range between two snapshots of a disk (all pages of the diff). */
function fullDiff(store: DiskStore, ref: DiskRef, from: string, to: string): SourceChanges {
  const changed: ByteRange[] = []
  const cleared: ByteRange[] = []
  let marker: string | undefined
  do {
    const page = store.diff(ref, { from, to, ...(marker ? { marker } : {}) })
    changed.push(...page.pageRanges)
    cleared.push(...page.clearRanges)
    marker = page.nextMarker
  } while (marker)
  return { changed, cleared }
}

/**
 * A snapshot of a disk as a backup source. With `baseSnapshot` still present, the source carries the
 * diff since it; without (or when it is gone) the vault falls back to comparing checksums.
 */
export function diskSource(
  store: DiskStore,
  ref: DiskRef,
  options: { snapshot: string; name?: string; lun?: number; baseSnapshot?: string },
): BackupSource {
  const info = store.getDisk(ref, options.snapshot)
  const source: BackupSource = {
    name: options.name ?? ref.disk,
    size: info.size,
    snapshot: options.snapshot,
    read: (offset, length) => store.read(ref, offset, length, { snapshot: options.snapshot }),
    ranges: async () => store.pageRanges(ref, { snapshot: options.snapshot }),
  }
  if (options.lun !== undefined) source.lun = options.lun
  const base = options.baseSnapshot
  if (base && store.listSnapshots(ref).some((s) => s.snapshot === base)) {
    source.changes = fullDiff(store, ref, base, options.snapshot)
  }
  return source
}

/** Options of backupDisks. */
export interface BackupDisksOptions extends OperationOptions {
  item: { kind: string; name: string; config?: Record<string, unknown> }
  consistency?: Consistency
  expiresAt?: Date | null
  /** Build on this recovery point (default: the item's latest; null: a full backup). */
  base?: string | null
  /** The snapshots an earlier run of this backup took, one per disk (a resumed backup reads them). */
  snapshots?: string[]
  /** Told the snapshots once taken, before any data moves (a job records them to resume from). */
  onSnapshots?: (snapshots: string[]) => Promise<void>
  /** The vault's checkpoint of an earlier run: the backup goes on from it (see Vault.backup). */
  resume?: BackupCheckpoint
  onCheckpoint?: (checkpoint: BackupCheckpoint) => void
  onResume?: (bytesDone: number) => void
  /** Asked when aborted: true keeps the snapshots and the vault's lock for a later resume. */
  keepForResume?: () => boolean
}

/** Throws BackupSnapshotMissing unless every disk still has the snapshot a resumed backup reads. */
export function checkSnapshots(store: DiskStore, refs: DiskRef[], snapshots: string[], what: string): void {
  refs.forEach((ref, i) => {
    const snapshot = snapshots[i]
    if (snapshot === undefined || !store.listSnapshots(ref).some((s) => s.snapshot === snapshot)) {
      throw new CairnError(
        'BackupSnapshotMissing',
        `Cannot resume ${what}: snapshot "${snapshot ?? ''}" of disk "${ref.disk}" it was reading is gone; run it again`,
      )
    }
  })
}

/**
 * Snapshots the disks at one instant (a consistency group) and backs the snapshots up into one
 * recovery point. The snapshots stay (they are the instant-restore tier and the next backup's diff base).
 */
export async function backupDisks(
  vault: Vault,
  store: DiskStore,
  disks: DiskToBackUp[],
  options: BackupDisksOptions,
): Promise<RecoveryPoint> {
  if (disks.length === 0)
    throw new CairnError('InvalidRequest', `Cannot back up "${options.item.name}": no disks given`)
  const refs = disks.map((d) => d.ref)
  const resume = options.resume
  const baseId = resume
    ? (resume.base ?? undefined)
    : options.base === null
      ? undefined
      : (options.base ?? (await vault.latestRecoveryPoint(options.item.name))?.id)
  const base = baseId ? await vault.getRecoveryPoint(baseId) : undefined
  let snaps = options.snapshots
  if (snaps) checkSnapshots(store, refs, snaps, `the backup of "${options.item.name}"`)
  else {
    snaps = (await store.snapshotGroup(refs)).map((s) => s.snapshot!)
    try {
      await options.onSnapshots?.(snaps)
    } catch (err) {
      await removeSnapshots(store, refs, snaps)
      throw err
    }
  }
  const taken = snaps
  const sources = disks.map((d, i) => {
    const name = d.name ?? d.ref.disk
    const baseSnapshot = base?.disks.find((x) => x.name === name)?.snapshot
    return diskSource(store, d.ref, {
      snapshot: taken[i]!,
      name,
      ...(d.lun !== undefined ? { lun: d.lun } : {}),
      ...(baseSnapshot ? { baseSnapshot } : {}),
    })
  })
  try {
    return await vault.backup({
      item: options.item,
      sources,
      ...(baseId ? { base: baseId } : {}),
      ...(options.consistency ? { consistency: options.consistency } : {}),
      ...(options.expiresAt !== undefined ? { expiresAt: options.expiresAt } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(resume ? { resume } : {}),
      ...(options.onCheckpoint ? { onCheckpoint: options.onCheckpoint } : {}),
      ...(options.onResume ? { onResume: options.onResume } : {}),
      ...(options.keepForResume ? { keepLockOnAbort: options.keepForResume } : {}),
    })
  } catch (err) {
    // No point holds the snapshots of a backup that failed or was cancelled: they go too. (A service
    // that dies or stops keeps them: the backup resumes from them at the next start.)
    if (!(options.signal?.aborted && options.keepForResume?.())) await removeSnapshots(store, refs, taken)
    throw err
  }
}

/** Deletes snapshots of disks (those already gone are skipped). */
export async function removeSnapshots(store: DiskStore, refs: DiskRef[], snapshots: string[]): Promise<void> {
  for (let i = 0; i < refs.length; i++) {
    const snapshot = snapshots[i]
    if (snapshot !== undefined) await store.deleteSnapshot(refs[i]!, snapshot).catch(() => {})
  }
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE)

/**
 * A disk-store disk as a restore target; writes are made durable at close. Whole pages of zeros in the
 * data stay holes (a vault chunk keeps the zeros a guest wrote; a restore must not allocate them): on a
 * `fresh` disk they are skipped, on an existing one cleared.
 */
export function diskSink(store: DiskStore, ref: DiskRef, options: { fresh?: boolean } = {}): RestoreSink {
  const size = store.getDisk(ref).size
  const clear = async (offset: number, length: number) => {
    if (!options.fresh && length > 0) await store.clearPages(ref, offset, length, { durable: false })
  }
  const writeRun = async (offset: number, data: Buffer) => {
    for (let o = 0; o < data.length; o += MAX_WRITE_SIZE) {
      let piece = data.subarray(o, Math.min(data.length, o + MAX_WRITE_SIZE))
      if (piece.length % PAGE_SIZE !== 0) {
        // Only the tail of an odd-sized file image can be unaligned: pad it with zeros.
        const padded = Buffer.alloc(Math.ceil(piece.length / PAGE_SIZE) * PAGE_SIZE)
        piece.copy(padded)
        piece = padded
      }
      await store.writePages(ref, offset + o, piece, { durable: false })
    }
  }
  return {
    size,
    async write(offset, data) {
      // Runs of data pages are written, runs of zero pages left as holes (offsets are page-aligned).
      let run = 0
      let runZero = false
      for (let p = 0; p < data.length; p += PAGE_SIZE) {
        const end = Math.min(data.length, p + PAGE_SIZE)
        const zero = end - p === PAGE_SIZE && data.subarray(p, end).equals(ZERO_PAGE)
        if (p > run && zero !== runZero) {
          if (runZero) await clear(offset + run, p - run)
          else await writeRun(offset + run, data.subarray(run, p))
          run = p
        }
        if (p === run) runZero = zero
      }
      if (run < data.length) {
        if (runZero) await clear(offset + run, data.length - run)
        else await writeRun(offset + run, data.subarray(run))
      }
    },
    async zero(offset, length) {
      const start = Math.ceil(offset / PAGE_SIZE) * PAGE_SIZE
      const end = Math.min(size, Math.floor((offset + length) / PAGE_SIZE) * PAGE_SIZE)
      if (end > start) await clear(start, end - start)
    },
    close: () => store.flush(),
  }
}

/**
 * Restores a disk of a recovery point into a new disk (or, with overwrite, over an existing one). A new
 * disk is deleted again when the restore fails or is cancelled.
 */
export async function restoreToDisk(
  vault: Vault,
  store: DiskStore,
  rpId: string,
  diskName: string,
  target: DiskRef,
  options: OperationOptions & { overwrite?: boolean } = {},
): Promise<{ bytesWritten: number }> {
  const rp = await vault.getRecoveryPoint(rpId)
  const disk = rp.disks.find((d) => d.name === diskName)
  if (!disk) {
    throw new CairnError(
      'RecoveryPointDiskNotFound',
      `Cannot restore disk "${diskName}": recovery point "${rpId}" holds no such disk`,
    )
  }
  const size = Math.ceil(disk.size / PAGE_SIZE) * PAGE_SIZE
  let exists = true
  try {
    store.getDisk(target)
  } catch (err) {
    if (!(err instanceof CairnError) || err.code !== 'DiskNotFound') throw err
    exists = false
  }
  if (exists && !options.overwrite) {
    throw new CairnError(
      'DiskAlreadyExists',
      `Cannot restore into disk "${target.disk}": it exists; set overwrite (--overwrite) to replace its content`,
    )
  }
  if (!exists) await store.createDisk(target, { size })
  else if (store.getDisk(target).size < size) await store.resizeDisk(target, size)
  const sink = diskSink(store, target, { fresh: !exists })
  try {
    return await vault.restore(rpId, diskName, sink, options)
  } catch (err) {
    // A new disk that did not get all of its content is removed (cancelled, failed): never half a disk.
    if (!exists) await store.deleteDisk(target).catch(() => {})
    throw err
  } finally {
    await sink.close?.()
  }
}
