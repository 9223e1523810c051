import type { Context } from 'hono'
import type { RunToEnd } from '../protection/index.js'

/**
 * How a route follows a job it waits for (an import, an export, a prune): the job's id goes back in
 * the `x-cairn-job` header, and a client that goes away cancels it.
 */
export function followJob(c: Context): RunToEnd {
  return { signal: c.req.raw.signal, onJob: (job) => c.header('x-cairn-job', job.id) }
}
