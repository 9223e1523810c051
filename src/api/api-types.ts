import type { z } from '@hono/zod-openapi'
import type { GcReport, Vault as VaultEngine, VerifyReport } from '../vault/index.js'
import type * as disk from './_disk-schemas.js'
import type * as browse from './_file-browse-schemas.js'
import type * as files from './_file-recovery-schemas.js'
import type * as job from './_job-schemas.js'
import type * as protection from './_protection-schemas.js'
import type * as vault from './_vault-schemas.js'
import type * as auth from './auth-routes.js'
import type * as geo from './disk-geo-routes.js'
import type * as guard from './guard-routes.js'
import type * as pair from './pair-routes.js'
import type * as shared from './schemas.js'
import type * as system from './system-routes.js'
import type * as safety from './vault-safety-routes.js'

// The bodies of the management API as TypeScript types, inferred from the schemas the routes validate
// and document. The CLI imports them type-only (`import type`), so that it loads none of the API at
// start and a renamed field fails to compile on both sides. Requests are the types a client sends (zod
// input types); answers are what the service sends back.

/** The one list envelope: a page of items and, when more follow, the cursor of the next page. */
export interface Page<T> {
  items: T[]
  nextCursor?: string
}

/** The error body of every failing request. */
export type ErrorBody = z.infer<typeof shared.ErrorBody>

export type Info = z.infer<typeof system.Info>
export type Status = z.infer<typeof system.Status>

export type StorageAccount = z.infer<typeof disk.Account>
export type StorageAccountKeys = z.infer<typeof disk.AccountKeys>
export type AccountReplication = z.infer<typeof geo.AccountReplication>
export type UpdateStorageAccountRequest = z.input<typeof geo.UpdateAccountRequest>
export type ReplicationRoundReport = z.infer<typeof geo.RoundReport>
export type AccountFailoverReport = z.infer<typeof geo.FailoverReport>
export type CreateStorageAccountRequest = z.input<typeof disk.CreateAccountRequest>
export type RegenerateKeyRequest = z.input<typeof disk.RegenerateKeyRequest>
export type Container = z.infer<typeof disk.Container>
export type CreateContainerRequest = z.input<typeof disk.CreateContainerRequest>
export type Disk = z.infer<typeof disk.Disk>
export type DiskRef = z.infer<typeof disk.DiskRefSchema>
export type CreateDiskRequest = z.input<typeof disk.CreateDiskRequest>
export type ResizeDiskRequest = z.input<typeof disk.ResizeDiskRequest>
export type WriteResult = z.infer<typeof disk.WriteResult>
export type DiskDiff = z.infer<typeof disk.Diff>
export type PageRanges = z.infer<typeof disk.PageRanges>
export type DiskSpace = z.infer<typeof disk.Space>
export type DiskStoreUsage = z.infer<typeof disk.Usage>
export type DiskImportRequest = z.input<typeof disk.ImportRequest>
export type DiskExportRequest = z.input<typeof disk.ExportRequest>
export type DiskExportResult = z.infer<typeof disk.ExportResult>
export type SnapshotGroupRequest = z.input<typeof disk.SnapshotGroupRequest>
export type SnapshotGroup = z.infer<typeof disk.SnapshotGroup>
export type LeaseRequest = z.input<typeof disk.LeaseRequest>
export type LeaseResult = z.infer<typeof disk.LeaseResult>
export type SequenceNumberRequest = z.input<typeof disk.SequenceNumberRequest>
export type CopyDiskRequest = z.input<typeof disk.CopyDiskRequest>
export type PromoteRequest = z.input<typeof disk.PromoteRequest>

export type Job = z.infer<typeof job.Job>
/** The `result` of a finished verify job. */
export type VerifyResult = VerifyReport
/** The `result` of a finished gc job. */
export type GcResult = GcReport
/** The `result` of a finished restore job of a vault point (into a disk or a file). */
export type RestoreResult = Awaited<ReturnType<VaultEngine['restore']>>

