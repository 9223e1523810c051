import { isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CairnError } from '../util/index.js'
import { type ObjectStoreOptions, redactLocation } from './_object-store-location.js'
import { AzureBlobVaultBackend } from './azure-blob-vault-backend.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { S3VaultBackend } from './s3-vault-backend.js'
import type { VaultBackend } from './vault-backend.js'

const SCHEME = /^([a-z][a-z0-9+.-]*):/i
const MEMORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const WHAT_WORKS =
  'give an absolute path, a file:/// URL, s3://BUCKET/PREFIX or azblob://ACCOUNT/CONTAINER/PREFIX'

/** What opening a backend may be told: read handles kept open (folders), object-store settings. */
export interface OpenVaultBackendOptions {
  openFiles?: number
  objectStores?: ObjectStoreOptions
}

/**
 * The backend a vault location names: an absolute path or `file:///path` (a local folder),
 * `azblob://ACCOUNT/CONTAINER/PREFIX` (Azure Blob Storage), `s3://BUCKET/PREFIX` (S3 and compatible
 * stores), `memory://NAME` (this process's memory, for tests). Anything else is refused with
 * `UnsupportedVaultLocation`.
 */
export function openVaultBackend(location: string, options: OpenVaultBackendOptions = {}): VaultBackend {
  const scheme = SCHEME.exec(location)?.[1]?.toLowerCase()
  if (scheme === undefined) {
    if (isAbsolute(location)) return new FsVaultBackend(location, fsOptions(options))
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
    return new FsVaultBackend(path, fsOptions(options))
  }
  if (scheme === 'memory') {
    const name = location.slice('memory:'.length).replace(/^\/\//, '')
    if (!MEMORY_NAME.test(name)) {
      throw unsupported(location, 'a memory location is memory://NAME (letters, digits, ".", "_", "-")')
    }
    return new MemoryVaultBackend(name)
  }
  if (scheme === 'azblob') return new AzureBlobVaultBackend(location, options.objectStores)
  if (scheme === 's3') return new S3VaultBackend(location, options.objectStores)
  throw unsupported(location, `Cairn has no vault backend for "${scheme}:"; ${WHAT_WORKS}`)
}

function fsOptions(options: OpenVaultBackendOptions): { openFiles?: number } {
  return options.openFiles !== undefined ? { openFiles: options.openFiles } : {}
}

function unsupported(location: string, why: string): CairnError {
  return new CairnError(
    'UnsupportedVaultLocation',
    `Cannot use vault location "${redactLocation(location)}": ${why}`,
  )
}
