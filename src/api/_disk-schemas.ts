import { z } from '@hono/zod-openapi'
import type { AccountInfo, ByteRange, DiskInfo, DiskRef } from '../diskstore/index.js'
import type { DiskGuard } from '../protection/index.js'
import type { ApiContext } from './api-context.js'
import { Page } from './schemas.js'

// The schemas, parameters and paths shared by the routes of accounts, containers, disks and snapshots.

export { body, json } from './schemas.js'

export const Account = z
  .object({
    name: z.string(),
    region: z.string(),
    redundancy: z.string(),
    createdOn: z.string(),
  })
  .openapi('StorageAccount')

export const AccountList = Page(Account).openapi('StorageAccountList')

export const CreateAccountRequest = z
  .object({
    name: z.string().openapi({ example: 'prodeu1' }),
    region: z.string().optional(),
    redundancy: z.enum(['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']).optional(),
    pair: z.string().optional().openapi({
      description: 'GRS and RA-GRS: the paired site to replicate the disks to (docs/replication.md)',
    }),
  })
  .openapi('CreateStorageAccountRequest')

export const RegenerateKeyRequest = z
  .object({ keyName: z.enum(['key1', 'key2']) })
  .openapi('RegenerateKeyRequest')

export const AccountKeys = z
  .object({ account: z.string(), keys: z.tuple([z.string(), z.string()]) })
  .openapi('StorageAccountKeys')

/** An account as every route but the keys routes answers it: without its Shared Keys. */
export const accountJson = (a: AccountInfo): z.infer<typeof Account> => ({
  name: a.name,
  region: a.region,
  redundancy: a.redundancy,
  createdOn: a.createdOn,
})

export const Container = z
  .object({
    account: z.string(),
    name: z.string(),
    metadata: z.record(z.string(), z.string()),
    etag: z.string(),
    lastModified: z.string(),
    createdOn: z.string(),
  })
  .openapi('Container')

export const ContainerList = Page(Container).openapi('ContainerList')

export const DiskRefSchema = z
  .object({ account: z.string(), container: z.string(), disk: z.string() })
  .openapi('DiskRef')

export const Disk = z
  .object({
    ref: DiskRefSchema,
    snapshot: z.string().optional().openapi({ example: '2026-11-22T19:37:17.1234567Z' }),
    size: z.number(),
    sequenceNumber: z.number(),
    metadata: z.record(z.string(), z.string()),
    content: z.record(z.string(), z.string()),
    etag: z.string(),
    lastModified: z.string(),
    createdOn: z.string(),
    lease: z.object({
      state: z.string(),
      status: z.string(),
      duration: z.string().optional(),
      id: z.string().optional(),
    }),
    usedBytes: z.number().openapi({ description: 'Bytes of written pages (used size)' }),
    copy: z.record(z.string(), z.string()).optional(),
    incrementalCopy: z.boolean().optional(),
  })
  .openapi('Disk')

export const DiskList = Page(Disk).openapi('DiskList')

export const WriteResult = z
  .object({ etag: z.string(), lastModified: z.string(), sequenceNumber: z.number() })
  .openapi('WriteResult')

export const Ranges = z
  .array(z.tuple([z.number(), z.number()]))
  .openapi({ description: 'Byte ranges as [start, endInclusive] (Azure style)', example: [[0, 4095]] })

export const Diff = z
  .object({
    pageRanges: Ranges,
    clearRanges: Ranges,
    nextCursor: z
      .string()
      .optional()
      .openapi({ description: 'Pass as ?cursor= for the next ranges; absent on the last page' }),
  })
  .openapi('DiskDiff')

export const Space = z
  .object({
    ref: DiskRefSchema,
    snapshot: z.string().optional(),
    usedBytes: z.number(),
    exclusiveBytes: z
      .number()
      .openapi({ description: 'Bytes of stored data only this disk or snapshot sees' }),
  })
  .openapi('DiskSpace')

export const Usage = z
  .object({ segmentBytes: z.number(), liveBytes: z.number(), segments: z.number() })
  .openapi('DiskStoreUsage')

export const Size = z
  .union([z.number(), z.string()])
  .openapi({ description: 'Bytes, or a size such as 1GiB', example: '1GiB' })
export const Metadata = z.record(z.string(), z.string())
export const Count = z.coerce.number().int().nonnegative()

export const AccountParams = z.object({ account: z.string() })
export const ContainerParams = AccountParams.extend({ container: z.string() })
export const DiskParams = ContainerParams.extend({ disk: z.string() })
export const SnapshotParams = DiskParams.extend({ snapshot: z.string() })
/** `force=true` deletes what protection depends on (recovery points fall back to the vault tier or go). */
export const Force = z.object({ force: z.enum(['true', 'false']).optional() })

