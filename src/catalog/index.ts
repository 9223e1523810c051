// The catalog: the service's records in SQLite (embedded) or, later, PostgreSQL, with versioned migrations.
export type { Catalog } from './catalog.js'
export { KyselyCatalog } from './kysely-catalog.js'
export { MIGRATIONS, type Migration } from './migrations.js'
export { CATALOG_DIALECTS, openCatalog } from './open-catalog.js'
export type { Auto, CatalogSchema } from './schema.js'
export { openSqliteCatalog, SqliteCatalog } from './sqlite-catalog.js'
