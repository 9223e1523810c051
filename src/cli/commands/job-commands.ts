import type { CommandDef } from '../command.js'
import { followJob, type Job } from './_jobs.js'

/** `cairn job list|show|wait|cancel`. */
export const jobCommands: CommandDef[] = [
  {
    name: 'job list',
    summary: 'List jobs, newest first',
    async run({ client, out }) {
      const { items } = await client.get<{ items: Job[] }>('/api/v1/jobs')
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'id', value: (j) => j.id },
          { header: 'type', value: (j) => j.type },
          { header: 'resource', value: (j) => j.resource },
          { header: 'status', value: (j) => j.status },
          { header: 'started', value: (j) => j.startedAt },
        ]),
      )
    },
  },
  {
    name: 'job show',
    summary: 'Show a job, its progress and its result',
    args: [{ name: 'id', help: 'job id' }],
    async run({ args, client, out }) {
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
      const job = await client.post<Job>(`/api/v1/jobs/${encodeURIComponent(args.id!)}/cancel`)
      out.result(job, (j) => out.line(`Job ${j.id} ${j.status}`))
    },
  },
]
