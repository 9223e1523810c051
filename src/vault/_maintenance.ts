import { CairnError } from '../util/index.js'
import { ChunkKind } from './_chunk-codec.js'
import type { LockBody, VaultCore } from './_core.js'
import { markTree, walkLeaves } from './_disk-tree.js'
import { PACK_FOOTER } from './_pack.js'
import { PackWriter } from './_pack-writer.js'
import { checkRemovable, purgeSoftDeleted, readSoftDeleted, removePoint, softDeletedIds } from './_removal.js'
import { hasRetentionRules, type RetentionPolicy, selectRetained } from './retention.js'
import type { OperationOptions, RecoveryPoint } from './types.js'
import { readVaultSettings } from './vault-settings.js'

/** What prune kept and removed. */
export interface PruneReport {
  kept: string[]
  /** Points removed: deleted, or soft-deleted while soft delete is on and their retention runs. */
  removed: string[]
  /** Points left alone because their source kind is in `leaveKinds` (for example VM points a policy manages). */
  skipped: string[]
  dryRun: boolean
}

/** Locks of backups still running (updated within `staleMs`). */
async function liveLocks(core: VaultCore, staleMs: number): Promise<LockBody[]> {
  return (await splitLocks(core, staleMs)).live
}

/** The locks, split into those of running backups and those of backups that died (not updated within `staleMs`). */
async function splitLocks(
  core: VaultCore,
  staleMs: number,
): Promise<{ live: LockBody[]; expired: LockBody[] }> {
  const now = Date.now()
  const live: LockBody[] = []
  const expired: LockBody[] = []
  for (const l of await core.readLocks()) (now - Date.parse(l.updatedAt) < staleMs ? live : expired).push(l)
  return { live, expired }
}

/**
 * Removes the manifests of recovery points that expired or that no retention rule keeps (per backed-up
 * item). Bases of running backups are kept, and so are points an immutable vault still retains. A point
 * removed before its retention ended is soft-deleted while soft delete is on. Prune frees no space by
 * itself; GC does.
 */
export async function runPrune(
  core: VaultCore,
  opts: {
    policy?: RetentionPolicy
    item?: string
    dryRun?: boolean
    now?: Date
    staleLockMs?: number
    leaveKinds?: string[]
  },
): Promise<PruneReport> {
  const now = opts.now ?? new Date(core.now())
  const settings = await readVaultSettings(core.backend)
  const points: RecoveryPoint[] = []
  for (const o of await core.recoveryPointObjects()) points.push(await core.readManifest(o.name.slice(3), o))
  const protectedIds = new Set(
    (await liveLocks(core, opts.staleLockMs ?? STALE_LOCK_MS)).flatMap((l) => l.bases),
  )
  const retained = (p: RecoveryPoint): boolean => {
    try {
      checkRemovable(p, settings, now.getTime(), 'prune')
      return false
    } catch {
      return true
    }
  }
  const groups = new Map<string, RecoveryPoint[]>()
  const skipped: string[] = []
  for (const p of points) {
    if (opts.item !== undefined && p.source.name !== opts.item) continue
    if (opts.leaveKinds?.includes(p.source.kind)) {
      skipped.push(p.id)
      continue
    }
    const g = groups.get(p.source.name) ?? []
    g.push(p)
    groups.set(p.source.name, g)
  }
  const removed: string[] = []
  const kept: string[] = []
  for (const group of groups.values()) {
    const keep =
      opts.policy && hasRetentionRules(opts.policy)
        ? selectRetained(
            group.map((p) => ({ id: p.id, time: new Date(p.createdAt) })),
            opts.policy,
          )
        : new Set(group.map((p) => p.id))
    for (const p of group) {
      const expired = p.expiresAt !== null && Date.parse(p.expiresAt) <= now.getTime()
      if ((keep.has(p.id) && !expired) || protectedIds.has(p.id) || retained(p)) kept.push(p.id)
      else removed.push(p.id)
    }
  }
  if (!opts.dryRun) {
    const byId = new Map(points.map((p) => [p.id, p]))
    for (const id of removed) await removePoint(core, byId.get(id)!, settings)
  }
  return {
    kept: kept.sort(),
    removed: removed.sort(),
    skipped: skipped.sort(),
    dryRun: opts.dryRun ?? false,
  }
}

/** A lock not updated for this long belongs to a backup that died (running backups touch theirs every 30 s). */
export const STALE_LOCK_MS = 15 * 60_000
/** How far apart the clocks of services sharing a store may be for GC's recency rule. */
const CLOCK_SLACK_MS = 60_000

/** What GC did. */
export interface GcReport {
  /** Soft-deleted points whose time had come, purged before marking (their data is collected now). */
  softDeletedPurged?: number
  packsBefore: number
  packsDeleted: number
  packsRepacked: number
  packsWritten: number
  bytesBefore: number
  bytesReclaimed: number
  liveChunks: number
  /** Leftover temporary objects of killed writers that were removed. */
  temporaryFilesRemoved?: number
  /** Expired lock files of killed backups that were removed (their packs were collected like any other). */
  expiredLocksRemoved?: number
  /** Packs left alone because they are newer than the oldest running backup or the grace period. */
  packsKeptAsRecent?: number
  /** Why GC did not sweep, when it did not. */
  skipped?: string
}

