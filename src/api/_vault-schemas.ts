import { z } from '@hono/zod-openapi'
import { Page } from './schemas.js'

// The schemas of vaults, their recovery points, backups, restores, verify, prune and usage.

export const VaultName = z.string().openapi({ param: { name: 'vault', in: 'path' }, example: 'main' })
export const RpId = z
  .string()
  .openapi({ param: { name: 'rp', in: 'path' }, example: '20261122T195200123Z-3f2a' })
/** The path parameters of a vault's routes, and of one of its recovery points. */
export const VaultParams = z.object({ vault: VaultName })
export const PointParams = z.object({ vault: VaultName, rp: RpId })

export const Credentials = {
  passphrase: z.string().min(1).optional(),
  keyFile: z.string().optional().openapi({ description: 'Key file content, base64' }),
}

/** A vault's redundancy and, when GRS, its replication state (docs/replication.md). */
export const ReplicationStatus = z
  .object({
    redundancy: z.enum(['LRS', 'GRS']),
    role: z.enum(['Primary', 'Secondary']).optional(),
    pair: z.string().optional(),
    epoch: z.number().optional(),
    lastSyncAt: z.string().optional(),
    pointsBehind: z.number().optional(),
    bytesBehind: z.number().optional(),
    pointsSinceSync: z.number().optional(),
    lastError: z.string().optional(),
    secondaryHealth: z.string().optional(),
    lastSyncWireBytes: z.number().optional(),
    oldPrimaryNotified: z.boolean().optional(),
  })
  .openapi('ReplicationStatus')

export const Vault = z
  .object({
    name: z.string(),
    backend: z.string(),
    location: z.string(),
    encrypted: z.boolean(),
    createdAt: z.string(),
    unlocked: z.boolean(),
    replication: ReplicationStatus.omit({ oldPrimaryNotified: true })
      .optional()
      .openapi({ description: 'LRS or GRS, and for GRS the replication state (docs/replication.md)' }),
  })
  .openapi('Vault')

export const RecoveryPointDisk = z.object({
  name: z.string(),
  lun: z.number().optional(),
  size: z.number(),
  snapshot: z.string().optional(),
  mode: z.enum(['full', 'incremental', 'checksum']),
  root: z.string().nullable(),
  depth: z.number(),
  bytesScanned: z.number(),
  bytesNew: z.number(),
  chunksNew: z.number(),
  chunksReused: z.number(),
})

export const RecoveryPoint = z
  .object({
    id: z.string(),
    source: z.object({
      kind: z.string(),
      name: z.string(),
      config: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({ description: "The source's configuration when it was backed up, as its owner wrote it" }),
    }),
    consistency: z.string(),
    createdAt: z.string(),
    completedAt: z.string(),
    expiresAt: z.string().nullable(),
    parent: z.string().nullable(),
    disks: z.array(RecoveryPointDisk),
    packs: z.array(z.string()),
    bytesAdded: z.number(),
    durationMs: z.number(),
  })
  .openapi('VaultRecoveryPoint')

export const DiskRefBody = z.object({ account: z.string(), container: z.string(), disk: z.string() })

export const RetentionRules = z.object({
  keepLast: z.number().int().min(0).optional(),
  keepHourly: z.number().int().min(0).optional(),
  keepDaily: z.number().int().min(0).optional(),
  keepWeekly: z.number().int().min(0).optional(),
  keepMonthly: z.number().int().min(0).optional(),
  keepYearly: z.number().int().min(0).optional(),
})

export const VaultList = Page(Vault).openapi('VaultList')
export const RecoveryPointList = Page(RecoveryPoint).openapi('RecoveryPointList')

export const CreateVaultRequest = z
  .object({
    name: z.string(),
    location: z.string().optional().openapi({
      description:
        'An absolute folder (or file:/// URL), empty or absent (docs/security.md, docs/vault.md "Backends"); default DATA/vaults/NAME',
    }),
    attach: z.boolean().optional(),
    redundancy: z.enum(['LRS', 'GRS']).optional().openapi({
      description: 'GRS: a read-only replica on the paired site `pair` (docs/replication.md); default LRS',
    }),
    pair: z.string().optional(),
    sameKeyAs: z.string().optional().openapi({
      description:
        'Encrypt the new vault with the vault key of this (unlocked) vault, protected by the passphrase or key file given: copies between the two then send chunks as ciphertext (docs/vault.md "Copies")',
    }),
    ...Credentials,
  })
  .openapi('CreateVaultRequest')

