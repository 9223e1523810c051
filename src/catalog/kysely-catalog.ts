import { type Dialect, Kysely, sql } from 'kysely'
import { CairnError } from '../util/index.js'
import type { Catalog } from './catalog.js'
import { MIGRATIONS, type Migration } from './migrations.js'
import type { CatalogSchema } from './schema.js'

/** A catalog over any Kysely dialect; SqliteCatalog and a future PostgresCatalog differ only in it. */
export class KyselyCatalog implements Catalog {
  readonly db: Kysely<CatalogSchema>
  readonly dialect: string
  readonly #migrations: Migration[]

  constructor(dialect: Dialect, name: string, migrations: Migration[] = MIGRATIONS) {
    this.db = new Kysely<CatalogSchema>({ dialect })
    this.dialect = name
    this.#migrations = [...migrations].sort((a, b) => a.version - b.version)
  }

  async migrate(): Promise<number[]> {
    await this.db.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute()
    const current = await this.schemaVersion()
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
        await this.db.transaction().execute(async (trx) => {
          await m.up(trx)
          await trx
            .insertInto('schema_migrations')
            .values({ version: m.version, name: m.name, applied_at: new Date().toISOString() })
            .execute()
        })
      } catch (err) {
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
    const row = await sql<{ v: number | null }>`select max(version) as v from schema_migrations`.execute(
      this.db,
    )
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
