import { randomUUID } from 'node:crypto'
import { CairnError, isCairnError } from '../util/index.js'

/** State of a job, after the reference's job statuses. */
export type JobStatus = 'InProgress' | 'Cancelling' | 'Completed' | 'Failed' | 'Cancelled'

/** Progress of a job. */
export interface JobProgress {
  phase: string
  bytesDone: number
  bytesTotal: number
  bytesStored: number
  rate: number
  etaMs: number | null
}

/** A long operation of the service (backup, restore, verify, gc). */
export interface JobInfo {
  id: string
  type: string
  /** What the job works on, e.g. `vaults/main`. */
  resource: string
  status: JobStatus
  progress: JobProgress | null
  startedAt: string
  endedAt: string | null
  result: unknown
  error: { code: string; message: string } | null
}

/** What a job's body receives. */
export interface JobControl {
  signal: AbortSignal
  progress(p: JobProgress): void
}

interface Entry {
  info: JobInfo
  abort: AbortController
  done: Promise<void>
}

/** An in-memory registry of jobs with progress and cancellation; finished jobs are kept (up to `keep`). */
export class JobRegistry {
  readonly #jobs = new Map<string, Entry>()
  readonly #keep: number

  constructor(options: { keep?: number } = {}) {
    this.#keep = options.keep ?? 1000
  }

  /** Starts a job at once and returns its record; the body runs in the background. */
  start(type: string, resource: string, body: (ctl: JobControl) => Promise<unknown>): JobInfo {
    const abort = new AbortController()
    const info: JobInfo = {
      id: randomUUID(),
      type,
      resource,
      status: 'InProgress',
      progress: null,
      startedAt: new Date().toISOString(),
      endedAt: null,
      result: null,
      error: null,
    }
    const done = (async () => {
      try {
        info.result = (await body({ signal: abort.signal, progress: (p) => (info.progress = p) })) ?? null
        info.status = 'Completed'
      } catch (err) {
        const e = isCairnError(err) ? err : new CairnError('Internal', (err as Error)?.message ?? String(err))
        info.status = abort.signal.aborted ? 'Cancelled' : 'Failed'
        info.error = { code: abort.signal.aborted ? 'Cancelled' : e.code, message: e.message }
      } finally {
        info.endedAt = new Date().toISOString()
      }
    })()
    this.#jobs.set(info.id, { info, abort, done })
    this.#trim()
    return { ...info }
  }

  get(id: string): JobInfo {
    return { ...this.#need(id).info }
  }

  list(): JobInfo[] {
    return [...this.#jobs.values()].map((e) => ({ ...e.info })).reverse()
  }

  /** Asks a running job to stop. */
  cancel(id: string): JobInfo {
    const e = this.#need(id)
    if (e.info.status === 'InProgress') {
      e.info.status = 'Cancelling'
      e.abort.abort()
    }
    return { ...e.info }
  }

  /** Resolves when the job has ended. */
  async wait(id: string): Promise<JobInfo> {
    const e = this.#need(id)
    await e.done
    return { ...e.info }
  }

  /** Cancels every running job and waits for all to end. */
  async close(): Promise<void> {
    for (const e of this.#jobs.values()) if (e.info.status === 'InProgress') e.abort.abort()
    await Promise.all([...this.#jobs.values()].map((e) => e.done))
  }

  #need(id: string): Entry {
    const e = this.#jobs.get(id)
    if (!e) throw new CairnError('JobNotFound', `Cannot find job "${id}": no job has that id`)
    return e
  }

  #trim(): void {
    if (this.#jobs.size <= this.#keep) return
    for (const [id, e] of this.#jobs) {
      if (this.#jobs.size <= this.#keep) break
      if (e.info.endedAt) this.#jobs.delete(id)
    }
  }
}