/**
 * Garbage collection. Order matters for safety with concurrent backups: list packs first, then read
 * locks, then manifests. A pack listed before the locks were read that belongs to a running backup is
 * named in its lock (backups add a pack to their lock before writing it); packs written later are not
 * in the listing at all. Chunks a running backup reuses come from its bases, which GC marks.
 */
export async function runGc(
  core: VaultCore,
  opts: OperationOptions & { repackBelow?: number; staleLockMs?: number; graceMs?: number } = {},
): Promise<GcReport> {
  const purged = await purgeSoftDeleted(core)
  const listed = await core.backend.list('packs/')
  const { live: locks, expired } = await splitLocks(core, opts.staleLockMs ?? STALE_LOCK_MS)
  // PBS's rule on a shared store: nothing modified since the oldest running backup started (less a
  // minute for clocks that differ), nor within the grace period, is collected, whoever wrote it (a
  // backup of another service, the repack of another GC).
  const keepFrom = Math.min(
    Date.now() - (opts.graceMs ?? 0),
    ...locks.map((l) => Date.parse(l.startedAt) - CLOCK_SLACK_MS),
  )
  // Soft-deleted points are roots until purged. Deletes write their record before the manifest goes,
  // undeletes the manifest before the record goes: listing records, manifests, records again sees
  // every point that exists in either form throughout.
  const deletedBefore = await softDeletedIds(core)
  const ids = await core.recoveryPointIds()
  const deleted = new Set([...deletedBefore, ...(await softDeletedIds(core))])
  await core.index.refresh()
  const report: GcReport = {
    packsBefore: listed.length,
    packsDeleted: 0,
    packsRepacked: 0,
    packsWritten: 0,
    bytesBefore: listed.reduce((n, o) => n + o.size, 0),
    bytesReclaimed: 0,
    liveChunks: 0,
    softDeletedPurged: purged.length,
  }
  const pages = new Set<string>()
  const live = new Set<string>()
  const store = core.pageStore(undefined, 'Cannot collect garbage')
  const roots = new Set(ids)
  for (const l of locks) for (const b of l.bases) roots.add(b)
  for (const id of deleted) roots.add(id)
  try {
    for (const id of roots) {
      const rp = await readEither(core, id)
      for (const d of rp.disks) {
        await markTree(
          store,
          { root: d.root ? Buffer.from(d.root, 'hex') : null, depth: d.depth },
          pages,
          live,
        )
      }
    }
  } catch (err) {
    if (!(err instanceof CairnError)) throw err
    return { ...report, skipped: `nothing was deleted because the mark phase failed: ${err.message}` }
  }
  for (const p of pages) live.add(p)
  report.liveChunks = live.size
  if (core.index.damaged.size > 0) {
    return {
      ...report,
      skipped: `nothing was deleted because packs are damaged: ${[...core.index.damaged.keys()].join(', ')}`,
    }
  }

  const inFlight = new Set(locks.flatMap((l) => l.packs))
  const owner = new Map<string, string>()
  const candidates = listed.filter((o) => !inFlight.has(o.name) && o.modified < keepFrom)
  report.packsKeptAsRecent = listed.filter((o) => !inFlight.has(o.name) && o.modified >= keepFrom).length
  // Each live chunk belongs to one pack (copies left by an interrupted repack are dead weight).
  for (const o of [...listed].sort((a, b) => b.size - a.size)) {
    const info = core.index.pack(o.name)
    for (const e of info?.entries ?? []) {
      const k = e.id.toString('hex')
      if (live.has(k) && !owner.has(k)) owner.set(k, o.name)
    }
  }
  const threshold = opts.repackBelow ?? 0.8
  const toDelete: string[] = []
  const toRepack: string[] = []
  for (const o of candidates) {
    const info = core.index.pack(o.name)
    if (!info) continue
    let liveBytes = 0
    for (const e of info.entries) if (owner.get(e.id.toString('hex')) === o.name) liveBytes += e.length
    if (liveBytes === 0) toDelete.push(o.name)
    else if (liveBytes / Math.max(1, o.size - PACK_FOOTER) < threshold) toRepack.push(o.name)
  }

  // Repack: copy the live blobs as they are (a blob is bound to its id, not to its pack), then delete.
  if (toRepack.length > 0) {
    const writer = new PackWriter(core.backend, core.index, { target: core.config.packSize })
    for (const name of toRepack) {
      opts.signal?.throwIfAborted()
      const info = core.index.pack(name)!
      const data = await core.backend.get(name)
      for (const e of info.entries) {
        if (owner.get(e.id.toString('hex')) !== name) continue
        await writer.add(e.id, Buffer.from(data.subarray(e.offset, e.offset + e.length)), e.rawLength, e.kind)
      }
    }
    await writer.flush()
    report.packsWritten = writer.packs.length
    report.bytesReclaimed -= writer.bytes
    report.packsRepacked = toRepack.length
  }
  const sizes = new Map(listed.map((o) => [o.name, o.size]))
  for (const name of [...toDelete, ...toRepack]) {
    opts.signal?.throwIfAborted()
    await core.backend.delete(name)
    report.bytesReclaimed += sizes.get(name) ?? 0
  }
  report.packsDeleted = toDelete.length
  core.index.removePacks([...toDelete, ...toRepack])
  // Temporary files older than any lock could be are leftovers of killed writers.
  report.temporaryFilesRemoved = (await core.backend.sweepTemporary?.(opts.staleLockMs ?? STALE_LOCK_MS)) ?? 0
  // Locks of killed backups: GC treated them as gone, now their files go too.
  for (const l of expired) await core.deleteLock(l.id)
  report.expiredLocksRemoved = expired.length
  return report
}

