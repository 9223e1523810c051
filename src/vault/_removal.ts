// How a recovery point leaves a vault, the one place that decides it: refused while the vault is
// immutable and the point's retention runs; soft-deleted (kept as a `deleted/<id>` record, SDEL) while
// soft delete is on and the retention runs; deleted when its retention has ended. Soft-deleted points
// are restorable (`undelete`) until purged; GC keeps their data until then.

import { CairnError } from '../util/index.js'
import type { VaultCore } from './_core.js'
import { decodeRecord, encodeRecord } from './_record.js'
import type { RecoveryPoint } from './types.js'
import {
  immutable,
  readVaultSettings,
  retentionEnd,
  softDeleteOn,
  type VaultSettings,
} from './vault-settings.js'

const DAY = 86_400_000

/** A soft-deleted recovery point: the manifest as it was, when it was deleted and when it will be purged. */
export interface SoftDeletedPoint extends RecoveryPoint {
  state: 'SoftDeleted'
  deletedAt: string
  purgeAt: string
}

/** What happened to a point that was removed. */
export interface PointRemoval {
  id: string
  state: 'Deleted' | 'SoftDeleted'
  /** When a soft-deleted point will be purged. */
  purgeAt?: string
}

/** Refuses, with `RetentionLocked`, to remove a point of an immutable vault before its retention ends. */
export function checkRemovable(rp: RecoveryPoint, settings: VaultSettings, now: number, what: string): void {
  if (!immutable(settings)) return
  const end = retentionEnd(rp)
  if (end !== null && end <= now) return
  throw new CairnError(
    'RetentionLocked',
    `${what}: the vault is immutable (${settings.immutability.state}) and the recovery point is retained ${end === null ? 'with no end (it has no expiry)' : `until ${new Date(end).toISOString()}`}`,
  )
}

/**
 * Removes one point: refused when immutable and retained; soft-deleted when soft delete is on and its
 * retention has not ended; otherwise deleted.
 */
export async function removePoint(
  core: VaultCore,
  rp: RecoveryPoint,
  settings?: VaultSettings,
): Promise<PointRemoval> {
  const s = settings ?? (await readVaultSettings(core.backend))
  const now = core.now()
  checkRemovable(rp, s, now, `Cannot delete recovery point "${rp.id}"`)
  const end = retentionEnd(rp)
  const ended = end !== null && end <= now
  if (softDeleteOn(s) && !ended) {
    const purgeAt = new Date(now + s.softDelete.retentionDays * DAY).toISOString()
    const body: SoftDeletedPoint = {
      ...rp,
      state: 'SoftDeleted',
      deletedAt: new Date(now).toISOString(),
      purgeAt,
    }
    // The record first, then the manifest goes: a crash between leaves the point live (both exist).
    await core.backend.put(`deleted/${rp.id}`, encodeRecord('SDEL', 1, body, core.recordKey))
    await core.backend.delete(`rp/${rp.id}`)
    return { id: rp.id, state: 'SoftDeleted', purgeAt }
  }
  await core.backend.delete(`rp/${rp.id}`)
  return { id: rp.id, state: 'Deleted' }
}

/** Ids with a `deleted/` record (some may be stale: their manifest exists again). */
export async function softDeletedIds(core: VaultCore): Promise<string[]> {
  return (await core.backend.list('deleted/')).map((o) => o.name.slice('deleted/'.length)).sort()
}

/** One soft-deleted record, read and checked. */
export async function readSoftDeleted(core: VaultCore, id: string): Promise<SoftDeletedPoint> {
  let data: Buffer
  try {
    data = await core.backend.get(`deleted/${id}`)
  } catch (err) {
    if (err instanceof CairnError && err.code === 'VaultObjectMissing')
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot find soft-deleted recovery point "${id}" in the vault`,
      )
    throw err
  }
  return decodeRecord(data, 'SDEL', `soft-deleted recovery point "${id}"`, core.recordKey)
    .body as SoftDeletedPoint
}

/** The soft-deleted points, oldest first (a record whose manifest exists again is a finished undelete or an unfinished delete: the point is live). */
export async function listSoftDeleted(core: VaultCore, item?: string): Promise<SoftDeletedPoint[]> {
  const live = new Set(await core.recoveryPointIds())
  const out: SoftDeletedPoint[] = []
  for (const id of await softDeletedIds(core)) {
    if (live.has(id)) continue
    const p = await readSoftDeleted(core, id)
    if (item === undefined || p.source.name === item) out.push(p)
  }
  return out
}

/** Brings a soft-deleted point back: its manifest again, then the record goes. */
export async function undeletePoint(core: VaultCore, id: string): Promise<RecoveryPoint> {
  const { state: _s, deletedAt: _d, purgeAt: _p, ...rp } = await readSoftDeleted(core, id)
  const live = new Set(await core.recoveryPointIds())
  if (!live.has(id)) await core.writeManifest(rp)
  await core.backend.delete(`deleted/${id}`)
  return rp
}

/**
 * Deletes the soft-deleted points whose purge time has passed (never one an immutable vault still
 * retains); answers the ids purged. A record whose manifest exists is left alone: a delete may be
 * between its two steps (the next delete or undelete replaces or removes it).
 */
export async function purgeSoftDeleted(core: VaultCore, settings?: VaultSettings): Promise<string[]> {
  const s = settings ?? (await readVaultSettings(core.backend))
  const now = core.now()
  const live = new Set(await core.recoveryPointIds())
  const purged: string[] = []
  for (const id of await softDeletedIds(core)) {
    if (live.has(id)) continue
    const p = await readSoftDeleted(core, id)
    if (Date.parse(p.purgeAt) > now) continue
    const end = retentionEnd(p)
    if (immutable(s) && (end === null || end > now)) continue
    await core.backend.delete(`deleted/${id}`)
    purged.push(id)
  }
  return purged
}
