// A protected VM's health on the dashboard: its last backup against its policy's schedule.
import type { BackupPolicy, ProtectedItem } from '../../src/api/api-types.js'

export type Health = 'OK' | 'Warning' | 'Failed' | 'Overdue' | 'Stopped'

/** How long a policy lets pass between two backups, in ms. */
export function backupInterval(policy: BackupPolicy | undefined): number {
  const hour = 3_600_000
  const s = policy?.schedule
  if (s === undefined) return 24 * hour
  if (s.frequency === 'Hourly') return s.intervalHours * hour
  if (s.frequency === 'Weekly') return (7 / Math.max(1, s.days.length)) * 24 * hour
  return 24 * hour
}

/**
 * Failed: the last backup failed or was cancelled; Warning: it completed with warnings; Overdue: no
 * backup for longer than the policy's interval plus an hour of grace; Stopped: protection stopped.
 */
export function healthOf(item: ProtectedItem, policy: BackupPolicy | undefined, now: number): Health {
  if (item.state === 'ProtectionStopped') return 'Stopped'
  const status = item.lastBackupStatus ?? ''
  if (/Failed|Cancelled|Interrupted/.test(status)) return 'Failed'
  const since = Date.parse(item.lastBackupAt ?? item.protectedSince)
  if (now - since > backupInterval(policy) + 3_600_000) return 'Overdue'
  if (/Warning/.test(status)) return 'Warning'
  return 'OK'
}
