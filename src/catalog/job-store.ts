import { randomUUID } from 'node:crypto'
import { CairnError, requestActor } from '../util/index.js'
import type { Catalog } from './catalog.js'
import type { JobsTable } from './schema.js'

/** Where a job is in its life; the last four never change again. */
export type JobState = 'Queued' | 'Running' | 'Completed' | 'Failed' | 'Cancelled' | 'Interrupted'

/** Every state, in the order of a job's life. */
export const JOB_STATES: readonly JobState[] = [
  'Queued',
  'Running',
  'Completed',
  'Failed',
  'Cancelled',
  'Interrupted',
]

/** States of a job that has ended. */
export const FINISHED_JOB_STATES: readonly JobState[] = ['Completed', 'Failed', 'Cancelled', 'Interrupted']

/**
 * Kinds of long operations. `backup` and `restore` cover VMs (with `vm`), disk-store disks and files
 * (with `vault`); the list grows with file recovery, copy and replication.
 */
export const JOB_KINDS = [
  'backup',
  'restore',
  'import',
  'export',
  'verify',
  'prune',
  'gc',
  'maintenance',
  'delete-data',
  'copy',
  'download',
] as const

/** A kind of long operation. */
export type JobKind = (typeof JOB_KINDS)[number]

/**
 * Kinds whose work reads or writes one process's disk store or host paths (docs/scale-out.md): on a
 * shared catalog such a job names that process (`host`) and no other worker claims it.
 */
export const HOST_BOUND_KINDS: readonly JobKind[] = ['backup', 'restore', 'import', 'export']

/** How far a job is: its phase and bytes. */
export interface JobProgress {
  phase: string
  bytesDone: number
  bytesTotal: number
  /** 0–100, one decimal; 100 once ended with nothing counted. */
  percent: number
  etaSeconds?: number
}

/** A long operation of the service, as kept in the catalog. */
export interface Job {
  id: string
  kind: JobKind
  state: JobState
  /** What the job works on, e.g. `vms/web-1`, `vaults/main`, `vaults/main/recoveryPoints/…`. */
  resource: string
  vm?: string
  vault?: string
  /** The protected item of a VM job. */
  itemId?: string
  progress: JobProgress
  /** Who asked for it: the signed-in user of the request, `scheduler` for scheduled work, `local` else. */
  startedBy: string
  createdAt: string
  startedAt?: string
  updatedAt: string
  endedAt?: string
  durationMs: number
  /** What a completed job produced (a recovery point, a report), or null. */
  result: unknown
  error?: { code: string; message: string }
  /** Kind-specific facts (warnings, consistency, snapshots taken, the recovery point …). */
  details: Record<string, unknown>
}

/** What a new job is. */
export interface NewJob {
  kind: JobKind
  resource: string
  vm?: string
  vault?: string
  itemId?: string
  startedBy?: string
  phase?: string
  details?: Record<string, unknown>
  /** Scale-out: the process whose data path the job needs (only it claims the job); none: any. */
  host?: string
  /** Scale-out: the job is leased from its creation to the process that runs it (JobLeases). */
  lease?: { owner: string; until: number }
}

/** Filters of JobStore.list; `cursor` is the `nextCursor` of the previous page. */
export interface JobFilter {
  state?: JobState | readonly JobState[]
  kind?: JobKind
  vm?: string
  vault?: string
  resource?: string
  /** Jobs created at or after this time. */
  since?: Date
  /** Page size (default 100, at most 1000). */
  limit?: number
  cursor?: string
}

/** One page of jobs, newest first. */
export interface JobPage {
  items: Job[]
  nextCursor?: string
}

/**
 * The jobs of the service in the catalog: every long operation, its progress, its end. A finished job
 * never changes again; unfinished jobs of a service that died are marked Interrupted at the next start.
 */
export class JobStore {
  readonly #catalog: Catalog
  readonly #now: () => number

  constructor(catalog: Catalog, options: { now?: () => number } = {}) {
    this.#catalog = catalog
    this.#now = options.now ?? Date.now
  }

