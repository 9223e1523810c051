import { createRequire } from 'node:module'
import { requireSdkBundle } from './sdk-bundle.js'

const require = createRequire(import.meta.url)

/**
 * A loader of the CommonJS package `specifier` that requires it on its first call and answers the same
 * module after: a large client library (the S3 and Azure SDKs, the PostgreSQL driver, the certificate
 * maker) then costs a process nothing until it is used. `cairn serve` and every CLI or test process
 * start about a second of CPU sooner when they open no object-store vault, no PostgreSQL catalog and
 * make no certificate. The object-store SDKs load from the bundles the build makes of them where those
 * match the installed packages (src/util/sdk-bundle.ts). Types come from
 * `import type * as X from 'specifier'` beside it.
 */
export function lazyRequire<T>(specifier: string): () => T {
  let loaded: T | undefined
  return () => {
    loaded ??= (requireSdkBundle(specifier, require) ?? require(specifier)) as T
    return loaded
  }
}
