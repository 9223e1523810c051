import type { Job, JobLeases, JobStore } from '../catalog/index.js'
import type { Logger } from '../util/index.js'

/** Kinds whose work reads or writes this host's disk store: only the host that owns the disks resumes them. */
const DISK_BOUND: readonly Job['kind'][] = ['backup', 'restore', 'import', 'export']

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
}

/**
 * The worker's takeover loop (docs/scale-out.md): every `everyMs` it claims the unfinished jobs whose
 * owner's lease expired (the process died), with `FOR UPDATE SKIP LOCKED`, and hands them to `recover`.
 * A job bound to a disk store (a kind of DISK_BOUND started by another owner, `details.host`) is let go
 * again: only the host that owns those disks can resume it, at its restart.
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
    const claimed = await o.leases.claimExpired(o.owner, { limit: 16, leaseMs: o.leaseMs })
    if (claimed.length === 0) return
    const mine: Job[] = []
    for (const c of claimed) {
      const job = await o.store.get(c.id)
      const host = typeof job.details.host === 'string' ? job.details.host : undefined
      if (DISK_BOUND.includes(job.kind) && host !== undefined && host !== o.owner) {
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
