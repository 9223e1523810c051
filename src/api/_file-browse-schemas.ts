import { z } from '@hono/zod-openapi'
import { Page } from './schemas.js'

// The schemas of browsing recovery points: volumes, directory entries, file history, archive jobs
// (docs/filerecovery.md, "Browse").

export const PointVolume = z
  .object({
    disk: z.string().openapi({ description: '`os` or `lunN`', example: 'os' }),
    partition: z.number().int().nullable().openapi({
      description:
        'Partition number as Linux numbers it (MBR logical from 5); null: a whole-disk file system',
    }),
    start: z.number().int(),
    size: z.number().int(),
    scheme: z.enum(['mbr', 'gpt', 'none']),
    partitionType: z.string().optional(),
    partitionName: z.string().optional(),
    type: z.string().openapi({
      description: 'ext, fat, ntfs, lvm, xfs, swap, btrfs, luks, bitlocker, iso9660, extended, unknown',
    }),
    fsType: z.string().openapi({ example: 'ext4' }),
    label: z.string().optional(),
    uuid: z.string().optional(),
    supported: z.boolean().openapi({ description: 'True when the service can browse it' }),
    reason: z.string().optional().openapi({ description: 'Why it cannot be browsed' }),
  })
  .openapi('PointVolume')

export const PointVolumeList = Page(PointVolume).openapi('PointVolumeList')

export const FileEntry = z
  .object({
    name: z.string(),
    path: z.string().openapi({ description: 'Absolute path inside the file system' }),
    type: z.enum(['file', 'dir', 'symlink', 'other']),
    size: z.number().int(),
    mode: z.number().int().openapi({ description: 'POSIX mode with the file type bits (0o100644 = 33188)' }),
    uid: z.number().int(),
    gid: z.number().int(),
    mtime: z.number().openapi({ description: 'Modification time, ms since the epoch' }),
    target: z.string().optional().openapi({ description: 'Symlink target' }),
    id: z
      .string()
      .openapi({ description: 'Identity of the file in its file system: equal ids are hard links' }),
    nlink: z.number().int(),
  })
  .openapi('FileEntry')

export const FileEntryList = Page(FileEntry)
  .extend({
    total: z.number().int().openapi({ description: 'Entries of the directory' }),
    disk: z.string(),
    partition: z.number().int().nullable(),
  })
  .openapi('FileEntryList')

/** Where in a point: the query of every browse route. */
export const FileQuery = z.object({
  path: z
    .string()
    .default('/')
    .openapi({ description: 'Path inside the file system; `..` never leaves it', example: '/home' }),
  disk: z.string().optional().openapi({ description: '`os` (default) or `lunN`' }),
  partition: z
    .string()
    .regex(/^(\d+|disk)$/)
    .optional()
    .openapi({
      description:
        'Partition number, or `disk` for a whole-disk file system (default: the first browsable volume)',
    }),
})

export const ArchiveFormat = z.enum(['tar', 'zip'])

/** One path, or several of one volume (each stored under its own name at the archive's top). */
export const ArchivePaths = z.union([z.string(), z.array(z.string())]).openapi({
  description:
    'A file or folder, or several (at most 256) of one volume: each is stored under its own name at the top of the archive; a path given twice or inside another is stored once; `..` never leaves the file system',
  example: ['/home/ana/docs', '/etc/app/config.yaml'],
})

export const ArchiveJobRequest = z
  .object({
    path: ArchivePaths,
    format: ArchiveFormat.default('tar'),
    to: z.string().openapi({ description: 'A file under an export root of the service (--export-root)' }),
    overwrite: z.boolean().optional(),
    disk: z.string().optional(),
    partition: z.union([z.number().int(), z.literal('disk')]).optional(),
  })
  .openapi('ArchiveJobRequest')

export const FileVersion = z
  .object({
    points: z
      .array(z.object({ id: z.string(), time: z.string() }))
      .openapi({ description: 'The recovery points holding this very content, oldest first' }),
    size: z.number().int(),
    mtime: z.number(),
    sha256: z.string(),
  })
  .openapi('FileVersion')

export const FileHistory = Page(FileVersion).openapi('FileHistory')
