// The vault: recovery points of disks, deduplicated, compressed and encrypted, on a pluggable backend.
export type { BackupOptions } from './_backup.js'
export { CHANGE_ALIGN, newRecoveryPointId, RECOVERY_POINT_ID } from './_backup.js'
export type { BackupCheckpoint, CommittedSubtree } from './_backup-checkpoint.js'
export type { CopiedPoint, CopyMode, CopyOptions, CopyReport } from './_copy.js'
export type { VaultConfig } from './_core.js'
export type { VaultCredentials } from './_keys.js'
export type { GcReport, PruneReport, VaultUsage } from './_maintenance.js'
export type { MirrorReport } from './_mirror.js'
export { OBJECT_CACHE_BYTES, type ObjectCache, type ObjectCacheStats } from './_object-cache.js'
export type { AzureBlobOptions, ObjectStoreOptions, S3Options } from './_object-store-location.js'
export type { RetryOptions } from './_object-store-retry.js'
export type { PointRemoval, SoftDeletedPoint } from './_removal.js'
export type { RestoreOptions } from './_restore.js'
export type { VerifyOptions, VerifyProblem, VerifyReport } from './_verify.js'
export { AzureBlobVaultBackend } from './azure-blob-vault-backend.js'
export { fileSink } from './file-sink.js'
export { fileSource } from './file-source.js'
export { FsVaultBackend } from './fs-vault-backend.js'
export { MemoryVaultBackend } from './memory-vault-backend.js'
export { type OpenVaultBackendOptions, openVaultBackend } from './open-vault-backend.js'
export { hasRetentionRules, type RetentionPolicy, retentionSpan, selectRetained } from './retention.js'
export { S3VaultBackend } from './s3-vault-backend.js'
export type {
  BackupSource,
  ByteRange,
  Consistency,
  DiskBackupMode,
  OperationOptions,
  RecoveryPoint,
  RecoveryPointDisk,
  RestoreSink,
  SourceChanges,
  VaultProgress,
} from './types.js'
export { type CreateVaultOptions, DEFAULT_CHUNK_SIZE, DEFAULT_PACK_SIZE, Vault } from './vault.js'
export type { BackendObject, ObjectRange, VaultBackend } from './vault-backend.js'
export { type DiskReaderOptions, VaultDiskReader } from './vault-disk-reader.js'
export {
  checkVaultLocation,
  deleteVaultFiles,
  holdsVault,
  type VaultFilesReport,
  type VaultLocationContext,
  vaultRecords,
} from './vault-location.js'
export { type VaultInfo, VaultRegistry } from './vault-registry.js'
export {
  applySettingsChange,
  DEFAULT_VAULT_SETTINGS,
  type ImmutabilityState,
  immutable,
  retentionEnd,
  SOFT_DELETE_DAYS,
  type SoftDeleteState,
  softDeleteOn,
  type VaultSettings,
  type VaultSettingsChange,
} from './vault-settings.js'
