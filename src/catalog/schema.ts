import type { Generated } from 'kysely'

// Table types of the catalog. Each migration that adds a table adds its type here.

/** Key-value settings of the service (one row per key). */
export interface SettingsTable {
  key: string
  value: string
}

/** Applied migrations: the catalog's schema version. */
export interface SchemaMigrationsTable {
  version: number
  name: string
  applied_at: string
}

/** Every table of the catalog. */
export interface CatalogSchema {
  settings: SettingsTable
  schema_migrations: SchemaMigrationsTable
}

/** A column filled in by the database. */
export type Auto<T> = Generated<T>
