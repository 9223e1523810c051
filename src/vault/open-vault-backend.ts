import { isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CairnError } from '../util/index.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import type { VaultBackend } from './vault-backend.js'

const SCHEME = /^([a-z][a-z0-9+.-]*):/i
const MEMORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** Schemes the object-store backends will take; named here so their refusal says what is coming. */
const OBJECT_STORES = new Set(['s3', 'azblob'])

const WHAT_WORKS = 'give an absolute path or a file:/// URL'

/**
 * The backend a vault location names: an absolute path or `file:///path` (a local folder),
 * `memory://NAME` (this process's memory, for tests). Object stores (`s3://`, `azblob://`) and anything
 * else are refused with `UnsupportedVaultLocation`.
 */
export function openVaultBackend(location: string, options: { openFiles?: number } = {}): VaultBackend {
  const scheme = SCHEME.exec(location)?.[1]?.toLowerCase()
  if (scheme === undefined) {
    if (isAbsolute(location)) return new FsVaultBackend(location, options)
    throw unsupported(location, `it is neither an absolute path nor a URL; ${WHAT_WORKS}`)
  }
  if (scheme === 'file') {
    if (!/^file:\/\//i.test(location))
      throw unsupported(location, `a file URL is file:///ABSOLUTE/PATH; ${WHAT_WORKS}`)
    let path: string
    try {
      path = fileURLToPath(location)
    } catch (err) {
      throw unsupported(location, `it is not a local file URL (${(err as Error).message}); ${WHAT_WORKS}`)
    }
    return new FsVaultBackend(path, options)
  }
  if (scheme === 'memory') {
    const name = location.slice('memory:'.length).replace(/^\/\//, '')
    if (!MEMORY_NAME.test(name)) {
      throw unsupported(location, 'a memory location is memory://NAME (letters, digits, ".", "_", "-")')
    }
    return new MemoryVaultBackend(name)
  }
  if (OBJECT_STORES.has(scheme)) {
    throw unsupported(location, `vaults on ${scheme}:// object stores are not supported yet; ${WHAT_WORKS}`)
  }
  throw unsupported(location, `Cairn has no vault backend for "${scheme}:"; ${WHAT_WORKS}`)
}

function unsupported(location: string, why: string): CairnError {
  return new CairnError('UnsupportedVaultLocation', `Cannot use vault location "${location}": ${why}`)
}
