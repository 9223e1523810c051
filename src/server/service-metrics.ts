import { statfs } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { Catalog, PostgresCatalog } from '../catalog/index.js'
import type { DiskStore } from '../diskstore/index.js'
import type { JobEvent, JobService, Scheduler } from '../protection/index.js'
import type { VaultInfo, VaultUsage } from '../vault/index.js'
import type { DiskStoreMeter } from './_disk-store-meter.js'

/** How long a vault's measured usage is served before it is measured again (it walks every manifest). */
export const VAULT_USAGE_TTL_MS = 5 * 60_000

/** The vaults the metrics measure: the registry's list and each vault's usage. */
export interface MeteredVaults {
  list(): Promise<VaultInfo[]>
  usage(name: string): Promise<VaultUsage>
}

/**
 * How far one replicated thing's copy at the paired site is behind (docs/replication.md): a GRS vault
 * this site is primary of, or a geo-replicated storage account this site ships.
 */
export interface ReplicationLag {
  type: 'vault' | 'account'
  name: string
  /** Seconds since the copy last held everything (+Inf: it never did yet). */
  lagSeconds: number
  /** Points the copy lacked at its last report (vaults). */
  pointsBehind?: number
}

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
  readonly #nbdRequests: Counter<'command' | 'result'>
  readonly #nbdSeconds: Histogram<'command'>
  readonly #nbdBytes: Counter<'command'>
  readonly #blobRequests: Counter<'operation' | 'status'>
  readonly #blobSeconds: Histogram<'operation'>
  readonly #vaultUsage = new Map<string, { at: number; usage?: VaultUsage; measuring?: Promise<void> }>()
  #read = 0
  #stored = 0

  constructor(o: {
    catalog: Catalog
    jobs: JobService
    diskStore: DiskStore
    scheduler?: () => Scheduler | undefined
    /** The meter the service's disk store was wrapped with (its operations, latencies, bytes). */
    diskStoreMeter?: DiskStoreMeter
    /** The vaults to report usage of (measured at most every VAULT_USAGE_TTL_MS). */
    vaults?: MeteredVaults
    /** The replication lag of each GRS vault and geo-replicated account this site is primary of. */
    replication?: () => Promise<ReplicationLag[]>
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
    if (o.diskStoreMeter) {
      registry.registerMetric(o.diskStoreMeter.seconds)
      registry.registerMetric(o.diskStoreMeter.bytes)
    }
    this.#nbdRequests = new Counter({
      name: 'cairn_nbd_requests_total',
      help: 'NBD requests served, by command and result (ok or error)',
      labelNames: ['command', 'result'],
      registers: [registry],
    })
    this.#nbdSeconds = new Histogram({
      name: 'cairn_nbd_request_duration_seconds',
      help: 'NBD request latency by command',
      labelNames: ['command'],
      buckets: [0.0001, 0.0005, 0.002, 0.01, 0.05, 0.25, 1, 5],
      registers: [registry],
    })
    this.#nbdBytes = new Counter({
      name: 'cairn_nbd_bytes_total',
      help: 'Bytes NBD reads returned and writes carried',
      labelNames: ['command'],
      registers: [registry],
    })
    this.#blobRequests = new Counter({
      name: 'cairn_blob_requests_total',
      help: 'Blob API requests by operation and HTTP status',
      labelNames: ['operation', 'status'],
      registers: [registry],
    })
    this.#blobSeconds = new Histogram({
      name: 'cairn_blob_request_duration_seconds',
      help: 'Blob API request latency by operation',
      labelNames: ['operation'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    })
    const vaults = o.vaults
    if (vaults) {
      new Gauge({
        name: 'cairn_vault_bytes',
        help: "Vault usage: stored (every pack on its backend), logical (the points' data), unique (distinct data, as stored)",
        labelNames: ['vault', 'kind'],
        registers: [registry],
        async collect() {
          this.reset()
          for (const [name, u] of await self.#usages(vaults)) {
            this.set({ vault: name, kind: 'stored' }, u.storedBytes)
            this.set({ vault: name, kind: 'logical' }, u.logicalBytes)
            this.set({ vault: name, kind: 'unique' }, u.uniqueStoredBytes)
          }
        },
      })
      new Gauge({
        name: 'cairn_vault_recovery_points',
        help: 'Recovery points in each vault',
        labelNames: ['vault'],
        registers: [registry],
        async collect() {
          this.reset()
          for (const [name, u] of await self.#usages(vaults)) this.set({ vault: name }, u.recoveryPoints)
        },
      })
      new Gauge({
        name: 'cairn_vault_filesystem_bytes',
        help: "A folder vault's file system: free and total bytes (object stores have no such limit)",
        labelNames: ['vault', 'state'],
        registers: [registry],
        async collect() {
          this.reset()
          for (const v of await vaults.list().catch(() => [])) {
            if (v.backend !== 'fs') continue
            const path = v.location.startsWith('file:') ? fileURLToPath(v.location) : v.location
            const fs = await statfs(path).catch(() => undefined)
            if (!fs) continue
            this.set({ vault: v.name, state: 'free' }, fs.bavail * fs.bsize)
            this.set({ vault: v.name, state: 'total' }, fs.blocks * fs.bsize)
          }
        },
      })
    }
    const replication = o.replication
    if (replication) {
      // Both gauges from one read of the engines' state per scrape.
      let last: { at: number; states: Promise<ReplicationLag[]> } | undefined
      const states = () => {
        if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), states: replication() }
        return last.states
      }
      new Gauge({
        name: 'cairn_replication_lag_seconds',
        help: "Seconds since the paired site's copy last held everything, by vault or storage account",
        labelNames: ['type', 'name'],
        registers: [registry],
        async collect() {
          this.reset()
          for (const r of await states()) this.set({ type: r.type, name: r.name }, r.lagSeconds)
        },
      })
      new Gauge({
        name: 'cairn_replication_points_behind',
        help: "Recovery points the paired site's copy of a vault lacked at its last report",
        labelNames: ['vault'],
        registers: [registry],
        async collect() {
          this.reset()
          for (const r of await states())
            if (r.type === 'vault' && r.pointsBehind !== undefined)
              this.set({ vault: r.name }, r.pointsBehind)
        },
      })
    }
    o.jobs.observe((e) => this.#onJob(e))
  }

  /** Counts one NBD request (NbdServerOptions.observe). */
  observeNbd(r: { command: string; ok: boolean; seconds: number; bytes: number }): void {
    this.#nbdRequests.inc({ command: r.command, result: r.ok ? 'ok' : 'error' })
    this.#nbdSeconds.observe({ command: r.command }, r.seconds)
    if (r.bytes > 0) this.#nbdBytes.inc({ command: r.command }, r.bytes)
  }

  /** Counts one blob API request (BlobApiServerOptions.observe). */
  observeBlob(r: { operation: string; status: number; seconds: number }): void {
    this.#blobRequests.inc({ operation: r.operation, status: String(r.status) })
    this.#blobSeconds.observe({ operation: r.operation }, r.seconds)
  }

  /**
   * The vaults' usage: measured when never measured (the scrape waits for it), served from the last
   * measurement otherwise and measured again in the background once it is older than the TTL. A vault
   * that cannot be measured (locked, unreachable) is left out.
   */
  async #usages(vaults: MeteredVaults): Promise<[string, VaultUsage][]> {
    const list = await vaults.list().catch(() => [])
    const now = Date.now()
    const out: [string, VaultUsage][] = []
    for (const v of list) {
      let e = this.#vaultUsage.get(v.name)
      if (!e) {
        e = { at: 0 }
        this.#vaultUsage.set(v.name, e)
      }
      const entry = e
      if (!entry.measuring && now - entry.at > VAULT_USAGE_TTL_MS)
        entry.measuring = vaults
          .usage(v.name)
          .then((u) => {
            entry.usage = u
          })
          .catch(() => {
            entry.usage = undefined
          })
          .finally(() => {
            entry.at = Date.now()
            entry.measuring = undefined
          })
      if (!entry.usage && entry.measuring) await entry.measuring
      if (entry.usage) out.push([v.name, entry.usage])
    }
    for (const name of this.#vaultUsage.keys())
      if (!list.some((v) => v.name === name)) this.#vaultUsage.delete(name)
    return out
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
