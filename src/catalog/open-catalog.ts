import { join } from 'node:path'
import { CairnError } from '../util/index.js'
import type { Catalog } from './catalog.js'
import { openPostgresCatalog, redactUrl } from './postgres-catalog.js'
import { PostgresScratchCluster, sharedScratchCluster } from './postgres-scratch-cluster.js'
import { openSqliteCatalog } from './sqlite-catalog.js'

const SCHEME = /^([a-z][a-z0-9+.-]*):/i
const WHAT_WORKS = 'give sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DATABASE'

/**
 * Opens (creating if needed) and migrates the catalog a URL names: `sqlite:PATH` (also
 * `sqlite:///abs/path`), `sqlite::memory:`, or `postgres://user:password@host:port/database` (also
 * `postgresql://`; the database must exist, its tables are created). Anything else is refused with
 * `UnsupportedCatalogUrl`.
 */
export async function openCatalog(url: string): Promise<Catalog> {
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase()
  if (scheme === 'sqlite') {
    const rest = url.slice('sqlite:'.length)
    const file = rest === ':memory:' ? rest : rest.replace(/^\/\/(?=\/)/, '')
    if (file === '') throw unsupported(url, `it names no file; ${WHAT_WORKS}`)
    return openSqliteCatalog(file)
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    if (!/^[a-z]+:\/\/[^/]*\/[^/?]+/i.test(url)) throw unsupported(url, `it names no database; ${WHAT_WORKS}`)
    return openPostgresCatalog(url)
  }
  throw unsupported(url, scheme ? `Cairn has no catalog dialect for "${scheme}:"; ${WHAT_WORKS}` : WHAT_WORKS)
}

/** A catalog dialect as tests see it: its name and the URL of the catalog that belongs to folder `dir`. */
export interface CatalogDialect {
  name: string
  /** The same `dir` always gives the same catalog (a reopen sees what was written). */
  url(dir: string): string
}

/**
 * Every catalog dialect Cairn has: what catalog and service tests loop over. PostgreSQL runs on a
 * throwaway cluster of this process (PostgresScratchCluster, started on first use, one database per
 * folder); it is left out, with a message saying why, only where PostgreSQL is not installed and the
 * tests run unprivileged (as root a missing PostgreSQL is an error: the preflight installs it).
 */
export const CATALOG_DIALECTS: readonly CatalogDialect[] = catalogDialects()

function catalogDialects(): CatalogDialect[] {
  const sqlite: CatalogDialect = { name: 'sqlite', url: (dir) => `sqlite:${join(dir, 'catalog.db')}` }
  const postgres: CatalogDialect = {
    name: 'postgres',
    url: (dir) => sharedScratchCluster().url(PostgresScratchCluster.databaseFor(dir)),
  }
  if (process.env.CAIRN_TEST_CATALOGS === 'sqlite') return [sqlite]
  const missing = PostgresScratchCluster.unavailable()
  if (missing) {
    console.warn(`Skipping the PostgreSQL catalog tests: ${missing}`)
    return [sqlite]
  }
  return [sqlite, postgres]
}

function unsupported(url: string, why: string): CairnError {
  // The URL may carry a password (postgres://user:secret@host): name only its scheme and host.
  return new CairnError('UnsupportedCatalogUrl', `Cannot open the catalog at ${redactUrl(url)}: ${why}`)
}
