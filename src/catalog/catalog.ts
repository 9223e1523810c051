import type { Kysely } from 'kysely'
import type { CatalogSchema } from './schema.js'

/**
 * The catalog: the service's own records (settings, and later vaults, policies, jobs), behind Kysely
 * so that SQLite and PostgreSQL implementations run the same queries and the same test suite.
 */
export interface Catalog {
  /** The typed query builder. */
  readonly db: Kysely<CatalogSchema>
  /** Which database this is: 'sqlite' or 'postgres'. */
  readonly dialect: string
  /** Applies pending migrations; returns the versions applied. */
  migrate(): Promise<number[]>
  /** The highest applied migration version (0 for an empty catalog). */
  schemaVersion(): Promise<number>
  getSetting(key: string): Promise<string | undefined>
  setSetting(key: string, value: string): Promise<void>
  close(): Promise<void>
}
