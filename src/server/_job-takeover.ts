import { HOST_BOUND_KINDS, type Job, type JobLeases, type JobStore } from '../catalog/index.js'
import type { Logger } from '../util/index.js'

/** What the takeover loop works with. */
export interface JobTakeoverOptions {
  leases: JobLeases
  store: JobStore
  /** This process's owner id (`host:data-folder`): stable across its restarts. */
  owner: string
  leaseMs: number
  /** How often to look for jobs whose lease expired. */
  everyMs: number
  logger: Logger
  /** Resumes the claimed jobs from their last committed step, or ends them Interrupted. */
  recover(jobs: Job[]): Promise<void>
  /** How many queued jobs routed to this process it may start now (its room for more). */
  room(): number
  /** Starts the queued jobs routed to this process that it claimed. */
  start(jobs: Job[]): Promise<void>
}

/**
 * The worker's loop (docs/scale-out.md): every `everyMs` it claims the jobs queued for this process
 * (routed here: they need its disks) and starts them, then the unfinished jobs whose owner's lease
 * expired (the process died), with `FOR UPDATE SKIP LOCKED`, and hands them to `recover`. Jobs bound to
 * another process (`jobs.host`) are never claimed; one recorded before hosts were (only
 * `details.host`) is let go again: only the host that owns those disks can resume it, at its restart.
 */
export class JobTakeover {
  readonly #o: JobTakeoverOptions
  #timer: NodeJS.Timeout | undefined
  #pass: Promise<void> | undefined

  constructor(options: JobTakeoverOptions) {
    this.#o = options
  }

  /** Takes over what is claimable now (this owner's own jobs of a previous run at once), then periodically. */
  async start(): Promise<void> {
    await this.pass()
    this.#timer = setInterval(() => void this.pass(), this.#o.everyMs)
    this.#timer.unref()
  }

  /** One look for expired jobs; never rejects. */
  pass(): Promise<void> {
    this.#pass ??= this.#takeOver()
      .catch((err) => this.#o.logger.warn('cannot take jobs over', { message: String(err) }))
      .finally(() => {
        this.#pass = undefined
      })
    return this.#pass
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#pass
  }

  async #takeOver(): Promise<void> {
    const o = this.#o
    const queued = await o.leases.claimQueued(o.owner, { limit: o.room(), leaseMs: o.leaseMs, host: o.owner })
    if (queued.length > 0) {
      o.logger.info('starting jobs queued for this host', { jobs: queued.map((j) => j.id) })
      await o.start(await Promise.all(queued.map((c) => o.store.get(c.id))))
    }
    const claimed = await o.leases.claimExpired(o.owner, { limit: 16, leaseMs: o.leaseMs })
    if (claimed.length === 0) return
    const mine: Job[] = []
    for (const c of claimed) {
      const job = await o.store.get(c.id)
      const host = typeof job.details.host === 'string' ? job.details.host : undefined
      if (HOST_BOUND_KINDS.includes(job.kind) && host !== undefined && host !== o.owner) {
        // Lets it go with its lease expired: its own host takes it back when it restarts.
        await o.leases.giveBack(job.id, o.owner, host)
        o.logger.debug('left a job to the host that owns its disks', { job: job.id, host })
        continue
      }
      mine.push(job)
    }
    if (mine.length === 0) return
    o.logger.info('taking over jobs whose worker stopped renewing its lease', { jobs: mine.map((j) => j.id) })
    await o.recover(mine)
  }
}
