import {
  HOST_BOUND_KINDS,
  isJobFinished,
  type Job,
  type JobFilter,
  type JobLeases,
  type JobPage,
  type JobStore,
  type NewJob,
} from '../catalog/index.js'
import { CairnError, ioError, isCairnError, type Logger, silentLogger } from '../util/index.js'

/** What the event stream carries: a job was created, moved on, or ended (with the job as it is now). */
export interface JobEvent {
  type: 'job.created' | 'job.progress' | 'job.finished'
  job: Job
}

/** What a job's work receives. */
export interface JobContext {
  /** The job as created. */
  readonly job: Job
  /** Aborted when the job is cancelled or the service stops; pass it down to every engine call. */
  readonly signal: AbortSignal
  /** Kind-specific facts; saved with each phase change and at the end. */
  readonly details: Record<string, unknown>
  /** Reports bytes (saved and sent at most every progress interval). */
  progress(p: { bytesDone?: number; bytesTotal?: number; phase?: string }): void
  /** Enters a phase; saved (with details) and sent at once. */
  phase(name: string): Promise<void>
  /** Saves the details now, without an event (a step's record, a backup's checkpoint). */
  save(): Promise<void>
  /** True when this run resumes the work of a service that died (the job's details are as it left them). */
  readonly resumed: boolean
  /**
   * Asked by work that was aborted and could go on later: when the service is stopping (not a cancel),
   * the job is left unfinished (phase `Suspended`) to resume at the next start, and this answers true
   * (the work then keeps what it made); otherwise false (it undoes its work as usual).
   */
  suspend(): boolean
}

/**
 * At start-up, what to do with a job the last run left unfinished: the work that resumes it, or
 * undefined when it cannot resume (it ends Interrupted). A CairnError ends it Interrupted with that
 * error (why it could not resume).
 */
export type JobResumer = (job: Job) => Promise<JobBody | undefined>

/** The work of a job; what it resolves with is the job's result. */
export type JobBody = (ctx: JobContext) => Promise<unknown>

/** A started job and the promise of its end (which never rejects). */
export interface StartedJob {
  job: Job
  done: Promise<Job>
  /** Scale-out: the process the job was queued for (it runs there, not here). */
  queuedFor?: string
}

/** How often a job queued for another process is looked up (StartedJob.done): from `first` ms to `most`. */
const QUEUED_POLL_MS = { first: 500, most: 5000 }

/** Which job events a watcher wants: every field given must match the job. */
export interface JobEventFilter {
  job?: string
  kind?: Job['kind']
  vm?: string
  vault?: string
}

/** Most watchers at once (the clients of the event stream); one more is refused with TooManySubscribers. */
export const MAX_JOB_WATCHERS = 32

/** Options of a JobService. */
export interface JobServiceOptions {
  store: JobStore
  logger?: Logger
  /** How often progress is saved and sent (default 250 ms). */
  progressIntervalMs?: number
  /** Most watchers at once (default MAX_JOB_WATCHERS). */
  maxWatchers?: number
  /**
   * Scale-out (docs/scale-out.md): each job this service runs is leased to `owner` in the catalog and
   * the lease renewed every `leaseMs / 3`; a job whose lease another worker took over (this process
   * stalled past its lease) is stopped here without another word written.
   */
  leases?: { store: JobLeases; owner: string; leaseMs?: number }
}

/** How long a job lease lasts without a heartbeat (default of JobServiceOptions.leases.leaseMs). */
export const JOB_LEASE_MS = 30_000

interface Running {
  abort: AbortController
  done: Promise<Job>
}

/** Why the service aborts its jobs when it stops: they end Interrupted, not Cancelled. */
class Stopping extends Error {}

/** Why a job stops here when another worker took its lease over: nothing more is written for it. */
class LeaseLost extends Error {}

/**
 * Runs every long operation of the service as a persisted job: Queued → Running → Completed, Failed,
 * Cancelled (cancel() aborts the work's signal and waits until it has stopped) or Interrupted (the
 * service stopped, or died: recover() at the next start). Sends each change to its subscribers.
 */
