import { type Dialect, Kysely, type KyselyPlugin, sql } from 'kysely'
import { CairnError } from '../util/index.js'
import type { Catalog } from './catalog.js'
import { MIGRATIONS, type Migration } from './migrations.js'
import type { CatalogSchema } from './schema.js'

/** What runs under the migration lock, on the connection that holds it. */
// biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
export type MigrationRunner<T> = (db: Kysely<any>) => Promise<T>

/** A catalog over any Kysely dialect; SqliteCatalog and PostgresCatalog differ only in it. */
export class KyselyCatalog implements Catalog {
  readonly db: Kysely<CatalogSchema>
  readonly dialect: string
  readonly #migrations: Migration[]

  constructor(
    dialect: Dialect,
    name: string,
    migrations: Migration[] = MIGRATIONS,
    plugins: KyselyPlugin[] = [],
  ) {
    this.db = new Kysely<CatalogSchema>({ dialect, plugins })
    this.dialect = name
    this.#migrations = [...migrations].sort((a, b) => a.version - b.version)
  }

  async migrate(): Promise<number[]> {
    return this.withMigrationLock((db) => this.#migrate(db))
  }

  /**
   * Runs `body` while no other process migrates this catalog. PostgreSQL takes an advisory lock; a SQLite
   * catalog belongs to one process (docs/scale-out.md), so it takes none.
   */
  protected async withMigrationLock<T>(body: MigrationRunner<T>): Promise<T> {
    return body(this.db)
  }

  // biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
  async #migrate(db: Kysely<any>): Promise<number[]> {
    await db.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute()
    const current = await this.#versionOn(db)
    const newest = this.#migrations.at(-1)?.version ?? 0
    if (current > newest) {
      throw new CairnError(
        'CatalogMigrationFailed',
        `Cannot open the catalog: its schema version ${current} is newer than this Cairn knows (${newest})`,
      )
    }
    const applied: number[] = []
    for (const m of this.#migrations) {
      if (m.version <= current) continue
      try {
        await db.transaction().execute(async (trx) => {
          // The version row first: its write takes SQLite's write lock before anything is read, so a
          // second process waits here, then fails on the row the first committed (below: skipped).
          await trx
            .insertInto('schema_migrations')
            .values({ version: m.version, name: m.name, applied_at: new Date().toISOString() })
            .execute()
          await m.up(trx)
        })
      } catch (err) {
        if ((await this.#versionOn(db).catch(() => 0)) >= m.version) continue
        throw new CairnError(
          'CatalogMigrationFailed',
          `Cannot migrate the catalog to version ${m.version} (${m.name}): ${(err as Error).message}`,
          { cause: err },
        )
      }
      applied.push(m.version)
    }
    return applied
  }

  async schemaVersion(): Promise<number> {
    return this.#versionOn(this.db)
  }

  // biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
  async #versionOn(db: Kysely<any>): Promise<number> {
    const row = await sql<{ v: number | null }>`select max(version) as v from schema_migrations`.execute(db)
    return Number(row.rows[0]?.v ?? 0)
  }

  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst()
    return row?.value
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute()
  }

  async close(): Promise<void> {
    await this.db.destroy()
  }
}
