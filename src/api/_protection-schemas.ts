import { z } from '@hono/zod-openapi'
import { MONTHS, WEEKDAYS, WEEKS_OF_MONTH } from '../protection/index.js'
import { DiskRefSchema } from './_disk-schemas.js'
import { Page } from './schemas.js'

// The schemas of VMs, backup policies, protected items and their recovery points. Request schemas give
// the shape (types, required fields); the protection component's validateVm and validatePolicy check
// the rest (names, bounds, LUNs, time zones) and name every problem at once, so request objects keep
// fields they do not know for it to report.

const Time = z.string().openapi({ description: 'HH:MM in the policy time zone', example: '01:30' })
const Weekday = z.enum(WEEKDAYS)
const DiskRefInput = z
  .union([z.string(), DiskRefSchema])
  .openapi({ description: 'A disk-store disk: account/container/disk, or its three names' })
const Consistency = z.enum(['AppConsistent', 'FileSystemConsistent', 'CrashConsistent'])

// ------------------------------------------------------------ VMs

const VmFields = {
  name: z.string().openapi({ example: 'web-1' }),
  vmSize: z.string().openapi({ description: 'Size descriptor, e.g. Standard_D2s_v3', example: '2cpu-4gib' }),
  osType: z.enum(['Linux', 'Windows']),
  osName: z.string().optional().openapi({ example: 'Debian 12' }),
  configuration: z.record(z.string(), z.unknown()).openapi({
    description: 'The configuration document saved with every recovery point to rebuild the VM (free-form)',
  }),
}