  get #db() {
    return this.#catalog.db
  }

  /** Records a new job in state Queued. */
  async create(spec: NewJob): Promise<Job> {
    const id = randomUUID()
    const now = this.#now()
    await this.#db
      .insertInto('jobs')
      .values({
        id,
        type: spec.kind,
        status: 'Queued',
        phase: spec.phase ?? 'Queued',
        entity: spec.resource,
        item_id: spec.itemId ?? null,
        vault: spec.vault ?? null,
        vm: spec.vm ?? null,
        bytes_done: 0,
        bytes_total: 0,
        started_at: now,
        running_at: null,
        updated_at: now,
        ended_at: null,
        // `local` (or nothing) means the caller did not say: the signed-in user of the request, if any.
        started_by:
          spec.startedBy !== undefined && spec.startedBy !== 'local'
            ? spec.startedBy
            : (requestActor() ?? 'local'),
        result_json: null,
        error_code: null,
        error_message: null,
        details_json: JSON.stringify(spec.details ?? {}),
        // Set only for a bound job: an unbound one writes the columns of every catalog version since 1.
        ...(spec.host === undefined ? {} : { host: spec.host }),
        ...(spec.lease === undefined ? {} : { owner: spec.lease.owner, lease_until: spec.lease.until }),
      })
      .execute()
    return this.get(id)
  }

  /** Moves a queued job to Running. */
  async markRunning(id: string, phase = 'Running'): Promise<Job> {
    const now = this.#now()
    await this.#db
      .updateTable('jobs')
      .set({ status: 'Running', phase, running_at: now, updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'Queued')
      .execute()
    return this.get(id)
  }

  /** A job the last run left unfinished goes on in this one: Running, phase `Resumed`, these details. */
  async markResumed(id: string, details: Record<string, unknown>): Promise<Job> {
    const now = this.#now()
    await this.#db
      .updateTable('jobs')
      .set({ status: 'Running', phase: 'Resumed', updated_at: now, details_json: JSON.stringify(details) })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .execute()
    return this.get(id)
  }

  /** Updates an unfinished job's phase, bytes or details; a finished job is left alone. */
  async update(
    id: string,
    change: { phase?: string; bytesDone?: number; bytesTotal?: number; details?: Record<string, unknown> },
  ): Promise<void> {
    const set: Partial<JobsTable> = { updated_at: this.#now() }
    if (change.phase !== undefined) set.phase = change.phase
    if (change.bytesDone !== undefined) set.bytes_done = Math.max(0, Math.round(change.bytesDone))
    if (change.bytesTotal !== undefined) set.bytes_total = Math.max(0, Math.round(change.bytesTotal))
    if (change.details !== undefined) set.details_json = JSON.stringify(change.details)
    await this.#db.updateTable('jobs').set(set).where('id', '=', id).where('ended_at', 'is', null).execute()
  }

  /** Ends a job; answers it as it stays. A job that already ended is not changed. */
  async finish(
    id: string,
    outcome: {
      state: 'Completed' | 'Failed' | 'Cancelled' | 'Interrupted'
      result?: unknown
      error?: { code: string; message: string }
      details?: Record<string, unknown>
    },
  ): Promise<Job> {
    const now = this.#now()
    const set: Partial<JobsTable> = {
      status: outcome.state,
      // A job that did not complete keeps the phase it stopped in.
      ...(outcome.state === 'Completed' ? { phase: 'Completed' } : {}),
      ended_at: now,
      updated_at: now,
      result_json: outcome.result === undefined ? null : JSON.stringify(outcome.result),
      error_code: outcome.error?.code ?? null,
      error_message: outcome.error?.message ?? null,
    }
    if (outcome.details) set.details_json = JSON.stringify(outcome.details)
    await this.#db.updateTable('jobs').set(set).where('id', '=', id).where('ended_at', 'is', null).execute()
    return this.get(id)
  }

  async get(id: string): Promise<Job> {
    const row = await this.#db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw new CairnError('JobNotFound', `Cannot find job "${id}": no job has that id`)
    return toJob(row, this.#now())
  }

  /** Jobs newest first, filtered, one page at a time. */
  async list(filter: JobFilter = {}): Promise<JobPage> {
    const limit = Math.min(1000, Math.max(1, filter.limit ?? 100))
    let q = this.#db.selectFrom('jobs').selectAll().orderBy('started_at', 'desc').orderBy('id', 'desc')
    if (filter.state !== undefined) {
      const states = typeof filter.state === 'string' ? [filter.state] : [...filter.state]
      q = q.where('status', 'in', states)
    }
    if (filter.kind) q = q.where('type', '=', filter.kind)
    if (filter.vm) q = q.where('vm', '=', filter.vm)
    if (filter.vault) q = q.where('vault', '=', filter.vault)
    if (filter.resource) q = q.where('entity', '=', filter.resource)
    if (filter.since) q = q.where('started_at', '>=', filter.since.getTime())
    if (filter.cursor) {
      const c = decodeCursor(filter.cursor)
      q = q.where((eb) =>
        eb.or([eb('started_at', '<', c.at), eb.and([eb('started_at', '=', c.at), eb('id', '<', c.id)])]),
      )
    }
    const rows = await q.limit(limit + 1).execute()
    const now = this.#now()
    const page: JobPage = { items: rows.slice(0, limit).map((r) => toJob(r, now)) }
    if (rows.length > limit) {
      const last = rows[limit - 1]!
      page.nextCursor = Buffer.from(`${last.started_at}:${last.id}`).toString('base64url')
    }
    return page
  }

  /** Every job not ended (at start-up: those the last run left Queued or Running), oldest first. */
  async listUnfinished(): Promise<Job[]> {
    const rows = await this.#db
      .selectFrom('jobs')
      .selectAll()
      .where('ended_at', 'is', null)
      .orderBy('started_at', 'asc')
      .execute()
    const now = this.#now()
    return rows.map((r) => toJob(r, now))
  }

  /**
   * At start-up: every job the last run left Queued or Running ends Interrupted with `reason`.
   * Answers those jobs (as they were, with their details, so that their leftovers can be cleaned).
   */
  async interruptUnfinished(reason: string): Promise<Job[]> {
    const open = await this.#db.selectFrom('jobs').select('id').where('ended_at', 'is', null).execute()
    const out: Job[] = []
    for (const { id } of open) {
      out.push(
        await this.finish(id, { state: 'Interrupted', error: { code: 'JobInterrupted', message: reason } }),
      )
    }
    return out
  }
}

/** True once a job has ended. */
export function isJobFinished(job: Pick<Job, 'state'>): boolean {
  return FINISHED_JOB_STATES.includes(job.state)
}

function decodeCursor(cursor: string): { at: number; id: string } {
  const text = Buffer.from(cursor, 'base64url').toString()
  const i = text.indexOf(':')
  const at = Number(text.slice(0, i))
  if (i <= 0 || !Number.isSafeInteger(at)) {
    throw new CairnError(
      'InvalidRequest',
      `Cannot list jobs: the cursor "${cursor}" is not one this service gave`,
    )
  }
  return { at, id: text.slice(i + 1) }
}

function toJob(r: JobsTable, now: number): Job {
  const begin = r.running_at ?? r.started_at
  const end = r.ended_at ?? now
  const elapsed = Math.max(0, end - begin)
  // Only a completed job is at 100%; one that failed or stopped shows how far it got, below 100.
  const percent =
    r.status === 'Completed'
      ? 100
      : r.bytes_total > 0
        ? Math.min(99.9, (100 * r.bytes_done) / r.bytes_total)
        : 0
  const job: Job = {
    id: r.id,
    kind: r.type as JobKind,
    state: r.status as JobState,
    resource: r.entity,
    progress: {
      phase: r.phase,
      bytesDone: r.bytes_done,
      bytesTotal: r.bytes_total,
      percent: Math.round(percent * 10) / 10,
    },
    startedBy: r.started_by,
    createdAt: new Date(r.started_at).toISOString(),
    updatedAt: new Date(r.updated_at ?? r.started_at).toISOString(),
    durationMs: r.running_at === null && r.ended_at === null ? 0 : elapsed,
    result: r.result_json === null ? null : (JSON.parse(r.result_json) as unknown),
    details: JSON.parse(r.details_json) as Record<string, unknown>,
  }
  if (r.ended_at === null && r.bytes_done > 0 && r.bytes_total > r.bytes_done) {
    job.progress.etaSeconds = Math.round(((elapsed / r.bytes_done) * (r.bytes_total - r.bytes_done)) / 1000)
  }
  if (r.vm !== null) job.vm = r.vm
  if (r.vault !== null) job.vault = r.vault
  if (r.item_id !== null) job.itemId = r.item_id
  if (r.running_at !== null) job.startedAt = new Date(r.running_at).toISOString()
  if (r.ended_at !== null) job.endedAt = new Date(r.ended_at).toISOString()
  if (r.error_code !== null) job.error = { code: r.error_code, message: r.error_message ?? '' }
  return job
}
