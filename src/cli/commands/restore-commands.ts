import { resolve } from 'node:path'
import type { RestoreResult, VaultRestoreRequest } from '../../api/index.js'
import type { CommandDef } from '../command.js'
import {
  CANCEL_ON_INTERRUPT,
  CREDENTIAL_OPTIONS,
  diskRef,
  followJob,
  type Job,
  summary,
  unlockIfGiven,
  v,
} from './_jobs.js'

/** `cairn restore disk`, `cairn restore file`. */
export const restoreCommands: CommandDef[] = [
  {
    name: 'restore disk',
    summary: 'Restore a disk of a recovery point into a new disk-store disk (or over an existing one)',
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'vault name', required: true },
      { name: 'rp', type: 'string', value: 'ID', help: 'recovery point id', required: true },
      {
        name: 'to',
        type: 'string',
        value: 'DISK',
        help: 'target disk, [account/][container/]disk',
        required: true,
      },
      { name: 'disk', type: 'string', value: 'NAME', help: 'disk of the recovery point (default its first)' },
      { name: 'overwrite', type: 'boolean', help: 'replace the content of an existing target disk' },
      ...CREDENTIAL_OPTIONS,
      CANCEL_ON_INTERRUPT,
    ],
    examples: ['cairn restore disk --vault main --rp 20261122T195200123Z-3f2a --to web-os-restored'],
    async run({ opts, client, out, signal }) {
      const vault = opts.vault as string
      await unlockIfGiven(client, vault, opts)
      const started = Date.now()
      const job = await client.post<Job, VaultRestoreRequest>(
        `${v(vault)}/recoveryPoints/${encodeURIComponent(opts.rp as string)}/restore`,
        {
          target: diskRef(opts.to as string),
          ...(opts.disk ? { disk: opts.disk as string } : {}),
          ...(opts.overwrite ? { overwrite: true } : {}),
        },
      )
      const done = await followJob(client, out, job, 'restore', signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      const r = done.result as RestoreResult
      out.result(r, (x) =>
        out.line(`Restored ${summary(x.bytesWritten, Date.now() - started)} into disk ${opts.to}`),
      )
    },
  },
  {
    name: 'restore file',
    summary: 'Restore a disk of a recovery point into a raw file (sparse) on the service host',
    description:
      'The file is written under a temporary name beside it and renamed into place. It must be under a\n' +
      'folder the service was started with --export-root (docs/security.md).',
    args: [{ name: 'path', help: 'target file on the service host, under an --export-root' }],
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'vault name', required: true },
      { name: 'rp', type: 'string', value: 'ID', help: 'recovery point id', required: true },
      { name: 'disk', type: 'string', value: 'NAME', help: 'disk of the recovery point (default its first)' },
      { name: 'overwrite', type: 'boolean', help: 'replace the target file if it exists' },
      ...CREDENTIAL_OPTIONS,
      CANCEL_ON_INTERRUPT,
    ],
    examples: ['cairn restore file /srv/exports/web.raw --vault main --rp 20261122T195200123Z-3f2a'],
    async run({ args, opts, client, out, signal }) {
      const vault = opts.vault as string
      await unlockIfGiven(client, vault, opts)
      const started = Date.now()
      const job = await client.post<Job, VaultRestoreRequest>(
        `${v(vault)}/recoveryPoints/${encodeURIComponent(opts.rp as string)}/restore`,
        {
          path: resolve(args.path!),
          ...(opts.disk ? { disk: opts.disk as string } : {}),
          ...(opts.overwrite ? { overwrite: true } : {}),
        },
      )
      const done = await followJob(client, out, job, 'restore', signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      const r = done.result as RestoreResult
      out.result(r, (x) =>
        out.line(`Restored ${summary(x.bytesWritten, Date.now() - started)} into ${args.path}`),
      )
    },
  },
]
