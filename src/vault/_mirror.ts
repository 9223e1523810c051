// GRS replication's deletions (docs/replication.md, "Deletions, prune and soft delete"): after each
// sync the replica follows what its primary holds. A point the primary no longer lists is deleted
// here too, or soft-deleted with the primary's own record when the primary soft-deleted it; a
// point undeleted there comes back (the copy brings its manifest; the stale record goes); a
// soft-deleted point the primary purged is purged. The replica never removes a point its primary
// lists, and keeps its own rules on top: an immutable vault (the primary's settings, mirrored, never
// weakened past a one-way state) keeps a point whose retention runs, whatever the primary did.

import { CairnError } from '../util/index.js'
import type { VaultCore } from './_core.js'
import { decodeRecord } from './_record.js'
import {
  checkRemovable,
  readSoftDeleted,
  type SoftDeletedPoint,
  softDeletedIds,
  undeletePoint,
} from './_removal.js'
import {
  immutable,
  readVaultSettings,
  retentionEnd,
  type VaultSettings,
  writeVaultSettings,
} from './vault-settings.js'

/** What one mirror pass changed in the replica. */
export interface MirrorReport {
  /** Points deleted here because the primary deleted them. */
  deleted: string[]
  /** Points soft-deleted here because the primary soft-deleted them (same record). */
  softDeleted: string[]
  /** Points undeleted here because the primary undeleted them. */
  undeleted: string[]
  /** Soft-deleted points purged here because the primary purged them. */
  purged: string[]
  /** Points the primary removed that this replica keeps, and why (immutability, or this site's own). */
  kept: { id: string; reason: string }[]
  /** The replica took the primary's soft-delete/immutability settings. */
  settingsChanged: boolean
}

/**
 * Makes `dst` (a replica) follow the removals of `src` (its primary, read over the pair). `keep`:
 * points this site made itself while it was the primary (never sent to the new primary): kept.
 */
export async function mirrorRemovals(
  src: VaultCore,
  dst: VaultCore,
  options: { keep?: ReadonlySet<string> } = {},
): Promise<MirrorReport> {
  const report: MirrorReport = {
    deleted: [],
    softDeleted: [],
    undeleted: [],
    purged: [],
    kept: [],
    settingsChanged: false,
  }
  const settings = await mirrorSettings(src, dst, report)
  const now = dst.now()
  // The primary's listings, each taken now: a point is removed here only when the primary itself
  // answered, in this pass, that it no longer holds it.
  const remoteLive = new Set(await src.recoveryPointIds())
  const remoteDeleted = new Set((await softDeletedIds(src)).filter((id) => !remoteLive.has(id)))
  const localLive = await dst.recoveryPointIds()
  for (const id of localLive) {
    if (remoteLive.has(id)) continue
    if (options.keep?.has(id)) {
      report.kept.push({ id, reason: 'made on this site while it was the primary' })
      continue
    }
    const rp = await dst.readManifest(id)
    try {
      checkRemovable(rp, settings, now, `Cannot mirror the removal of recovery point "${id}"`)
    } catch (err) {
      if (!(err instanceof CairnError) || err.code !== 'RetentionLocked') throw err
      report.kept.push({ id, reason: err.message })
      continue
    }
    if (remoteDeleted.has(id)) {
      // The primary's record as is (same deletedAt and purgeAt), checked first: this vault's, this point.
      const record = await src.backend.get(`deleted/${id}`)
      const body = decodeRecord(record, 'SDEL', `soft-deleted recovery point "${id}"`, dst.recordKey)
        .body as SoftDeletedPoint
      if (body.id !== id)
        throw new CairnError(
          'VaultCorrupt',
          `Cannot mirror the soft delete of recovery point "${id}": the primary's record names ${body.id}`,
        )
      await dst.backend.put(`deleted/${id}`, record)
      await dst.backend.delete(`rp/${id}`)
      report.softDeleted.push(id)
    } else {
      await dst.backend.delete(`rp/${id}`)
      report.deleted.push(id)
    }
  }
  const live = new Set(await dst.recoveryPointIds())
  for (const id of await softDeletedIds(dst)) {
    if (remoteLive.has(id)) {
      // Undeleted on the primary: here too (the manifest from the record, or only the stale record
      // removed when the manifest is back).
      if (live.has(id)) await dst.backend.delete(`deleted/${id}`)
      else await undeletePoint(dst, id)
      report.undeleted.push(id)
      continue
    }
    if (live.has(id) || remoteDeleted.has(id)) continue
    const p = await readSoftDeleted(dst, id)
    const end = retentionEnd(p)
    if (immutable(settings) && (end === null || end > now)) {
      report.kept.push({ id, reason: 'the vault is immutable and the point is retained' })
      continue
    }
    await dst.backend.delete(`deleted/${id}`)
    report.purged.push(id)
  }
  return report
}

/**
 * The replica takes the primary's soft-delete and immutability settings, never leaving a one-way
 * state (soft delete AlwaysOn, immutability Locked) it holds: answers the settings in force here.
 */
async function mirrorSettings(src: VaultCore, dst: VaultCore, report: MirrorReport): Promise<VaultSettings> {
  const [theirs, ours] = await Promise.all([readVaultSettings(src.backend), readVaultSettings(dst.backend)])
  const next: VaultSettings = {
    softDelete:
      ours.softDelete.state === 'AlwaysOn' && theirs.softDelete.state !== 'AlwaysOn'
        ? ours.softDelete
        : theirs.softDelete,
    immutability:
      ours.immutability.state === 'Locked' && theirs.immutability.state !== 'Locked'
        ? ours.immutability
        : theirs.immutability,
  }
  const same =
    next.softDelete.state === ours.softDelete.state &&
    next.softDelete.retentionDays === ours.softDelete.retentionDays &&
    next.immutability.state === ours.immutability.state
  if (same) return ours
  report.settingsChanged = true
  return writeVaultSettings(dst.backend, next, dst.now())
}
