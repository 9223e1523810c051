import type { Page } from '../../api/index.js'
import { formatDuration } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { CANCEL_ON_INTERRUPT, followJob, type Job, printJob } from './_jobs.js'

const enc = encodeURIComponent

/** `cairn job list|show|watch|cancel`: every long operation of the service (/api/v1/jobs). */
export const jobCommands: CommandDef[] = [
  {
    name: 'job list',
    summary: 'List jobs, newest first: backups, restores, verify, gc … of VMs, disks and vaults',
    options: [
      {
        name: 'state',
        type: 'string',
        value: 'S',
        help: 'Queued, Running, Completed, Failed, Cancelled, Interrupted (comma-separated)',
      },
      { name: 'kind', type: 'string', value: 'K', help: 'backup, restore, verify, gc, …' },
      { name: 'vm', type: 'string', value: 'NAME', help: 'jobs of this VM' },
      { name: 'vault', type: 'string', value: 'NAME', help: 'jobs of this vault' },
      { name: 'since', type: 'string', value: 'TIME', help: 'created at or after (ISO time)' },
      { name: 'limit', type: 'number', value: 'N', help: 'at most N jobs (default 100)' },
      { name: 'cursor', type: 'string', value: 'C', help: 'the next page (printed after a full page)' },
    ],
    async run({ opts, client, out }) {
      const page = await client.get<Page<Job>>('/api/v1/jobs', {
        state: opts.state as string | undefined,
        kind: opts.kind as string | undefined,
        vm: opts.vm as string | undefined,
        vault: opts.vault as string | undefined,
        since: opts.since as string | undefined,
        limit: opts.limit as number | undefined,
        cursor: opts.cursor as string | undefined,
      })
      out.result(page, (p) => {
        out.table(p.items, [
          { header: 'id', value: (j) => j.id },
          { header: 'kind', value: (j) => j.kind },
          { header: 'resource', value: (j) => j.resource },
          { header: 'state', value: (j) => j.state },
          { header: 'phase', value: (j) => j.progress.phase },
          { header: '%', value: (j) => j.progress.percent, align: 'right' },
          { header: 'created', value: (j) => j.createdAt },
          { header: 'duration', value: (j) => formatDuration(j.durationMs) },
          { header: 'error', value: (j) => j.error?.code },
        ])
        if (p.nextCursor) out.note(`more: cairn job list --cursor ${p.nextCursor}`)
      })
    },
  },
  {
    name: 'job show',
    summary: 'Show a job: state, phase, progress, times, result or error',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out }) {
      const job = await client.get<Job>(`/api/v1/jobs/${enc(args.id!)}`)
      out.result(job, (j) => printJob(out, j))
    },
  },
  {
    name: 'job watch',
    summary:
      'Follow a job until it ends, with live progress (event stream); non-zero exit when it did not complete',
    description:
      'Ctrl-C stops watching and leaves the job running (exit 9); with --cancel-on-interrupt it cancels\n' +
      'the job instead and waits until its work has stopped (exit 8).',
    args: [{ name: 'id', help: 'job id' }],
    options: [CANCEL_ON_INTERRUPT],
    async run({ args, opts, client, out, signal }) {
      const job = await client.get<Job>(`/api/v1/jobs/${enc(args.id!)}`)
      const done = await followJob(client, out, job, `${job.kind} ${job.id.slice(0, 8)}`, signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      out.result(done, (j) => printJob(out, j))
    },
  },
  {
    name: 'job cancel',
    summary: 'Cancel a queued or running job; returns once its work has stopped',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out }) {
      const job = await client.post<Job>(`/api/v1/jobs/${enc(args.id!)}/cancel`)
      out.result(job, (j) => out.line(`Job ${j.id} ${j.state}`))
    },
  },
]