export const VaultCredentialsRequest = z.object(Credentials).openapi('VaultCredentials')

export const VaultDeleted = z
  .object({
    name: z.string(),
    dataDeleted: z.boolean(),
    left: z
      .array(z.string())
      .openapi({ description: "Files in the folder that were not the vault's, left in place" }),
  })
  .openapi('VaultDeleted')

export const VaultUsage = z
  .object({
    recoveryPoints: z.number(),
    packs: z.number(),
    storedBytes: z.number(),
    logicalBytes: z.number(),
    dataBytes: z.number(),
    dataStoredBytes: z.number(),
    uniqueBytes: z.number(),
    uniqueStoredBytes: z.number(),
    deduplicationRatio: z
      .number()
      .openapi({ description: 'logicalBytes / dataBytes (every stored copy counted)' }),
    compressionRatio: z.number().openapi({ description: 'dataBytes / dataStoredBytes' }),
    overallRatio: z.number().openapi({ description: 'logicalBytes / storedBytes' }),
    perRecoveryPoint: z.array(
      z.object({
        id: z.string(),
        createdAt: z.string(),
        logicalBytes: z.number(),
        bytesAdded: z.number(),
      }),
    ),
  })
  .openapi('VaultUsage')

export const VerifyRequest = z
  .object({ sample: z.number().min(0).max(1).optional(), readData: z.boolean().optional() })
  .openapi('VerifyRequest')

export const PruneRequest = RetentionRules.extend({
  item: z.string().optional(),
  dryRun: z.boolean().optional(),
  includePolicyPoints: z.boolean().optional(),
}).openapi('PruneRequest')

export const PruneReport = z
  .object({
    kept: z.array(z.string()),
    removed: z.array(z.string()),
    skipped: z.array(z.string()),
    dryRun: z.boolean(),
  })
  .openapi('PruneReport')

export const BackupRequest = z
  .object({
    disks: z
      .array(DiskRefBody.extend({ lun: z.number().int().min(0).optional(), name: z.string().optional() }))
      .optional(),
    path: z.string().optional(),
    item: z.string().optional().openapi({ description: 'Name of the protected item; default the file name' }),
    disk: z
      .string()
      .optional()
      .openapi({ description: 'Disk name inside the recovery point; default the file name' }),
    base: z.string().optional().openapi({ description: "'latest' (default), 'none' or a recovery point id" }),
    expiresAt: z.string().datetime().optional(),
  })
  .openapi('VaultBackupRequest')

export const RestoreRequest = z
  .object({
    disk: z.string().optional(),
    target: DiskRefBody.optional(),
    path: z.string().optional(),
    overwrite: z.boolean().optional(),
  })
  .openapi('VaultRestoreRequest')

export const VaultCopyRequest = RetentionRules.extend({
  from: z.string().openapi({ description: 'The vault the points are copied from' }),
  to: z.string().openapi({ description: 'The vault the points are copied into (any backend)' }),
  vm: z.string().optional().openapi({ description: 'Only the points of this protected VM' }),
  points: z.array(z.string()).min(1).optional().openapi({ description: 'Only these recovery points' }),
})
  .strict()
  .openapi('VaultCopyRequest', {
    description:
      "keep* rules: the copies have no expiry and are retained on an immutable target for the longest rule (prune the target with the same rules); without them a copy keeps the source point's expiry",
  })

export const CopiedPoint = z.object({
  id: z.string(),
  item: z.string(),
  state: z.enum(['Copied', 'AlreadyPresent', 'DeletedOnTarget']),
  bytesRead: z.number(),
  bytesWritten: z.number(),
  chunksCopied: z.number(),
  chunksPresent: z.number(),
  bytesNewAtSource: z.number(),
})

export const CopyResult = z
  .object({
    mode: z.enum(['ciphertext', 'reencrypt']),
    sourceVault: z.string(),
    targetVault: z.string(),
    points: z.array(CopiedPoint),
    bytesRead: z.number(),
    bytesWritten: z.number(),
    bytesVerified: z.number(),
    chunksCopied: z.number(),
    chunksPresent: z.number(),
    expiredCopiesRemoved: z
      .array(z.string())
      .optional()
      .openapi({ description: "A policy's copy: the target's expired copies of the VM removed after it" }),
  })
  .openapi('CopyResult')