export const A = '/api/v1/accounts'
export const C = `${A}/{account}/containers`
export const D = `${C}/{container}/disks`
export const DISK = `${D}/{disk}`

export const toInclusive = (ranges: ByteRange[]) => ranges.map((r): [number, number] => [r.start, r.end - 1])

export const ref = (p: { account: string; container: string; disk: string }): DiskRef => ({
  account: p.account,
  container: p.container,
  disk: p.disk,
})

/** Plain JSON of a DiskInfo (content and copy as string records). */
export const diskJson = (d: DiskInfo) => JSON.parse(JSON.stringify(d)) as z.infer<typeof Disk>

/** Deletes go through protection's guard; a service without protection deletes directly. */
export function deleteGuard(
  ctx: ApiContext,
): Pick<DiskGuard, 'deleteAccount' | 'deleteContainer' | 'deleteDisk' | 'deleteSnapshot'> {
  const store = ctx.diskStore
  return (
    ctx.protection?.guard ?? {
      deleteAccount: (a) => store.deleteAccount(a),
      deleteContainer: (a, c) => store.deleteContainer(a, c),
      deleteDisk: (r, { force: _f, ...o } = {}) => store.deleteDisk(r, o),
      deleteSnapshot: (r, s) => store.deleteSnapshot(r, s),
    }
  )
}

export const CreateDiskRequest = z
  .object({
    size: Size,
    sequenceNumber: z.number().int().nonnegative().optional(),
    metadata: Metadata.optional(),
    overwrite: z.boolean().optional(),
  })
  .openapi('CreateDiskRequest')

export const ImportRequest = z
  .object({
    path: z.string(),
    expect: z
      .object({
        size: z.number().int().nonnegative(),
        dev: z.number().int().nonnegative(),
        ino: z.number().int().nonnegative(),
        mtimeMs: z.number().nonnegative(),
      })
      .optional()
      .openapi({
        description:
          "The file the client means (its size, device, inode and modification time, as the client's stat sees them): the import is refused with HostFileMismatch when the service's file differs. `cairn disk import` sends it when it lets a service on its own host read the file",
      }),
  })
  .openapi('DiskImportRequest')

export const ExportRequest = z
  .object({ path: z.string(), snapshot: z.string().optional(), overwrite: z.boolean().optional() })
  .openapi('DiskExportRequest')

export const ExportResult = z.object({ path: z.string(), size: z.number() }).openapi('DiskExportResult')

export const SnapshotGroupRequest = z
  .object({ disks: z.array(DiskRefSchema).min(1) })
  .openapi('SnapshotGroupRequest')

export const SnapshotGroup = z.object({ items: z.array(Disk) }).openapi('SnapshotGroup')

export const LeaseRequest = z
  .object({
    action: z.enum(['acquire', 'renew', 'release', 'change', 'break']),
    duration: z
      .number()
      .int()
      .optional()
      .openapi({ description: 'acquire: 15–60 seconds, or -1 for infinite' }),
    leaseId: z.string().optional().openapi({ description: 'renew, release, change: the active lease id' }),
    proposedId: z.string().optional().openapi({ description: 'acquire, change: the new lease id' }),
    breakPeriod: z
      .number()
      .int()
      .min(0)
      .max(60)
      .optional()
      .openapi({ description: 'break: seconds to wait' }),
  })
  .openapi('LeaseRequest')

export const LeaseResult = z
  .object({
    id: z.string().optional(),
    leaseTime: z.number().optional(),
    etag: z.string(),
    lastModified: z.string(),
  })
  .openapi('LeaseResult')

export const SequenceNumberRequest = z
  .object({
    action: z.enum(['max', 'update', 'increment']),
    value: z.number().int().min(0).optional(),
    leaseId: z.string().optional(),
  })
  .openapi('SequenceNumberRequest')

export const CopyDiskRequest = z
  .object({
    target: DiskRefSchema,
    snapshot: z.string().optional(),
    overwrite: z.boolean().optional(),
    metadata: Metadata.optional(),
  })
  .openapi('CopyDiskRequest')

export const ResizeDiskRequest = z
  .object({ size: Size, leaseId: z.string().optional() })
  .openapi('ResizeDiskRequest')

export const CreateContainerRequest = z
  .object({ name: z.string(), metadata: Metadata.optional() })
  .openapi('CreateContainerRequest')

export const PageRanges = z.object({ pageRanges: Ranges }).openapi('PageRanges')

export const PromoteRequest = z
  .object({ snapshot: z.string(), leaseId: z.string().optional() })
  .openapi('PromoteRequest')
