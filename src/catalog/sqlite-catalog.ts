import Database from 'better-sqlite3'
import { SqliteDialect } from 'kysely'
import { cachedStatements } from './_statement-cache.js'
import { KyselyCatalog } from './kysely-catalog.js'
import type { Migration } from './migrations.js'

/** The embedded catalog: one SQLite file in WAL mode (or ':memory:'), its statements prepared once. */
export class SqliteCatalog extends KyselyCatalog {
  constructor(file: string, migrations?: Migration[]) {
    const database = new Database(file)
    database.pragma('journal_mode = WAL')
    database.pragma('synchronous = NORMAL')
    database.pragma('foreign_keys = ON')
    database.pragma('busy_timeout = 5000')
    super(new SqliteDialect({ database: cachedStatements(database) }), 'sqlite', migrations)
  }
}

/** Opens (creating if needed) and migrates a SQLite catalog. */
export async function openSqliteCatalog(file: string): Promise<SqliteCatalog> {
  const catalog = new SqliteCatalog(file)
  try {
    await catalog.migrate()
  } catch (err) {
    await catalog.close()
    throw err
  }
  return catalog
}
