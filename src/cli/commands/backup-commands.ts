import { resolve } from 'node:path'
import type { VaultBackupRequest } from '../../api/index.js'
import { formatBytes, formatDuration } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import {
  CANCEL_ON_INTERRUPT,
  CREDENTIAL_OPTIONS,
  diskRef,
  followJob,
  type Job,
  type RecoveryPointView,
  summary,
  unlockIfGiven,
  v,
} from './_jobs.js'

/** `cairn backup disk`, `cairn backup file`. */
export const backupCommands: CommandDef[] = [
  {
    name: 'backup disk',
    summary: 'Back up disk-store disks (snapshotted at one instant) into a vault',
    description:
      'The first backup reads the allocated ranges; later ones read only the snapshot diff since the\n' +
      'previous recovery point, or compare checksums when that snapshot is gone. Disks are named\n' +
      '[account/][container/]disk (default account devstoreaccount1, container disks).',
    args: [{ name: 'disk', help: 'the OS disk (LUN 0)' }],
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'vault name', required: true },
      { name: 'data-disk', type: 'list', value: 'DISK', help: 'a data disk (LUN 1, 2, … in order); repeat' },
      { name: 'item', type: 'string', value: 'NAME', help: 'protected item name (default the first disk)' },
      {
        name: 'full',
        type: 'boolean',
        help: 'read every byte, trusting no change list (unchanged data is still not stored again)',
      },
      ...CREDENTIAL_OPTIONS,
      CANCEL_ON_INTERRUPT,
    ],
    examples: ['cairn backup disk web-os --data-disk web-data --vault main --item web'],
    async run({ args, opts, client, out, signal }) {
      await unlockIfGiven(client, opts.vault as string, opts)
      const names = [args.disk!, ...((opts['data-disk'] as string[] | undefined) ?? [])]
      const disks = names.map((n, lun) => ({ ...diskRef(n), lun }))
      const job = await client.post<Job, VaultBackupRequest>(`${v(opts.vault as string)}/backups`, {
        disks,
        ...(opts.item ? { item: opts.item as string } : {}),
        ...(opts.full ? { base: 'none' } : {}),
      })
      const done = await followJob(client, out, job, 'backup', signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      const rp = done.result as RecoveryPointView
      out.result(rp, (r) => {
        for (const d of r.disks)
          out.line(
            `${d.name}: ${d.mode}, read ${formatBytes(d.bytesScanned)}, new ${formatBytes(d.bytesNew)}`,
          )
        out.line(
          `Recovery point ${r.id}: added ${formatBytes(r.bytesAdded)} in ${formatDuration(r.durationMs)}`,
        )
      })
    },
  },
  {
    name: 'backup file',
    summary: 'Back up a raw image file on the service host into a vault',
    description:
      'Later backups of the same item build on the latest recovery point: chunks are compared by\n' +
      'checksum and only those that differ are stored. The file must be under a folder the service was\n' +
      'started with --import-root (docs/security.md).',
    args: [{ name: 'path', help: 'a regular file on the service host, under an --import-root' }],
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'vault name', required: true },
      { name: 'item', type: 'string', value: 'NAME', help: 'protected item name (default the file name)' },
      {
        name: 'disk',
        type: 'string',
        value: 'NAME',
        help: 'disk name in the recovery point (default the file name)',
      },
      {
        name: 'full',
        type: 'boolean',
        help: 'read every byte, trusting no change list (unchanged data is still not stored again)',
      },
      ...CREDENTIAL_OPTIONS,
      CANCEL_ON_INTERRUPT,
    ],
    examples: ['cairn backup file /srv/images/web.raw --vault main'],
    async run({ args, opts, client, out, signal }) {
      await unlockIfGiven(client, opts.vault as string, opts)
      const job = await client.post<Job, VaultBackupRequest>(`${v(opts.vault as string)}/backups`, {
        path: resolve(args.path!),
        ...(opts.item ? { item: opts.item as string } : {}),
        ...(opts.disk ? { disk: opts.disk as string } : {}),
        ...(opts.full ? { base: 'none' } : {}),
      })
      const done = await followJob(client, out, job, 'backup', signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      const rp = done.result as RecoveryPointView
      out.result(rp, (r) => {
        const scanned = r.disks.reduce((n, d) => n + d.bytesScanned, 0)
        out.line(
          `Recovery point ${r.id}: read ${summary(scanned, r.durationMs)}, added ${summary(r.bytesAdded, r.durationMs).split(' in ')[0]}`,
        )
      })
    },
  },
]