export class JobService {
  readonly #store: JobStore
  readonly #log: Logger
  readonly #interval: number
  readonly #running = new Map<string, Running>()
  readonly #subscribers = new Map<(e: JobEvent) => void, (() => void) | undefined>()
  readonly #maxWatchers: number
  readonly #leases: JobServiceOptions['leases']
  readonly #observers = new Set<(e: JobEvent) => void>()
  #heartbeat: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: JobServiceOptions) {
    this.#store = options.store
    this.#leases = options.leases
    this.#log = options.logger ?? silentLogger
    this.#maxWatchers = options.maxWatchers ?? MAX_JOB_WATCHERS
    this.#interval = options.progressIntervalMs ?? 250
  }

  /** The owner this service leases its jobs to (scale-out), if it leases them. */
  get owner(): string | undefined {
    return this.#leases?.owner
  }

  /** Renews the leases of the jobs running here; stops those another worker took over. */
  async renewLeases(): Promise<void> {
    const l = this.#leases
    if (!l || this.#running.size === 0) return
    const lost = await l.store.renew(l.owner, [...this.#running.keys()], l.leaseMs ?? JOB_LEASE_MS)
    for (const id of lost) {
      this.#log.warn('another worker took this job over; stopping it here', { job: id })
      this.#running.get(id)?.abort.abort(new LeaseLost(`Job ${id} was taken over by another worker`))
    }
  }

  #beat(): void {
    const l = this.#leases
    if (!l || this.#heartbeat) return
    this.#heartbeat = setInterval(
      () =>
        void this.renewLeases().catch((err) =>
          this.#log.warn('cannot renew the job leases', { message: String(err) }),
        ),
      Math.max(100, Math.floor((l.leaseMs ?? JOB_LEASE_MS) / 3)),
    )
    this.#heartbeat.unref()
  }

  /** The job store (reads). */
  get store(): JobStore {
    return this.#store
  }

  /**
   * Records a job and starts its work at once; answers the job and a promise of its end. An
   * `interruptOn` signal (a scheduler stopping) ends the job Interrupted rather than Cancelled.
   */
  async start(spec: NewJob, body: JobBody, options: { interruptOn?: AbortSignal } = {}): Promise<StartedJob> {
    // With leases, the job names its host: jobs bound to this host's disk store are resumed only here.
    // Leased from its creation: no worker's claim of queued jobs can take it before it starts here.
    const l = this.#leases
    const host = l?.owner
    const bound = host !== undefined && HOST_BOUND_KINDS.includes(spec.kind) ? { host } : {}
    const created = await this.#store.create(
      l && host
        ? {
            ...spec,
            ...bound,
            details: { ...spec.details, host },
            lease: { owner: host, until: Date.now() + (l.leaseMs ?? JOB_LEASE_MS) },
          }
        : spec,
    )
    this.#emit({ type: 'job.created', job: created })
    return this.#launch(created, body, options, false)
  }

  /**
   * Scale-out: records a job Queued for the process `host` (whose disks it needs) without running it
   * here; that process's worker claims it (JobLeases.claimQueued) and starts it (startClaimed). `done`
   * follows it in the catalog until it ends (or this service stops: then it is the job as it is).
   */
  async queue(spec: NewJob, host: string): Promise<StartedJob> {
    const created = await this.#store.create({ ...spec, host, details: { ...spec.details, host } })
    this.#emit({ type: 'job.created', job: created })
    this.#log.info('job queued for the host of its disks', { job: created.id, kind: created.kind, host })
    // Its events happen in the host's process: this one looks the job up and sends what changed to its
    // own watchers (the event stream a client of this API follows), less often the longer it takes.
    const done = (async () => {
      let seen = created.updatedAt
      let wait = QUEUED_POLL_MS.first
      for (;;) {
        await new Promise((r) => setTimeout(r, wait).unref())
        wait = Math.min(QUEUED_POLL_MS.most, Math.round(wait * 1.5))
        const job = await this.#store.get(created.id).catch(() => undefined)
        if (job === undefined) {
          if (this.#closed) return created
          continue
        }
        // Watchers only: the host's own observers (its metrics) count the job, not these.
        if (isJobFinished(job)) {
          this.#emit({ type: 'job.finished', job }, { watchersOnly: true })
          return job
        }
        if (this.#closed) return job
        if (job.updatedAt !== seen) this.#emit({ type: 'job.progress', job }, { watchersOnly: true })
        seen = job.updatedAt
      }
    })()
    return { job: created, done, queuedFor: host }
  }

  /**
   * Starts jobs this worker claimed from the queue (routed to it, still Queued): `starter` gives each
   * one's work; a job it gives none for, or refuses with an error, ends Failed with that error.
   */
  async startClaimed(
    jobs: Job[],
    starter: (job: Job) => Promise<JobBody | undefined>,
  ): Promise<StartedJob[]> {
    const out: StartedJob[] = []
    for (const job of jobs) {
      let body: JobBody | undefined
      let why = { code: 'Internal', message: `Cannot start a ${job.kind} job queued for this host` }
      try {
        body = await starter(job)
      } catch (err) {
        if (!isCairnError(err)) this.#log.error('cannot start a queued job', { job: job.id, err })
        else why = { code: err.code, message: err.message }
      }
      if (body) {
        out.push(this.#launch(job, body, {}, false))
        continue
      }
      this.#finished(await this.#store.finish(job.id, { state: 'Failed', error: why }))
    }
    return out
  }

  /** How many jobs run in this service now. */
  get runningCount(): number {
    return this.#running.size
  }

  #launch(created: Job, body: JobBody, options: { interruptOn?: AbortSignal }, resumed: boolean): StartedJob {
    const abort = new AbortController()
    const outer = options.interruptOn
    if (outer) {
      const stop = () => abort.abort(new Stopping('The scheduler stopped'))
      if (outer.aborted) stop()
      else outer.addEventListener('abort', stop, { once: true })
    }
    let resolveDone!: (j: Job) => void
    const done = new Promise<Job>((r) => {
      resolveDone = r
    })
    this.#running.set(created.id, { abort, done })
    void this.#run(created, abort, body, resumed).then((j) => {
      this.#running.delete(created.id)
      resolveDone(j)
    })
    return { job: created, done }
  }

  async get(id: string): Promise<Job> {
    return this.#store.get(id)
  }

  async list(filter: JobFilter = {}): Promise<JobPage> {
    return this.#store.list(filter)
  }

  /** True while the job's work runs in this service. */
  isRunning(id: string): boolean {
    return this.#running.has(id)
  }

  /** Cancels a queued or running job: its work is aborted and this resolves once it has stopped. */
  async cancel(id: string): Promise<Job> {
    const r = this.#running.get(id)
    if (!r) {
      const job = await this.#store.get(id)
      if (isJobFinished(job)) {
        throw new CairnError('JobNotRunning', `Cannot cancel job "${id}": it has already ended ${job.state}`)
      }
      // Unfinished but not running here: nothing can stop it any more, so it ends now.
      return this.#finished(await this.#store.finish(id, { state: 'Cancelled', error: cancelledError(job) }))
    }
    r.abort.abort(new CairnError('Cancelled', `Job ${id} was cancelled`))
    return r.done
  }

  /** Resolves with the job once it has ended. */
  async wait(id: string): Promise<Job> {
    const r = this.#running.get(id)
    return r ? r.done : this.#store.get(id)
  }

  /**
   * Receives every job event until the returned function is called; `onEnd` is called when the
   * service ends every subscription (it stops).
   */
  subscribe(listener: (e: JobEvent) => void, onEnd?: () => void): () => void {
    this.#subscribers.set(listener, onEnd)
    return () => void this.#subscribers.delete(listener)
  }

  /**
   * Receives the events of the jobs that match `filter` until the returned function is called (the
   * event stream of the API and its CLI `watch`). Refused with TooManySubscribers while as many
   * listen as the service serves.
   */
  watch(filter: JobEventFilter, listener: (e: JobEvent) => void, onEnd?: () => void): () => void {
    if (this.#subscribers.size >= this.#maxWatchers)
      throw new CairnError(
        'TooManySubscribers',
        `Cannot open the event stream: it already serves ${this.#maxWatchers} clients`,
      )
    const wanted = (e: JobEvent) =>
      (filter.job === undefined || e.job.id === filter.job) &&
      (filter.kind === undefined || e.job.kind === filter.kind) &&
      (filter.vm === undefined || e.job.vm === filter.vm) &&
      (filter.vault === undefined || e.job.vault === filter.vault)
    return this.subscribe((e) => {
      if (wanted(e)) listener(e)
    }, onEnd)
  }

  /**
   * Receives every job event, like subscribe(), without counting as a watcher (the metrics); never
   * ended by endSubscriptions(). Answers the function that stops it.
   */
  observe(listener: (e: JobEvent) => void): () => void {
    this.#observers.add(listener)
    return () => void this.#observers.delete(listener)
  }

  /** Ends every subscription (event streams close) so that the API can stop. */
  endSubscriptions(): void {
    const ends = [...this.#subscribers.values()]
    this.#subscribers.clear()
    for (const end of ends) end?.()
  }

  /** How many subscribers listen now. */
  get subscribers(): number {
    return this.#subscribers.size
  }

  /**
   * At start-up: jobs the last run left Queued or Running (it died, or stopped before they could
   * end) resume when `resume` gives their work (they go on Running, phase `Resumed`, their details as
   * the last run saved them, with the time in `details.resumed`); the others are marked Interrupted.
   * Answers the interrupted ones, details included, for clean-up; `onResumed` is told each resumed job.
   */
  async recover(
    options: { resume?: JobResumer; onResumed?: (started: StartedJob) => void; jobs?: Job[] } = {},
  ): Promise<Job[]> {
    const reason =
      'The job was cut short when the Cairn service stopped or died; its partial work was undone. Run it again.'
    const out: Job[] = []
    // `jobs`: the ones this worker claimed (scale-out: their owner's lease expired); else every unfinished one.
    for (const job of options.jobs ?? (await this.#store.listUnfinished())) {
      let body: JobBody | undefined
      let why = { code: 'JobInterrupted', message: reason }
      try {
        body = await options.resume?.(job)
      } catch (err) {
        if (!isCairnError(err)) this.#log.error('cannot resume a job', { job: job.id, err })
        why = isCairnError(err)
          ? { code: err.code, message: err.message }
          : { code: 'JobInterrupted', message: `${reason} It could not resume: ${String(err)}` }
      }
      if (body) {
        const resumed = Array.isArray(job.details.resumed) ? job.details.resumed : []
        const details = { ...job.details, resumed: [...resumed, { at: new Date().toISOString() }] }
        const running = await this.#store.markResumed(job.id, details)
        this.#log.info('job resumed', { job: job.id, kind: job.kind })
        this.#emit({ type: 'job.progress', job: running })
        // Launched whether or not someone is told (an optional call would skip evaluating its argument).
        const started = this.#launch(running, body, {}, true)
        options.onResumed?.(started)
        continue
      }
      const ended = await this.#store.finish(job.id, { state: 'Interrupted', error: why })
      this.#emit({ type: 'job.finished', job: ended })
      out.push(ended)
    }
    return out
  }

  /** Stops every running job (they end Interrupted) and waits for them. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    for (const r of this.#running.values()) r.abort.abort(new Stopping('The service is stopping'))
    await Promise.all([...this.#running.values()].map((r) => r.done))
    this.endSubscriptions()
  }

  async #run(created: Job, abort: AbortController, body: JobBody, resumed: boolean): Promise<Job> {
    const id = created.id
    const details: Record<string, unknown> = { ...created.details }
    let saving: Promise<void> = Promise.resolve()
    const save = (change: Parameters<JobStore['update']>[1], send: boolean) => {
      saving = saving
        .then(() => this.#store.update(id, change))
        .then(async () => {
          if (send && this.#subscribers.size > 0)
            this.#emit({ type: 'job.progress', job: await this.#store.get(id) })
        })
        .catch((err) => this.#log.warn('cannot save job progress', { job: id, message: String(err) }))
      return saving
    }
    let last = 0
    let pending: { bytesDone?: number; bytesTotal?: number; phase?: string } = {}
    let timer: NodeJS.Timeout | undefined
    const flush = () => {
      timer = undefined
      last = Date.now()
      const p = pending
      pending = {}
      void save(p, true)
    }
    let suspended = false
    const ctx: JobContext = {
      job: created,
      signal: abort.signal,
      details,
      progress: (p) => {
        pending = { ...pending, ...p }
        if (timer) return
        const wait = this.#interval - (Date.now() - last)
        if (wait <= 0) flush()
        else timer = setTimeout(flush, wait)
      },
      phase: (name) => save({ phase: name, details }, true),
      save: () => save({ details }, false),
      resumed,
      suspend: () => {
        if (abort.signal.aborted && abort.signal.reason instanceof Stopping) suspended = true
        return suspended
      },
    }
    let outcome: Parameters<JobStore['finish']>[1]
    try {
      const l = this.#leases
      if (l) {
        if (!(await l.store.hold(id, l.owner, l.leaseMs ?? JOB_LEASE_MS)))
          throw new LeaseLost(`Job ${id} is held by another worker`)
        this.#beat()
      }
      const running = await this.#store.markRunning(id)
      this.#log.info('job started', {
        job: id,
        kind: created.kind,
        resource: created.resource,
        startedBy: created.startedBy,
      })
      this.#emit({ type: 'job.progress', job: running })
      abort.signal.throwIfAborted()
      const result = await body(ctx)
      outcome = { state: 'Completed', result: result ?? null, details }
    } catch (err) {
      const reason: unknown = abort.signal.reason
      if (err instanceof LeaseLost || reason instanceof LeaseLost) {
        // Another worker runs it now: it writes the job's progress and end, not this one.
        if (timer) clearTimeout(timer)
        return this.#store.get(id).catch(() => created)
      }
      if (abort.signal.aborted && reason instanceof Stopping) {
        outcome = {
          state: 'Interrupted',
          error: { code: 'JobInterrupted', message: 'The service stopped while the job ran; run it again' },
          details,
        }
      } else if (abort.signal.aborted) {
        outcome = { state: 'Cancelled', error: cancelledError(created), details }
      } else {
        // File-system errors get their stable code; anything else unexpected is logged, never shown raw.
        const io = ioError(err, 'The job could not read or write a file')
        const e = isCairnError(io)
          ? io
          : new CairnError('Internal', `The job failed unexpectedly; see the service log (job ${id})`)
        if (!isCairnError(err)) this.#log.error('job failed unexpectedly', { job: id, err })
        outcome = { state: 'Failed', error: { code: e.code, message: e.message }, details }
      }
    }
    if (timer) clearTimeout(timer)
    await saving
    if (Object.keys(pending).length > 0) await this.#store.update(id, pending).catch(() => {})
    if (suspended && outcome.state === 'Interrupted') {
      // Left unfinished on purpose: the next start resumes it from what it recorded.
      await this.#store.update(id, { phase: 'Suspended', details }).catch(() => {})
      this.#log.info('job suspended until the next start', { job: id, kind: created.kind })
      return this.#store.get(id).catch(() => created)
    }
    try {
      return this.#finished(await this.#store.finish(id, outcome))
    } catch (err) {
      this.#log.error('cannot record the end of a job', { job: id, err })
      return { ...created, state: outcome.state }
    }
  }

  #finished(job: Job): Job {
    this.#emit({ type: 'job.finished', job })
    // Completed and cancelled jobs are news; a failed or interrupted one is something to look at.
    const level = job.state === 'Completed' || job.state === 'Cancelled' ? 'info' : 'warn'
    this.#log[level]('job ended', {
      job: job.id,
      kind: job.kind,
      resource: job.resource,
      state: job.state,
      bytesDone: job.progress.bytesDone,
      bytesTotal: job.progress.bytesTotal,
      durationMs: job.durationMs,
      ...(job.error ? { error: job.error.code, message: job.error.message } : {}),
    })
    return job
  }

  #emit(e: JobEvent, options: { watchersOnly?: boolean } = {}): void {
    for (const s of [...this.#subscribers.keys(), ...(options.watchersOnly ? [] : this.#observers)]) {
      try {
        s(e)
      } catch (err) {
        this.#log.warn('a job event subscriber failed', { message: String(err) })
      }
    }
  }
}

function cancelledError(job: Job): { code: string; message: string } {
  return { code: 'Cancelled', message: `The ${job.kind} was cancelled; its partial work was undone` }
}
