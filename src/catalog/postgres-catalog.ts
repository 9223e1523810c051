import { type DataTypeNode, type KyselyPlugin, OperationNodeTransformer, PostgresDialect, sql } from 'kysely'
import type pg from 'pg'
import { CairnError, lazyRequire } from '../util/index.js'
import { KyselyCatalog, type MigrationRunner } from './kysely-catalog.js'
import type { Migration } from './migrations.js'

/** The PostgreSQL driver, loaded with the first PostgreSQL catalog (a service on SQLite does not pay for it). */
const driver = lazyRequire<typeof pg>('pg')

/** The advisory-lock key every Cairn process takes while it migrates a PostgreSQL catalog ('cairnmig'). */
const MIGRATION_LOCK = 0x636169726e6d6967n

/** How many connections one Cairn process keeps to a PostgreSQL catalog at most. */
export const POSTGRES_POOL_SIZE = 10

/**
 * The shared catalog: a PostgreSQL database through the `pg` driver's pool. It runs the SQLite catalog's
 * migrations as they are, with two translations: `integer` columns become `bigint` (SQLite's integers are
 * 64-bit; the catalog keeps millisecond times and byte counts in them), and 64-bit and numeric results are
 * read back as JavaScript numbers. Migrations run under an advisory lock, so processes that start at once
 * migrate one after another.
 */
export class PostgresCatalog extends KyselyCatalog {
  readonly pool: pg.Pool

  constructor(url: string, migrations?: Migration[]) {
    const pool = new (driver().Pool)({
      connectionString: url,
      max: POSTGRES_POOL_SIZE,
      types: { getTypeParser: numbersAsNumbers } as pg.CustomTypesConfig,
    })
    // An idle client that loses its server must not take the process down; the next query reports it.
    pool.on('error', () => {})
    super(new PostgresDialect({ pool }), 'postgres', migrations, [new BigintColumns()])
    this.pool = pool
  }

  /** Runs `body` on one connection holding the migration lock; other processes wait for it here. */
  protected override async withMigrationLock<T>(body: MigrationRunner<T>): Promise<T> {
    return this.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn)
      try {
        return await body(conn)
      } finally {
        await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn)
      }
    })
  }
}

/** Opens and migrates a PostgreSQL catalog; a server that cannot be reached is `CatalogUnavailable`. */
export async function openPostgresCatalog(url: string): Promise<PostgresCatalog> {
  const catalog = new PostgresCatalog(url)
  try {
    await catalog.migrate()
  } catch (err) {
    await catalog.close().catch(() => {})
    if (err instanceof CairnError) throw err
    throw new CairnError(
      'CatalogUnavailable',
      `Cannot open the catalog at ${redactUrl(url)}: ${(err as Error).message}`,
      { cause: err },
    )
  }
  return catalog
}

/** The URL without its password: `postgres://user:secret@host/db` → `postgres://…@host/db`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1…@')
}

const INT8 = 20
const NUMERIC = 1700

function numbersAsNumbers(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === INT8 || oid === NUMERIC) return (v: string) => (v === null ? null : Number(v))
  return driver().types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown
}

/** Schema changes declare `integer` columns as `bigint`, the width SQLite gives every integer. */
class BigintColumns implements KyselyPlugin {
  readonly #transformer = new (class extends OperationNodeTransformer {
    protected override transformDataType(node: DataTypeNode): DataTypeNode {
      return node.dataType === 'integer' ? { ...node, dataType: 'bigint' } : node
    }
  })()

  transformQuery(args: Parameters<KyselyPlugin['transformQuery']>[0]) {
    return this.#transformer.transformNode(args.node)
  }

  async transformResult(args: Parameters<KyselyPlugin['transformResult']>[0]) {
    return args.result
  }
}
