import { sql } from 'kysely'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { Catalog, PostgresCatalog } from '../catalog/index.js'
import type { DiskStore } from '../diskstore/index.js'
import type { JobEvent, JobService, Scheduler } from '../protection/index.js'

/** Seconds a job may take, as buckets: a second to a day. */
const JOB_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600]

/**
 * The process's Prometheus metrics (GET /metrics, docs/scale-out.md and docs/api.md "Metrics"), in its
 * own registry: jobs by kind and state (read from the catalog at each scrape, so every process of a
 * shared catalog reports the same totals), the durations and bytes of the jobs this process ended,
 * data reduction, management API requests, the catalog's connection pool, the disk store's space, the
 * scheduler's leadership, and Node's own process metrics.
 */
export class ServiceMetrics {
  readonly registry = new Registry()
  readonly #requests: Counter<'method' | 'route' | 'status'>
  readonly #requestSeconds: Histogram<'method' | 'route'>
  readonly #jobSeconds: Histogram<'kind' | 'state'>
  readonly #jobBytes: Counter<'kind' | 'stage'>
  #read = 0
  #stored = 0

  constructor(o: {
    catalog: Catalog
    jobs: JobService
    diskStore: DiskStore
    scheduler?: () => Scheduler | undefined
  }) {
    const registry = this.registry
    collectDefaultMetrics({ register: registry, prefix: 'cairn_' })
    new Gauge({
      name: 'cairn_jobs',
      help: 'Jobs in the catalog by kind and state',
      labelNames: ['kind', 'state'],
      registers: [registry],
      async collect() {
        const rows = await sql<{ type: string; status: string; n: number }>`select type, status, count(*) as n
          from jobs group by type, status`.execute(o.catalog.db)
        this.reset()
        for (const r of rows.rows) this.set({ kind: r.type, state: r.status }, Number(r.n))
      },
    })
    this.#jobSeconds = new Histogram({
      name: 'cairn_job_duration_seconds',
      help: 'Duration of the jobs this process ended, by kind and final state',
      labelNames: ['kind', 'state'],
      buckets: JOB_BUCKETS,
      registers: [registry],
    })
    this.#jobBytes = new Counter({
      name: 'cairn_backup_bytes_total',
      help: 'Bytes of the backups this process ended: read from disks, stored as new data in vaults',
      labelNames: ['kind', 'stage'],
      registers: [registry],
    })
    const self = this
    new Gauge({
      name: 'cairn_data_reduction_ratio',
      help: 'Bytes read by backups over the new bytes they stored (dedup and compression), since start',
      registers: [registry],
      collect() {
        this.set(self.#stored > 0 ? self.#read / self.#stored : 0)
      },
    })
    this.#requests = new Counter({
      name: 'cairn_api_requests_total',
      help: 'Management API requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    })
    this.#requestSeconds = new Histogram({
      name: 'cairn_api_request_duration_seconds',
      help: 'Management API request durations by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    })
    new Gauge({
      name: 'cairn_catalog_connections',
      help: "The catalog's connections by state (PostgreSQL pool: total, idle, waiting clients; SQLite: one)",
      labelNames: ['dialect', 'state'],
      registers: [registry],
      collect() {
        const pool = (o.catalog as Partial<PostgresCatalog>).pool
        if (pool) {
          this.set({ dialect: 'postgres', state: 'total' }, pool.totalCount)
          this.set({ dialect: 'postgres', state: 'idle' }, pool.idleCount)
          this.set({ dialect: 'postgres', state: 'waiting' }, pool.waitingCount)
        } else this.set({ dialect: o.catalog.dialect, state: 'total' }, 1)
      },
    })
    new Gauge({
      name: 'cairn_diskstore_bytes',
      help: "The disk store's file system: free and total bytes",
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const h = o.diskStore.health?.() ?? { freeBytes: 0, totalBytes: 0 }
        this.set({ state: 'free' }, h.freeBytes)
        this.set({ state: 'total' }, h.totalBytes)
      },
    })
    new Gauge({
      name: 'cairn_scheduler_backups',
      help: "This process's scheduler: backups running and queued",
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const st = o.scheduler?.()?.status()
        this.set({ state: 'running' }, st?.running.length ?? 0)
        this.set({ state: 'queued' }, st?.queued.length ?? 0)
      },
    })
    o.jobs.observe((e) => this.#onJob(e))
  }

  /** Counts one management API request (`route`: the route's pattern, never the raw path). */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.#requests.inc({ method, route, status: String(status) })
    this.#requestSeconds.observe({ method, route }, seconds)
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The metrics in Prometheus's text format. */
  render(): Promise<string> {
    return this.registry.metrics()
  }

  #onJob(e: JobEvent): void {
    if (e.type !== 'job.finished') return
    const j = e.job
    this.#jobSeconds.observe({ kind: j.kind, state: j.state }, j.durationMs / 1000)
    if (j.kind !== 'backup' || j.state !== 'Completed') return
    const read = j.progress.bytesDone
    const stored = bytesAdded(j.result)
    this.#read += read
    this.#stored += stored
    this.#jobBytes.inc({ kind: j.vm ? 'vm' : 'disk', stage: 'read' }, read)
    this.#jobBytes.inc({ kind: j.vm ? 'vm' : 'disk', stage: 'stored' }, stored)
  }
}

/** `bytesAdded` (or `bytesStored`) of a backup's result, at its top or one level down. */
function bytesAdded(result: unknown): number {
  if (typeof result !== 'object' || result === null) return 0
  const r = result as Record<string, unknown>
  for (const k of ['bytesAdded', 'bytesStored']) if (typeof r[k] === 'number') return r[k] as number
  let n = 0
  for (const v of Object.values(r))
    if (typeof v === 'object' && v !== null) {
      const inner = v as Record<string, unknown>
      if (typeof inner.bytesAdded === 'number') n += inner.bytesAdded
    }
  return n
}
