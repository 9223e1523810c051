// Prepared statements kept for reuse on the SQLite catalog. Kysely's SQLite driver prepares every
// query it runs (better-sqlite3's `prepare`), and the catalog runs the same few dozen queries over and
// over (a session lookup and an authorization on every API request): preparing was about 6 % of the
// service's CPU for a warm directory listing. A statement is reusable once its `all` or `run` returned
// (they are synchronous); one still iterating (`busy`) is not handed out again: that query gets a fresh
// statement.
import type { Database, Statement } from 'better-sqlite3'
import type { SqliteDatabase } from 'kysely'

/** Statements kept (the least recently used go first). */
const KEPT = 256

/** `db` as Kysely's SQLite dialect takes it, its statements prepared once per SQL text. */
export function cachedStatements(db: Database, kept = KEPT): SqliteDatabase {
  const cache = new Map<string, Statement>()
  return {
    close: () => {
      cache.clear()
      db.close()
    },
    prepare: (sql: string) => {
      const hit = cache.get(sql)
      if (hit !== undefined && !hit.busy) {
        cache.delete(sql)
        cache.set(sql, hit)
        return hit
      }
      const stmt = db.prepare(sql)
      if (hit === undefined) {
        cache.set(sql, stmt)
        if (cache.size > kept) cache.delete(cache.keys().next().value as string)
      }
      return stmt
    },
  }
}
