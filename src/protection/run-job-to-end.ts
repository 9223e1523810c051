import type { Job, NewJob } from '../catalog/index.js'
import { CairnError, isErrorCode } from '../util/index.js'
import type { JobContext, JobService } from './job-service.js'

/** How a caller follows work that it waits for (an import, an export, a prune). */
export interface RunToEnd {
  /** The caller's own signal (a client going away): cancels the job. */
  signal?: AbortSignal
  /** Told the job as soon as it exists (the API answers its id in the `x-cairn-job` header). */
  onJob?: (job: Job) => void
}

/**
 * Runs work that its caller waits for as a job: it is kept in the history, `cairn job cancel` stops it,
 * a restart marks it Interrupted; the caller's signal cancels it. Answers the work's value, or throws
 * the job's error. Without a job service the work just runs under the caller's signal.
 */
export async function runJobToEnd<T>(
  jobs: JobService | undefined,
  spec: NewJob,
  work: (signal: AbortSignal, job?: JobContext) => Promise<T>,
  run: RunToEnd = {},
): Promise<T> {
  const outer = run.signal ?? new AbortController().signal
  if (!jobs) return work(outer)
  let value: T | undefined
  const started = await jobs.start(spec, async (job) => {
    value = await work(job.signal, job)
    return value
  })
  const cancel = () => void jobs.cancel(started.job.id).catch(() => {})
  outer.addEventListener('abort', cancel, { once: true })
  try {
    run.onJob?.(started.job)
    const done = await started.done
    if (done.state !== 'Completed') {
      const code = done.error && isErrorCode(done.error.code) ? done.error.code : 'Internal'
      throw new CairnError(code, done.error?.message ?? `The ${done.kind} ended ${done.state}`)
    }
    return value as T
  } finally {
    outer.removeEventListener('abort', cancel)
  }
}
