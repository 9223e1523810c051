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

/** Vaults the service knows: where each lives (the vault's own files hold everything else). */
export interface VaultsTable {
  name: string
  /** Backend kind: 'fs' (later 'azure', 's3'). */
  backend: string
  /** Folder path or URL of the vault. */
  location: string
  /** 1 when the vault has a key. */
  encrypted: number
  created_at: string
}

/** Every table of the catalog. */
export interface CatalogSchema {
  settings: SettingsTable
  vaults: VaultsTable
  schema_migrations: SchemaMigrationsTable
}

/** A column filled in by the database. */
export type Auto<T> = Generated<T>
