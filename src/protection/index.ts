// Protection: VMs, backup policies, protected items, the scheduler, retention, backups and restores,
// disk-store disks as vault sources and sinks, the agent client and the job service.

export { type DiskLabel, diskLabel, parseDiskLabel } from '../util/index.js'
export type { UndeleteReport } from './_undelete-item.js'
export {
  AgentClient,
  type AgentClientOptions,
  type AgentFor,
  type AgentQuiesce,
  type AgentStatusReport,
  type AgentStep,
  type AgentThaw,
  type VmAgent,
} from './agent-client.js'
export { type Clock, ManualClock, systemClock } from './clock.js'
export {
  type BackupDisksOptions,
  backupDisks,
  type DiskToBackUp,
  diskSink,
  diskSource,
  restoreToDisk,
} from './disk-backup.js'
export {
  type AccountReplication,
  type DiskGeoLink,
  DiskGeoReplication,
  type DiskGeoReplicationOptions,
  type FailoverReport,
  GEO_REDUNDANCIES,
  type GeoStatus,
  type ReceiveAnswer,
  type ReplicaState,
  type RoundReport,
} from './disk-geo-replication.js'
export { type DeleteTarget, type DiskDependent, DiskGuard } from './disk-guard.js'
export { DiskService, type DiskServiceOptions } from './disk-service.js'
export {
  type ArchiveFormat,
  FileBrowser,
  type FileLocation,
  type FileVersion,
  MAX_ARCHIVE_PATHS,
  type PointVolume,
} from './file-browser.js'
export {
  JOB_LEASE_MS,
  type JobBody,
  type JobContext,
  type JobEvent,
  type JobEventFilter,
  JobService,
  type JobServiceOptions,
  MAX_JOB_WATCHERS,
  type StartedJob,
} from './job-service.js'
export {
  expiredSnapshots,
  MAX_POINTS_PER_ITEM,
  onDemandExpiry,
  planRetention,
  type RetentionPlan,
  type RetentionPoint,
  type RetentionReason,
  type RetentionVerdict,
} from './plan-retention.js'
export { openPointDisk, type PointDiskSource, pointDiskSource } from './point-disk-readers.js'
export { PointReconciler, type ReconcileReport, tierOf } from './point-reconciler.js'
export {
  type BackupPolicy,
  type BackupSchedule,
  HOURLY_INTERVALS,
  type HourlyInterval,
  MONTHS,
  type Month,
  type MonthDaySelector,
  POLICY_BOUNDS,
  type RetentionRules,
  validatePolicy,
  WEEKDAYS,
  WEEKS_OF_MONTH,
  type Weekday,
  type WeekOfMonth,
} from './policy.js'
export {
  type BackupOptions,
  type InVault,
  ProtectionService,
  type ProtectionServiceOptions,
  type RestoreRequest,
  type RunningJob,
  type StopReport,
} from './protection-service.js'
export {
  type ProtectedItem,
  type ProtectionState,
  ProtectionStore,
  type RecoveryPointTier,
  type VmRecoveryPoint,
  type VmRecoveryPointDisk,
} from './protection-store.js'
export { QGA_POST_SCRIPT, QGA_PRE_SCRIPT, QgaAgent, type QgaAgentOptions, QgaSession } from './qga-agent.js'
export {
  MOUNT_EXPORT_PREFIX,
  MOUNT_HOURS,
  type NbdEndpoint,
  RecoveryPointMounts,
  type RpMount,
  type RpMountDisk,
  type RpMountView,
} from './recovery-point-mounts.js'
export { RegistryVaultTransfer } from './registry-vault-transfer.js'
export { type ReplicaItem, ReplicaItems, type ReplicaItemsOptions, replicaItemId } from './replica-items.js'
export {
  APPROVAL_HOURS,
  GUARDED_OPERATIONS,
  type GuardedOperation,
  type GuardRequest,
  type GuardRequestState,
  type GuardStatus,
  OPERATION_TEXT,
  ResourceGuard,
} from './resource-guard.js'
export { checkRetentionChange, retentionShortened } from './retention-change.js'
export { type RunToEnd, runJobToEnd } from './run-job-to-end.js'
export {
  DEFAULT_SPREAD_MS,
  type DueRun,
  dueRun,
  jitterFor,
  nextRun,
  type PlannedRun,
  plannedRuns,
  type SpreadOptions,
  scheduledTimes,
  spreadFor,
} from './schedule.js'
export {
  type SchedulableItem,
  type ScheduledRun,
  Scheduler,
  type SchedulerOptions,
  type SchedulerStatus,
  type SchedulerStore,
} from './scheduler.js'
export {
  type Redundancy,
  type ReplicationStatus,
  type SyncReport,
  VaultReplication,
  type VaultReplicationOptions,
} from './vault-replication.js'
export {
  type BackupBase,
  type BackupDisk,
  type StartedBy,
  type VaultBackupRequest,
  type VaultCopyRequest,
  type VaultRestoreRequest,
  VaultService,
  type VaultServiceOptions,
} from './vault-service.js'
export type { DiskByteReader, VaultTransfer } from './vault-transfer.js'
export {
  type DataDisk,
  type DiskSelection,
  MAX_DATA_DISKS,
  MAX_LUN,
  parseDiskRef,
  refKey,
  type SelectedDisk,
  selectDisks,
  type Vm,
  type VmSpec,
  validateVm,
} from './vm.js'