export type Vault = z.infer<typeof vault.Vault>
export type CreateVaultRequest = z.input<typeof vault.CreateVaultRequest>
export type VaultCredentials = z.input<typeof vault.VaultCredentialsRequest>
export type VaultDeleted = z.infer<typeof vault.VaultDeleted>
export type VaultUsage = z.infer<typeof vault.VaultUsage>
export type VaultRecoveryPoint = z.infer<typeof vault.RecoveryPoint>
export type VerifyRequest = z.input<typeof vault.VerifyRequest>
export type PruneRequest = z.input<typeof vault.PruneRequest>
export type PruneReport = z.infer<typeof vault.PruneReport>
export type VaultBackupRequest = z.input<typeof vault.BackupRequest>
export type VaultRestoreRequest = z.input<typeof vault.RestoreRequest>
export type VaultCopyRequest = z.input<typeof vault.VaultCopyRequest>
/** The `result` of a finished copy job. */
export type CopyResult = z.infer<typeof vault.CopyResult>

export type Vm = z.infer<typeof protection.Vm>
export type VmRequest = z.input<typeof protection.VmRequest>
export type BackupPolicy = z.infer<typeof protection.Policy>
export type BackupPolicyRequest = z.input<typeof protection.PolicyRequest>
export type BackupPolicyChangeRequest = z.input<typeof protection.PolicyChangeRequest>
export type ProtectedItem = z.infer<typeof protection.ProtectedItem>
export type ProtectRequest = z.input<typeof protection.ProtectRequest>
export type ChangePolicyRequest = z.input<typeof protection.ChangePolicyRequest>
export type StopProtectionRequest = z.input<typeof protection.StopProtectionRequest>
export type StopProtectionResult = z.infer<typeof protection.StopProtectionResult>
export type ResumeProtectionRequest = z.input<typeof protection.ResumeRequest>
export type VmRecoveryPoint = z.infer<typeof protection.VmRecoveryPoint>
export type BackupNowRequest = z.input<typeof protection.BackupNowRequest>
export type VmRestoreRequest = z.input<typeof protection.VmRestoreRequest>
export type Deleted = z.infer<typeof protection.Deleted>

export type VaultSettings = z.infer<typeof safety.Settings>
export type VaultSettingsChange = z.input<typeof safety.SettingsChange>
export type SoftDeletedRecoveryPoint = z.infer<typeof safety.SoftDeleted>
export type UndeletedRecoveryPoint = z.infer<typeof safety.UndeletedRecoveryPoint>
export type UndeleteItemRequest = z.input<typeof safety.UndeleteItemRequest>
export type UndeleteItemResult = z.infer<typeof safety.UndeleteItemResult>

export type RoleAssignmentRef = z.infer<typeof auth.Assignment>
export type RoleAssignment = z.infer<typeof auth.RoleAssignment>
export type Credential = z.infer<typeof auth.Credential>
export type User = z.infer<typeof auth.User>
export type AuditRecord = z.infer<typeof auth.AuditRecord>
export type LoginRequest = z.input<typeof auth.Login>
export type LoginAnswer = z.infer<typeof auth.LoginAnswer>
export type NewTokenRequest = z.input<typeof auth.NewToken>
export type NewUserRequest = z.input<typeof auth.NewUser>
export type NewAssignmentRequest = z.input<typeof auth.NewAssignment>
export type GuardStatus = z.infer<typeof guard.GuardStatus>
export type GuardRequest = z.infer<typeof guard.GuardRequest>
export type Pair = z.infer<typeof pair.Pair>

export type MountRequest = z.input<typeof files.MountRequest>
export type Mount = z.infer<typeof files.Mount>
export type PointVolume = z.infer<typeof browse.PointVolume>
export type FileEntry = z.infer<typeof browse.FileEntry>
export type FileEntryList = z.infer<typeof browse.FileEntryList>
export type FileVersion = z.infer<typeof browse.FileVersion>
export type ArchiveJobRequest = z.input<typeof browse.ArchiveJobRequest>
