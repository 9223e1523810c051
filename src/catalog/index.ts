// The catalog: the service's records in SQLite (embedded) or PostgreSQL (shared), with versioned migrations.
export type { Catalog } from './catalog.js'
export { type ClaimedJob, JobLeases } from './job-leases.js'
export {
  FINISHED_JOB_STATES,
  HOST_BOUND_KINDS,
  isJobFinished,
  JOB_KINDS,
  JOB_STATES,
  type Job,
  type JobFilter,
  type JobKind,
  type JobPage,
  type JobProgress,
  type JobState,
  JobStore,
  type NewJob,
} from './job-store.js'
export { KyselyCatalog, type MigrationRunner } from './kysely-catalog.js'
export { LeaderLease, type LeaseState } from './leader-lease.js'
export { MIGRATIONS, type Migration } from './migrations.js'
export { CATALOG_DIALECTS, type CatalogDialect, openCatalog } from './open-catalog.js'
export { openPostgresCatalog, POSTGRES_POOL_SIZE, PostgresCatalog, redactUrl } from './postgres-catalog.js'
export { POSTGRES_BIN, PostgresScratchCluster, sharedScratchCluster } from './postgres-scratch-cluster.js'
export type { AuditLogTable, Auto, CatalogSchema } from './schema.js'
export { openSqliteCatalog, SqliteCatalog } from './sqlite-catalog.js'
