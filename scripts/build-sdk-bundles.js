#!/usr/bin/env node
// Bundles the object-store SDKs (@azure/storage-blob, @aws-sdk/client-s3) into one CommonJS file each
// in dist/vendor/, with rolldown (vite's bundler), and writes each bundle's V8 code cache beside it.
// Run by `npm run build` after tsc. A process that opens an Azure vault then loads the SDK in ~0.1 s
// instead of ~0.2 s (the S3 SDK ~0.09 s instead of ~0.13 s): see src/util/sdk-bundle.ts, which loads
// them. It never fails the build: without rolldown (an install without dev dependencies) it says so
// and the SDKs load from node_modules as they are. A bundle is rebuilt when its package's version or
// the Node that runs the build changes; `--force` rebuilds them all.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const vendor = join(root, 'dist', 'vendor')
const loader = join(root, 'dist', 'src', 'util', 'sdk-bundle.js')
const require = createRequire(join(root, 'package.json'))
const { SDK_BUNDLES, bundleDigest, sdkBundleFile, installedVersion } = await import(loader)

const manifestFile = join(vendor, 'sdk-bundles.json')
let before = { node: '', bundles: {} }
try {
  before = JSON.parse(readFileSync(manifestFile, 'utf8'))
} catch {}
const force = process.argv.includes('--force')
const todo = SDK_BUNDLES.filter((specifier) => {
  const had = before.bundles[specifier]
  return (
    force ||
    before.node !== process.version ||
    had?.version !== installedVersion(specifier, require) ||
    !existsSync(join(vendor, had.file)) ||
    !had.cache ||
    !existsSync(join(vendor, had.cache))
  )
})
if (todo.length === 0) process.exit(0)

let rolldown
try {
  rolldown = await import('rolldown')
} catch {
  console.error('build-sdk-bundles: rolldown is not installed; the object-store SDKs load from node_modules')
  process.exit(0)
}

mkdirSync(vendor, { recursive: true })
const after = { node: process.version, bundles: { ...before.bundles } }
for (const specifier of todo) {
  const file = sdkBundleFile(specifier)
  delete after.bundles[specifier]
  try {
    await rolldown.build({
      input: require.resolve(specifier),
      platform: 'node',
      logLevel: 'silent',
      output: {
        format: 'cjs',
        file: join(vendor, `${file}.tmp`),
        exports: 'named',
        codeSplitting: false,
        // import() of a built-in module (the S3 SDK has two) as a require: a script run by node:vm may not
        // import() without an experimental flag.
        dynamicImportInCjs: false,
        // Names are kept, so that a stack through the SDK still reads.
        minify: { mangle: false, compress: true },
      },
    })
    const left = readFileSync(join(vendor, `${file}.tmp`), 'utf8').match(/\bimport\s*\(/g)?.length ?? 0
    if (left > 0) throw new Error(`${left} import() calls left in the bundle`)
    renameSync(join(vendor, `${file}.tmp`), join(vendor, file))
    // The cache is written by a fresh process, as the bundle will be loaded: nothing else compiled first.
    // V8 takes a code cache only from a process with the same V8 flags, and every process that opens a
    // vault sets --expose-gc (src/vault/_memory.ts): so does this one.
    const made = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '--input-type=module',
        '-e',
        `import { writeSdkBundleCache } from ${JSON.stringify(loader)}
         process.stdout.write(writeSdkBundleCache(${JSON.stringify(vendor)}, ${JSON.stringify(file)}))`,
      ],
      { encoding: 'utf8' },
    )
    if (made.status !== 0) throw new Error(made.stderr.trim().split('\n').slice(-3).join(' '))
    after.bundles[specifier] = {
      version: installedVersion(specifier, require),
      file,
      sha256: bundleDigest(readFileSync(join(vendor, file), 'utf8')),
      cache: made.stdout,
    }
  } catch (err) {
    console.error(
      `build-sdk-bundles: could not bundle ${specifier} (${err.message}); it loads from node_modules`,
    )
  }
}
writeFileSync(`${manifestFile}.tmp`, `${JSON.stringify(after, null, 2)}\n`)
renameSync(`${manifestFile}.tmp`, manifestFile)
