// One job followed live: its state, phase, a progress bar, throughput and ETA, and its error with the
// code, from the job's events (the API's event stream) after one read of the job itself.
import { useEffect, useState } from 'preact/hooks'
import type { Job } from '../../src/api/api-types.js'
import { api, jobEvents } from './api.js'
import { useSession } from './session.js'
import { ActionButton, Badge, bytes, duration, Progress } from './ui.js'

const ENDED = new Set(['Completed', 'Failed', 'Cancelled', 'Interrupted'])

/** Whether a job has ended. */
export function ended(job: Job): boolean {
  return ENDED.has(job.state)
}

/** A job's bytes per second so far (while it runs, or over its whole run). */
export function throughput(job: Job): number | undefined {
  if (!job.startedAt || job.progress.bytesDone === 0) return undefined
  const end = job.endedAt ? Date.parse(job.endedAt) : Date.now()
  const s = (end - Date.parse(job.startedAt)) / 1000
  return s > 0 ? job.progress.bytesDone / s : undefined
}

/** Follows one job by its events; calls `onEnd` once when it has ended. */
export function useJob(initial: Job, onEnd?: (job: Job) => void): Job {
  const [job, setJob] = useState(initial)
  useEffect(() => {
    let live = true
    let done = false
    const take = (j: Job) => {
      if (!live || j.id !== initial.id) return
      setJob((old) => (Date.parse(j.updatedAt) >= Date.parse(old.updatedAt) || ended(j) ? j : old))
      if (ended(j) && !done) {
        done = true
        onEnd?.(j)
      }
    }
    const stop = jobEvents({ job: initial.id }, take)
    // Read the job once after subscribing: an event sent before the stream opened is not lost.
    api<Job>('GET', `/api/v1/jobs/${encodeURIComponent(initial.id)}`).then(take, () => {})
    return () => {
      live = false
      stop()
    }
  }, [initial.id])
  return job
}

/** A live job panel: state, progress bar, bytes, throughput, ETA, Cancel, and its error code. */
export function JobProgress({ job: initial, onEnd }: { job: Job; onEnd?: (job: Job) => void }) {
  const job = useJob(initial, onEnd)
  const { can } = useSession()
  const rate = throughput(job)
  return (
    <div class="card job" aria-live="polite" data-job={job.id} data-state={job.state}>
      <p>
        <strong>
          {job.kind} of {job.vm ?? job.resource}
        </strong>{' '}
        <Badge value={job.state} /> <span class="muted">{job.progress.phase}</span>
      </p>
      <Progress percent={job.progress.percent} label={`Progress of job ${job.id}`} />
      <p class="small">
        {job.progress.percent.toFixed(1)}% · {bytes(job.progress.bytesDone)} of{' '}
        {bytes(job.progress.bytesTotal)}
        {rate !== undefined && ` · ${bytes(rate)}/s`}
        {!ended(job) &&
          job.progress.etaSeconds !== undefined &&
          ` · ${duration(job.progress.etaSeconds)} left`}
        {ended(job) && ` · took ${duration(job.durationMs / 1000)}`}
      </p>
      {job.error && (
        <p class="error" role="alert">
          <code>{job.error.code}</code> {job.error.message}
        </p>
      )}
      {!ended(job) && can('jobs/cancel') && (
        <ActionButton
          label="Cancel job"
          run={() => api('POST', `/api/v1/jobs/${encodeURIComponent(job.id)}/cancel`)}
        />
      )}
    </div>
  )
}
