import { join } from 'node:path'
import { CairnError } from '../util/index.js'
import type { Catalog } from './catalog.js'
import { openSqliteCatalog } from './sqlite-catalog.js'

const SCHEME = /^([a-z][a-z0-9+.-]*):/i
const WHAT_WORKS = 'give sqlite:PATH or sqlite::memory:'

/**
 * Opens (creating if needed) and migrates the catalog a URL names: `sqlite:PATH` (also
 * `sqlite:///abs/path`) or `sqlite::memory:`. PostgreSQL (`postgres://…`) and anything else are refused
 * with `UnsupportedCatalogUrl` until a dialect for them exists.
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
    throw unsupported(url, `PostgreSQL catalogs are not supported yet; ${WHAT_WORKS}`)
  }
  throw unsupported(url, scheme ? `Cairn has no catalog dialect for "${scheme}:"; ${WHAT_WORKS}` : WHAT_WORKS)
}

/** Every catalog dialect Cairn has, with the URL of a new catalog in `dir`: what catalog tests loop over. */
export const CATALOG_DIALECTS: readonly { name: string; url(dir: string): string }[] = [
  { name: 'sqlite', url: (dir) => `sqlite:${join(dir, 'catalog.db')}` },
]

function unsupported(url: string, why: string): CairnError {
  // The URL may carry a password (postgres://user:secret@host): name only its scheme and host.
  return new CairnError('UnsupportedCatalogUrl', `Cannot open the catalog at ${redact(url)}: ${why}`)
}

function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1…@')
}
