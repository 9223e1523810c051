import { z } from '@hono/zod-openapi'
import { Page } from './schemas.js'

// The schemas of file recovery: mounts of recovery points over NBD (docs/filerecovery.md).

const DiskLabel = z.string().openapi({ description: '`os` or `lunN`', example: 'os' })

export const MountRequest = z
  .object({
    hours: z
      .number()
      .positive()
      .max(168)
      .optional()
      .openapi({ description: 'Hours the mount lives (default 12, at most 168)', example: 12 }),
  })
  .openapi('MountRequest')

export const Mount = z
  .object({
    id: z.string(),
    vm: z.string(),
    vault: z.string(),
    point: z.string().openapi({ description: 'The recovery point mounted' }),
    pointTime: z.string(),
    createdAt: z.string(),
    createdBy: z.string(),
    expiresAt: z
      .string()
      .openapi({ description: 'After this the service refuses the mount and closes its connections' }),
    auth: z.enum(['psk', 'token']).openapi({
      description:
        'psk: a TLS pre-shared key of this mount only (identity and key below); token: a secret in the export names (NBD without PSK)',
    }),
    psk: z
      .object({
        identity: z.string(),
        key: z.string().openapi({ description: 'Hexadecimal key (psktool format)' }),
      })
      .optional(),
    disks: z.array(
      z.object({
        name: DiskLabel,
        size: z.number().int(),
        from: z.enum(['Snapshot', 'Vault']).openapi({ description: 'The tier the disk is read from' }),
        export: z.string().openapi({ description: 'NBD export name (read-only)' }),
        uri: z.string().openapi({
          description:
            'NBD URI (with PSK its user is the identity: add ?tls-psk-file=FILE, FILE holding "identity:key")',
        }),
      }),
    ),
    script: z.string().openapi({
      description:
        'A bash script for a Linux host: attaches every disk read-only (nbdfuse, losetup -P -r, mount -o ro) and detaches on exit',
    }),
    warnings: z.array(z.string()),
  })
  .openapi('Mount')

export const MountList = Page(Mount).openapi('MountList')
