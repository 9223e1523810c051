import { type Kysely, sql } from 'kysely'

/** One step of the catalog schema; versions are applied in order, each once, in a transaction. */
export interface Migration {
  version: number
  name: string
  // biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
  up(db: Kysely<any>): Promise<void>
}

/**
 * Every migration of the catalog, oldest first. Never edit one that has shipped: add a new version.
 * The SQL is portable between SQLite and PostgreSQL.
 */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'settings',
    async up(db) {
      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute()
      await sql`insert into settings (key, value) values ('created_at', ${new Date().toISOString()})`.execute(
        db,
      )
    },
  },
  {
    version: 2,
    name: 'vaults',
    async up(db) {
      await db.schema
        .createTable('vaults')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('encrypted', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
]
