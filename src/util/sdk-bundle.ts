import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script } from 'node:vm'

/**
 * The packages `npm run build` bundles into one file each (scripts/build-sdk-bundles.js): the
 * object-store SDKs, whose hundreds of CommonJS files cost a process that opens an Azure or S3 vault
 * 0.1–0.2 s of finding, reading and compiling before its first request. A bundle and the V8 code cache
 * written beside it at build time load in about half that.
 */
export const SDK_BUNDLES = ['@azure/storage-blob', '@aws-sdk/client-s3'] as const

/** dist/vendor/, beside dist/src/ (this file is dist/src/util/sdk-bundle.js once compiled). */
const VENDOR = fileURLToPath(new URL('../../vendor/', import.meta.url))
const MANIFEST = 'sdk-bundles.json'

/** What the build recorded: the Node it wrote the code caches with, and each bundle's package version. */
export interface SdkBundleManifest {
  node: string
  bundles: Record<string, { version: string; file: string; sha256: string; cache?: string }>
}

/** How a package was loaded in this process: from its bundle with or without the code cache, or not. */
export type SdkBundleLoad = 'cached' | 'compiled' | 'package'

const loads = new Map<string, SdkBundleLoad>()
let manifest: SdkBundleManifest | null | undefined

/** CommonJS's own wrapper, so the bundle sees `require`, `module` and `exports` as a package's file does. */
const wrap = (source: string) => `(function (exports, require, module, __filename, __dirname) { ${source}\n})`

/** The file name of `specifier`'s bundle in dist/vendor/. */
export const sdkBundleFile = (specifier: string) => `${specifier.replace(/^@/, '').replace(/\W+/g, '-')}.cjs`

/** The version of `specifier` that `require` finds from here (its package.json, which both SDKs export). */
export function installedVersion(specifier: string, from: NodeJS.Require): string {
  return (from(`${specifier}/package.json`) as { version: string }).version
}

function readManifest(dir: string): SdkBundleManifest | null {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as SdkBundleManifest
  } catch {
    return null
  }
}

/** The SHA-256 of a bundle's text, which the manifest records: V8 checks only a code cache's length. */
export const bundleDigest = (source: string) => createHash('sha256').update(source).digest('hex')

/** Compiles and runs a bundle as CommonJS; answers its exports and the script (for its code cache). */
function runBundle(
  file: string,
  source: string,
  cache: Buffer | undefined,
): { exports: unknown; script: Script } {
  // The build leaves no import() in a bundle: a script run by node:vm could not use it.
  const script = new Script(wrap(source), { filename: file, cachedData: cache })
  const module = { exports: {} as unknown }
  const fn = script.runInThisContext() as (...args: unknown[]) => void
  fn.call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  return { exports: module.exports, script }
}

/**
 * `specifier` loaded from its bundle, or undefined where there is none to trust: no bundle built, the
 * installed package a different version than the one bundled (node_modules changed since the build),
 * `CAIRN_SDK_BUNDLES=0`, or a bundle that fails to load (then the package is loaded as it is, and
 * {@link sdkBundleLoad} says so). A code cache written by another Node, or that V8 rejects, only costs
 * the compile it would have saved.
 */
export function requireSdkBundle(specifier: string, from: NodeJS.Require, dir = VENDOR): unknown {
  if (process.env.CAIRN_SDK_BUNDLES === '0' || !(SDK_BUNDLES as readonly string[]).includes(specifier)) return
  if (dir === VENDOR) manifest ??= readManifest(dir)
  const built = dir === VENDOR ? manifest : readManifest(dir)
  const entry = built?.bundles[specifier]
  if (!built || !entry || entry.version !== installedVersion(specifier, from)) return
  const file = join(dir, entry.file)
  let source: string
  try {
    source = readFileSync(file, 'utf8')
  } catch {
    return
  }
  // A bundle rebuilt without its manifest (a build killed between them) is not trusted, nor its cache.
  if (bundleDigest(source) !== entry.sha256) return
  let cache: Buffer | undefined
  if (entry.cache && built.node === process.version && existsSync(join(dir, entry.cache)))
    cache = readFileSync(join(dir, entry.cache))
  try {
    const { exports, script } = runBundle(file, source, cache)
    loads.set(specifier, cache && !script.cachedDataRejected ? 'cached' : 'compiled')
    return exports
  } catch {
    loads.set(specifier, 'package')
    return
  }
}

/** How `specifier` was loaded in this process, if it was (for tests and diagnostics). */
export const sdkBundleLoad = (specifier: string): SdkBundleLoad | undefined => loads.get(specifier)

/**
 * Writes the V8 code cache of a bundle in `dir`, after running it so that the functions its loading
 * compiles are in the cache too; run by the build in a fresh process of the Node that will load it.
 * Answers the cache's file name (beside the bundle, written whole or not at all).
 */
export function writeSdkBundleCache(dir: string, file: string): string {
  const { script } = runBundle(join(dir, file), readFileSync(join(dir, file), 'utf8'), undefined)
  const cache = `${file}.v8cache`
  writeFileSync(join(dir, `${cache}.tmp`), script.createCachedData())
  renameSync(join(dir, `${cache}.tmp`), join(dir, cache))
  return cache
}