/** A VM as the API answers it (the agent token is never shown). */
export const Vm = z
  .object({
    ...VmFields,
    osDisk: DiskRefSchema,
    dataDisks: z.array(z.object({ lun: z.number().int(), disk: DiskRefSchema })),
    tempDisk: DiskRefSchema.optional().openapi({ description: 'Scratch disk, never backed up' }),
    agent: z
      .object({ url: z.string(), token: z.string().openapi({ description: 'Always "***" in answers' }) })
      .optional(),
    qga: z
      .string()
      .optional()
      .openapi({ description: 'The QEMU guest agent channel, unix:PATH or libvirt:DOMAIN' }),
    host: z.string().optional().openapi({
      description:
        'On a shared (PostgreSQL) catalog: the Cairn process (HOSTNAME:DATA-FOLDER) that registered the VM and holds its disks; its backups run there',
    }),
    id: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Vm')

export const VmList = Page(Vm).openapi('VmList')

/** What registers a VM (vmSize, osType and configuration have defaults: custom, Linux, {}). */
export const VmRequest = z
  .object({
    name: VmFields.name,
    vmSize: VmFields.vmSize.optional(),
    osType: VmFields.osType.optional(),
    osName: VmFields.osName,
    configuration: VmFields.configuration.optional(),
    osDisk: DiskRefInput,
    dataDisks: z
      .array(z.object({ lun: z.number().int().openapi({ description: '0–63' }), disk: DiskRefInput }))
      .optional(),
    tempDisk: DiskRefInput.optional(),
    agent: z
      .object({
        url: z.string().openapi({ description: 'http(s) URL of the quiesce agent' }),
        token: z.string().openapi({ description: 'At least 8 characters' }),
      })
      .optional(),
    qga: z.string().optional().openapi({
      description:
        'The QEMU guest agent channel: unix:PATH (the virtio-serial socket of QEMU) or libvirt:DOMAIN (through libvirt, which keeps the socket); instead of agent',
    }),
  })
  .loose()
  .openapi('VmRequest')

// ------------------------------------------------------------ backup policies

const Schedule = z
  .union([
    z.object({ frequency: z.literal('Daily'), time: Time }),
    z.object({ frequency: z.literal('Weekly'), days: z.array(Weekday), time: Time }),
    z.object({
      frequency: z.literal('Hourly'),
      intervalHours: z.union([z.literal(4), z.literal(6), z.literal(8), z.literal(12), z.literal(24)]),
      windowStart: Time,
      windowDurationHours: z.number().int(),
    }),
  ])
  .openapi('BackupSchedule', { description: 'Daily, Weekly, or Hourly (Enhanced policies only)' })

const MonthDay = z
  .union([
    z.object({ format: z.literal('Daily'), days: z.array(z.union([z.number().int(), z.literal('Last')])) }),
    z.object({
      format: z.literal('Weekly'),
      weeks: z.array(z.enum(WEEKS_OF_MONTH)),
      weekdays: z.array(Weekday),
    }),
  ])
  .openapi('MonthDaySelector')

const Retention = z
  .object({
    daily: z.object({ days: z.number().int() }).optional(),
    weekly: z.object({ weeks: z.number().int(), daysOfWeek: z.array(Weekday) }).optional(),
    monthly: z.object({ months: z.number().int(), on: MonthDay }).optional(),
    yearly: z
      .object({ years: z.number().int(), monthsOfYear: z.array(z.enum(MONTHS)), on: MonthDay })
      .optional(),
  })
  .openapi('PolicyRetention')

/** A day-of-month selector as a request may give it: format Daily (days) or Weekly (weeks, weekdays), or implied. */
const MonthDayInput = z
  .object({
    format: z.enum(['Daily', 'Weekly']).optional(),
    days: z.array(z.union([z.number(), z.string()])).optional(),
    weeks: z.array(z.string()).optional(),
    weekdays: z.array(z.string()).optional(),
  })
  .loose()
  .openapi({
    description: 'Days of the month (1–28 or "Last"), or weekdays of weeks; format implied by the fields',
  })

/** A backup policy as the API answers it. */
export const Policy = z
  .object({
    name: z.string(),
    vault: z.string().optional().openapi({ description: 'The vault of the policy (in lists)' }),
    policyType: z.enum(['Standard', 'Enhanced']),
    timeZone: z.string().openapi({ description: 'IANA time zone', example: 'Europe/Berlin' }),
    schedule: Schedule,
    instantRpRetentionRangeInDays: z.number().int(),
    retention: Retention,
    copy: z.object({ vault: z.string(), retention: Retention.optional() }).optional().openapi({
      description:
        'Copy every point to this vault after each backup; with retention, only the points it keeps, expiring by it on the copy (docs/protection.md)',
    }),
  })
  .openapi('BackupPolicy')

export const PolicyList = Page(Policy).openapi('BackupPolicyList')

/**
 * What creates or changes a policy: the shape of a policy, with the defaults of policyType (Standard),
 * timeZone (UTC) and instantRpRetentionRangeInDays (2 or 7); bounds are checked by the service.
 */
export const PolicyRequest = z
  .object({
    name: z.string(),
    policyType: z.enum(['Standard', 'Enhanced']).optional(),
    timeZone: z.string().optional(),
    schedule: z
      .object({
        frequency: z.enum(['Daily', 'Weekly', 'Hourly']),
        time: Time.optional(),
        days: z.array(z.string()).optional(),
        intervalHours: z.number().optional(),
        windowStart: Time.optional(),
        windowDurationHours: z.number().optional(),
      })
      .loose()
      .openapi({
        description:
          'Daily: time; Weekly: days and time; Hourly: intervalHours, windowStart, windowDurationHours',
      }),
    instantRpRetentionRangeInDays: z.number().optional(),
    retention: z
      .object({
        daily: z.object({ days: z.number() }).loose().optional(),
        weekly: z
          .object({ weeks: z.number(), daysOfWeek: z.array(z.string()).optional() })
          .loose()
          .optional(),
        monthly: z.object({ months: z.number(), on: MonthDayInput.optional() }).loose().optional(),
        yearly: z
          .object({ years: z.number(), monthsOfYear: z.array(z.string()), on: MonthDayInput.optional() })
          .loose()
          .optional(),
      })
      .loose()
      .optional(),
    copy: z
      .object({ vault: z.string(), retention: z.object({}).loose().optional() })
      .loose()
      .optional()
      .openapi({
        description: "Copy every point to another vault; retention as the policy's (any one rule)",
      }),
  })
  .loose()
  .openapi('BackupPolicyRequest')

/** What changes a policy: a policy request whose name, when given, is that of the path. */
export const PolicyChangeRequest = PolicyRequest.partial({ name: true }).openapi('BackupPolicyChangeRequest')

// ------------------------------------------------------------ protected items

/** A VM under protection in a vault. */
export const ProtectedItem = z
  .object({
    id: z.string(),
    vmName: z.string(),
    vmId: z.string(),
    vault: z.string(),
    policyName: z
      .string()
      .optional()
      .openapi({ description: 'Absent once protection stopped with its data deleted' }),
    state: z.enum(['Protected', 'ProtectionStopped', 'Replica']).openapi({
      description:
        'Replica: a VM known only from the replicated recovery points of a GRS vault on this site (restores only)',
    }),
    includedLuns: z.array(z.number().int()).optional().openapi({ description: 'Absent: every data disk' }),
    includeFutureDisks: z.boolean(),
    knownLuns: z.array(z.number().int()),
    protectedSince: z.string(),
    lastBackupAt: z.string().optional(),
    lastBackupStatus: z.string().optional(),
  })
  .openapi('ProtectedItem')

export const ProtectedItemList = Page(ProtectedItem).openapi('ProtectedItemList')

export const ProtectRequest = z
  .object({
    vm: z.string().min(1),
    policy: z.string().min(1),
    includedLuns: z
      .array(z.union([z.number().int().min(0).max(63), z.string().regex(/^(lun)?\d{1,2}$/)]))
      .optional()
      .openapi({
        description: 'Data disks backed up, as 0, "0" or "lun0" (default all; the OS disk always)',
      }),
    includeFutureDisks: z.boolean().optional(),
  })
  .openapi('ProtectRequest')

export const ChangePolicyRequest = z.object({ policy: z.string().min(1) }).openapi('ChangePolicyRequest')
export const StopProtectionRequest = z.object({ deleteData: z.boolean() }).openapi('StopProtectionRequest')
export const ResumeRequest = z
  .object({ policy: z.string().min(1).optional() })
  .openapi('ResumeProtectionRequest')

/** What stopping protection answers: the item (data retained), or NotProtected with the points deleted. */
export const StopProtectionResult = z
  .union([
    ProtectedItem,
    z.object({
      vmName: z.string(),
      state: z.enum(['Protected', 'ProtectionStopped', 'NotProtected']),
      deletedPoints: z.array(z.string()),
    }),
  ])
  .openapi('StopProtectionResult')

export const Deleted = z.object({ deleted: z.boolean() }).openapi('Deleted')

// ------------------------------------------------------------ recovery points, backup, restore

/** A protected VM's recovery point: its disks at one instant, in the snapshot tier, the vault or both. */
export const VmRecoveryPoint = z
  .object({
    id: z.string(),
    itemId: z.string(),
    time: z.string(),
    kind: z.enum(['Scheduled', 'OnDemand']),
    slot: z.string().optional().openapi({
      description:
        "A scheduled point: the policy slot it was taken for (retention counts it as that slot's day's point)",
    }),
    consistency: Consistency,
    tier: z.enum(['Snapshot', 'SnapshotAndVault', 'Vault']),
    expiresAt: z.string().optional(),
    disks: z.array(
      z.object({
        name: z.string().openapi({ description: '"os" or "lunN"' }),
        lun: z.number().int().optional(),
        source: DiskRefSchema,
        size: z.number(),
        snapshot: z
          .string()
          .optional()
          .openapi({ description: 'Disk-store snapshot while in the snapshot tier' }),
        vaultBackup: z.string().optional().openapi({ description: "The vault's name for the disk's backup" }),
      }),
    ),
    vm: Vm.omit({ id: true, createdAt: true, updatedAt: true }).openapi({
      description: 'The VM as it was backed up (agent token redacted)',
    }),
  })
  .openapi('VmRecoveryPoint')

export const VmRecoveryPointList = Page(VmRecoveryPoint).openapi('VmRecoveryPointList')

export const BackupNowRequest = z
  .object({
    expiresAt: z
      .string()
      .datetime({ offset: true })
      .optional()
      .openapi({ description: 'A future time (default 30 days from now)' }),
  })
  .openapi('BackupNowRequest')

export const VmRestoreRequest = z
  .object({
    recoveryType: z.enum(['AlternateLocation', 'RestoreDisks', 'OriginalLocation']),
    targetVmName: z.string().min(1).optional().openapi({ description: 'AlternateLocation: the new VM' }),
    diskPrefix: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: 'RestoreDisks: default "<vm>-restored"' }),
    disks: z
      .array(z.string())
      .optional()
      .openapi({ description: 'RestoreDisks: which disks, by label ("os", "lun0", …); default all' }),
    luns: z
      .array(z.union([z.number().int(), z.string()]))
      .optional()
      .openapi({ description: 'The older form of "disks" (0, "os"), still accepted' }),
    targetAccount: z.string().min(1).max(64).optional().openapi({
      description:
        "AlternateLocation, RestoreDisks: the storage account of the new disks (default: each source disk's); a cross-region restore names one of this site",
    }),
    targetContainer: z.string().min(1).max(64).optional().openapi({
      description: "AlternateLocation, RestoreDisks: their container (default: each source disk's)",
    }),
  })
  .openapi('VmRestoreRequest')
