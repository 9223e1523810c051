// A vault's protection settings: soft delete and immutability, kept in the vault itself (the `settings`
// record, tag SETT), so that every path that deletes through the vault obeys them. Transitions and
// bounds are checked here, once; docs/security.md describes the model.

import { CairnError } from '../util/index.js'
import { decodeRecord, encodeRecord } from './_record.js'
import type { RecoveryPoint } from './types.js'
import type { VaultBackend } from './vault-backend.js'

/** Soft delete, after the reference: AlwaysOn cannot be turned off again. */
export type SoftDeleteState = 'Enabled' | 'Disabled' | 'AlwaysOn'
/** Immutability, after the reference: Locked cannot be undone. */
export type ImmutabilityState = 'Disabled' | 'Enabled' | 'Locked'

/** What the `settings` record holds (SETT v1). */
export interface VaultSettings {
  softDelete: {
    state: SoftDeleteState
    /** Days deleted backup data is kept before it is purged (14–180). */
    retentionDays: number
  }
  immutability: { state: ImmutabilityState }
  /** When the record was last written (absent: the defaults of a vault that never had one). */
  updatedAt?: string
}

/** A change of settings; what is not named stays. */
export interface VaultSettingsChange {
  softDelete?: { state?: SoftDeleteState; retentionDays?: number }
  immutability?: { state?: ImmutabilityState }
}

/** Soft-delete retention bounds in days, after the reference. */
export const SOFT_DELETE_DAYS = { min: 14, max: 180, default: 14 } as const

/** The settings of a new vault, and of a vault made before settings existed: soft delete on, as the reference. */
export const DEFAULT_VAULT_SETTINGS: VaultSettings = {
  softDelete: { state: 'Enabled', retentionDays: SOFT_DELETE_DAYS.default },
  immutability: { state: 'Disabled' },
}

const SOFT_STATES: readonly SoftDeleteState[] = ['Enabled', 'Disabled', 'AlwaysOn']
const IMMUTABLE_STATES: readonly ImmutabilityState[] = ['Disabled', 'Enabled', 'Locked']

/** True while soft delete keeps deleted data. */
export function softDeleteOn(s: VaultSettings): boolean {
  return s.softDelete.state !== 'Disabled'
}

/** True while no recovery point may leave before its retention ends. */
export function immutable(s: VaultSettings): boolean {
  return s.immutability.state !== 'Disabled'
}

/**
 * When a point's retention ends: its `retainUntil` (the retention that applied when it was written),
 * else its own expiry; null when none was recorded (then it never ends on its own).
 */
export function retentionEnd(rp: Pick<RecoveryPoint, 'expiresAt' | 'retainUntil'>): number | null {
  const at = rp.retainUntil !== undefined ? rp.retainUntil : rp.expiresAt
  return at === null ? null : Date.parse(at)
}

/**
 * The settings after `change`, or an error naming the rule it breaks: AlwaysOn and Locked are one-way,
 * the soft-delete retention is 14–180 whole days.
 */
export function applySettingsChange(current: VaultSettings, change: VaultSettingsChange): VaultSettings {
  const next: VaultSettings = {
    softDelete: { ...current.softDelete, ...definedOnly(change.softDelete) },
    immutability: { ...current.immutability, ...definedOnly(change.immutability) },
  }
  if (!SOFT_STATES.includes(next.softDelete.state))
    throw new CairnError(
      'InvalidRequest',
      `Cannot set soft delete to "${next.softDelete.state}": use ${SOFT_STATES.join(', ')}`,
    )
  if (!IMMUTABLE_STATES.includes(next.immutability.state))
    throw new CairnError(
      'InvalidRequest',
      `Cannot set immutability to "${next.immutability.state}": use ${IMMUTABLE_STATES.join(', ')}`,
    )
  const days = next.softDelete.retentionDays
  if (!Number.isInteger(days) || days < SOFT_DELETE_DAYS.min || days > SOFT_DELETE_DAYS.max)
    throw new CairnError(
      'InvalidRequest',
      `Cannot keep soft-deleted data ${days} days: give whole days from ${SOFT_DELETE_DAYS.min} to ${SOFT_DELETE_DAYS.max}`,
    )
  if (current.softDelete.state === 'AlwaysOn' && next.softDelete.state !== 'AlwaysOn')
    throw new CairnError(
      'SettingIrreversible',
      `Cannot set soft delete to ${next.softDelete.state}: it is AlwaysOn, which cannot be turned off again`,
    )
  if (current.immutability.state === 'Locked' && next.immutability.state !== 'Locked')
    throw new CairnError(
      'SettingIrreversible',
      `Cannot set immutability to ${next.immutability.state}: the vault is Locked immutable, which cannot be undone`,
    )
  return next
}

/** The vault's settings from its `settings` record; the defaults when it has none (a vault made before settings existed). */
export async function readVaultSettings(backend: VaultBackend): Promise<VaultSettings> {
  let data: Buffer
  try {
    data = await backend.get('settings')
  } catch (err) {
    if (err instanceof CairnError && err.code === 'VaultObjectMissing') return DEFAULT_VAULT_SETTINGS
    throw err
  }
  const body = decodeRecord(data, 'SETT', 'the vault settings record "settings"').body as VaultSettings
  if (
    !SOFT_STATES.includes(body.softDelete?.state) ||
    !IMMUTABLE_STATES.includes(body.immutability?.state) ||
    !Number.isInteger(body.softDelete.retentionDays)
  )
    throw new CairnError(
      'VaultCorrupt',
      `Cannot read the vault settings at ${backend.location}: the record holds unknown states`,
    )
  return body
}

/** Writes the `settings` record (atomic replace). The record is not encrypted: it holds no secret. */
export async function writeVaultSettings(
  backend: VaultBackend,
  settings: VaultSettings,
  now: number,
): Promise<VaultSettings> {
  const body: VaultSettings = { ...settings, updatedAt: new Date(now).toISOString() }
  await backend.put('settings', encodeRecord('SETT', 1, body))
  return body
}

function definedOnly<T extends object>(o: T | undefined): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
