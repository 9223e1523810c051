import { formatDuration } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { followJob, type Job } from './_jobs.js'
import {
  backupJobRows,
  cancelBackupJob,
  findBackupJob,
  type JobRow,
  printBackupJob,
} from './protection-commands.js'

/** `cairn job list|show|wait|cancel` over VM jobs (/api/v1/backupJobs) and vault jobs (/api/v1/jobs). */
export const jobCommands: CommandDef[] = [
  {
    name: 'job list',
    summary: 'List jobs, newest first: VM backups and restores (kept), and vault jobs',
    options: [
      {
        name: 'status',
        type: 'string',
        value: 'S',
        help: 'InProgress, Completed, CompletedWithWarnings, Failed, Cancelled',
      },
      {
        name: 'type',
        type: 'string',
        value: 'T',
        help: 'Backup, Restore, DeleteBackupData, Maintenance (VM jobs)',
      },
      { name: 'vm', type: 'string', value: 'NAME', help: 'jobs of this VM' },
      { name: 'since', type: 'string', value: 'TIME', help: 'started at or after (ISO time)' },
      { name: 'limit', type: 'number', value: 'N', help: 'at most N VM jobs (default 100)' },
    ],
    async run({ opts, client, out }) {
      const rows: JobRow[] = await backupJobRows(client, {
        status: opts.status as string | undefined,
        type: opts.type as string | undefined,
        entity: opts.vm as string | undefined,
        since: opts.since as string | undefined,
        limit: opts.limit as number | undefined,
      })
      // Vault jobs (backup file, restore file, verify, gc) unless a VM-only filter is given.
      if (opts.type === undefined && opts.vm === undefined) {
        const { items } = await client.get<{ items: Job[] }>('/api/v1/jobs')
        const since = opts.since === undefined ? 0 : Date.parse(opts.since as string)
        for (const j of items) {
          if (opts.status !== undefined && j.status !== opts.status) continue
          if (Date.parse(j.startedAt) < since) continue
          rows.push({
            id: j.id,
            type: j.type,
            entity: j.resource,
            status: j.status,
            phase: j.progress?.phase ?? '',
            percent:
              j.progress && j.progress.bytesTotal > 0
                ? Math.round((1000 * j.progress.bytesDone) / j.progress.bytesTotal) / 10
                : undefined,
            started: j.startedAt,
            durationMs: Date.parse(j.endedAt ?? new Date().toISOString()) - Date.parse(j.startedAt),
            error: j.error?.code,
          })
        }
        rows.sort((a, b) => b.started.localeCompare(a.started))
      }
      out.result(rows, (list) =>
        out.table(list, [
          { header: 'id', value: (j) => j.id },
          { header: 'type', value: (j) => j.type },
          { header: 'entity', value: (j) => j.entity },
          { header: 'status', value: (j) => j.status },
          { header: 'phase', value: (j) => j.phase },
          { header: '%', value: (j) => j.percent, align: 'right' },
          { header: 'started', value: (j) => j.started },
          {
            header: 'duration',
            value: (j) => (j.durationMs === undefined ? undefined : formatDuration(j.durationMs)),
          },
          { header: 'error', value: (j) => j.error },
        ]),
      )
    },
  },
  {
    name: 'job show',
    summary: 'Show a job, its progress and its result',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out }) {
      const kept = await findBackupJob(client, args.id!)
      if (kept) return printBackupJob(out, kept)
      const job = await client.get<Job>(`/api/v1/jobs/${encodeURIComponent(args.id!)}`)
      out.result(job, (j) => out.keyValues(Object.entries(j)))
    },
  },
  {
    name: 'job wait',
    summary: 'Follow a job until it ends (Ctrl-C cancels it)',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out, signal }) {
      const job = await client.get<Job>(`/api/v1/jobs/${encodeURIComponent(args.id!)}`)
      const done = await followJob(client, out, job, job.type, signal)
      out.result(done, (j) => out.line(`Job ${j.id} ${j.status}`))
    },
  },
  {
    name: 'job cancel',
    summary: 'Cancel a running job',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out }) {
      const kept = await cancelBackupJob(client, args.id!)
      if (kept) return out.result(kept, (j) => out.line(`Job ${j.id} ${j.status}`))
      const job = await client.post<Job>(`/api/v1/jobs/${encodeURIComponent(args.id!)}/cancel`)
      out.result(job, (j) => out.line(`Job ${j.id} ${j.status}`))
    },
  },
]