/** A point's manifest, or its soft-deleted record when it was moved meanwhile. */
async function readEither(core: VaultCore, id: string): Promise<RecoveryPoint> {
  try {
    return await core.readManifest(id)
  } catch (err) {
    if (!(err instanceof CairnError) || err.code !== 'RecoveryPointNotFound') throw err
    return readSoftDeleted(core, id)
  }
}

/**
 * Space accounting of a vault. The ratios, defined once (docs/vault.md, "Usage"):
 * deduplicationRatio = logicalBytes / dataBytes, compressionRatio = dataBytes / dataStoredBytes,
 * overallRatio = logicalBytes / storedBytes. Every stored copy counts: data stored twice (or not yet
 * reclaimed by GC) lowers the ratios.
 */
export interface VaultUsage {
  recoveryPoints: number
  packs: number
  /** Bytes of every pack: what the vault takes on its backend. */
  storedBytes: number
  /** Disk data the recovery points describe (zeros and holes excluded), counted once per recovery point. */
  logicalBytes: number
  /** Data chunks in the packs before compression, every stored copy counted (dead ones until GC too). */
  dataBytes: number
  /** The same data chunks as stored (compressed, encrypted). */
  dataStoredBytes: number
  /** Distinct data chunks the recovery points reference, before compression. */
  uniqueBytes: number
  /** Distinct data chunks the recovery points reference, as stored. */
  uniqueStoredBytes: number
  /** logicalBytes / dataBytes: how many times each byte held is used by the points. */
  deduplicationRatio: number
  /** dataBytes / dataStoredBytes. */
  compressionRatio: number
  /** logicalBytes / storedBytes: the points' data against everything the vault takes. */
  overallRatio: number
  /** Per point: its data, and the bytes its backup stored new (packs written, compressed). */
  perRecoveryPoint: { id: string; createdAt: string; logicalBytes: number; bytesAdded: number }[]
}

export async function runUsage(core: VaultCore): Promise<VaultUsage> {
  await core.index.refresh()
  const store = core.pageStore(undefined, 'Cannot measure the vault')
  const leafBytes = new Map<string, number>()
  const distinct = new Set<string>()
  const per: VaultUsage['perRecoveryPoint'] = []
  for (const o of await core.recoveryPointObjects()) {
    const id = o.name.slice(3)
    const rp = await core.readManifest(id, o)
    let logical = 0
    for (const d of rp.disks) {
      await walkLeaves(
        store,
        { root: d.root ? Buffer.from(d.root, 'hex') : null, depth: d.depth },
        async (_s, extents, leafId) => {
          const k = leafId.toString('latin1')
          let n = leafBytes.get(k)
          if (n === undefined) {
            n = 0
            for (const e of extents) {
              n += e.length
              distinct.add(e.id.toString('latin1'))
            }
            leafBytes.set(k, n)
          }
          logical += n
        },
      )
    }
    per.push({ id, createdAt: rp.createdAt, logicalBytes: logical, bytesAdded: rp.bytesAdded })
  }
  let uniqueBytes = 0
  let uniqueStoredBytes = 0
  for (const k of distinct) {
    const loc = core.index.get(Buffer.from(k, 'latin1'))
    if (!loc) continue
    uniqueBytes += loc.rawLength
    uniqueStoredBytes += loc.length
  }
  const packs = core.index.packs()
  let dataBytes = 0
  let dataStoredBytes = 0
  for (const p of packs) {
    for (const e of p.entries) {
      if (e.kind !== ChunkKind.data) continue
      dataBytes += e.rawLength
      dataStoredBytes += e.length
    }
  }
  const logicalBytes = per.reduce((n, p) => n + p.logicalBytes, 0)
  const storedBytes = packs.reduce((n, p) => n + p.size, 0)
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 1)
  return {
    recoveryPoints: per.length,
    packs: packs.length,
    storedBytes,
    logicalBytes,
    dataBytes,
    dataStoredBytes,
    uniqueBytes,
    uniqueStoredBytes,
    deduplicationRatio: ratio(logicalBytes, dataBytes),
    compressionRatio: ratio(dataBytes, dataStoredBytes),
    overallRatio: ratio(logicalBytes, storedBytes),
    perRecoveryPoint: per,
  }
}
