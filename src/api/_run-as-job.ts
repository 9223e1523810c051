import type { Context } from 'hono'
import type { NewJob } from '../catalog/index.js'
import type { JobContext } from '../protection/index.js'
import { CairnError, isErrorCode } from '../util/index.js'
import type { ApiContext } from './api-context.js'

/**
 * Runs work that a route answers when done (an import, an export, a prune) as a job: it is kept in the
 * history, `cairn job cancel` stops it, a restart marks it Interrupted. The job's id goes back in the
 * `x-cairn-job` header; a client that goes away cancels it. Without a job service the work just runs.
 */
export async function runAsJob<T>(
  ctx: ApiContext,
  c: Context,
  spec: NewJob,
  work: (signal: AbortSignal, job?: JobContext) => Promise<T>,
): Promise<T> {
  const request = c.req.raw.signal
  if (!ctx.jobs) return work(request)
  const jobs = ctx.jobs
  let value: T | undefined
  const started = await jobs.start(spec, async (job) => {
    value = await work(job.signal, job)
    return value
  })
  const cancel = () => void jobs.cancel(started.job.id).catch(() => {})
  request.addEventListener('abort', cancel, { once: true })
  try {
    c.header('x-cairn-job', started.job.id)
    const done = await started.done
    if (done.state !== 'Completed') {
      const code = done.error && isErrorCode(done.error.code) ? done.error.code : 'Internal'
      throw new CairnError(code, done.error?.message ?? `The ${done.kind} ended ${done.state}`)
    }
    return value as T
  } finally {
    request.removeEventListener('abort', cancel)
  }
}
