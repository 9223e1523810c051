import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  bundleDigest,
  installedVersion,
  requireSdkBundle,
  SDK_BUNDLES,
  type SdkBundleManifest,
  sdkBundleLoad,
} from './sdk-bundle.js'

const require = createRequire(import.meta.url)
const VENDOR = fileURLToPath(new URL('../../vendor/', import.meta.url))
const LAZY = fileURLToPath(new URL('./lazy-require.js', import.meta.url))
const LOADER = fileURLToPath(new URL('./sdk-bundle.js', import.meta.url))
const AZURE = '@azure/storage-blob'

const scratch = mkdtempSync(join(tmpdir(), 'cairn-sdk-bundle-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

/** A copy of the build's dist/vendor/ to spoil, and its manifest. */
function vendorCopy(name: string): { dir: string; manifest: SdkBundleManifest; save: () => void } {
  const dir = join(scratch, name)
  cpSync(VENDOR, dir, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(dir, 'sdk-bundles.json'), 'utf8')) as SdkBundleManifest
  return { dir, manifest, save: () => writeFileSync(join(dir, 'sdk-bundles.json'), JSON.stringify(manifest)) }
}

/** How a fresh process loads `specifier` through lazyRequire, and what the module it gets offers. */
function loadInFreshProcess(specifier: string, env: Record<string, string> = {}) {
  const script = `import { lazyRequire } from ${JSON.stringify(LAZY)}
    import { sdkBundleLoad } from ${JSON.stringify(LOADER)}
    const m = lazyRequire(${JSON.stringify(specifier)})()
    process.stdout.write(JSON.stringify({ load: sdkBundleLoad(${JSON.stringify(specifier)}) ?? 'package', keys: Object.keys(m).sort() }))`
  // --expose-gc as every process that opens a vault sets it (src/vault/_memory.ts), and the build with it.
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  })
  return JSON.parse(out) as { load: string; keys: string[] }
}

describe('SDK bundles', () => {
  for (const specifier of SDK_BUNDLES) {
    it(`the build bundles ${specifier}, which loads with its code cache and exports what the package does`, () => {
      const bundled = loadInFreshProcess(specifier)
      assert.equal(bundled.load, 'cached')
      // V8 takes a code cache only from a process with the same flags: without --expose-gc it compiles.
      const own = loadInFreshProcess(specifier, { CAIRN_SDK_BUNDLES: '0' })
      assert.equal(own.load, 'package')
      assert.deepEqual(bundled.keys, own.keys)
      assert.ok(bundled.keys.length > 20, `${specifier} exports ${bundled.keys.length} names`)
    })
  }

  it('the bundled Azure SDK builds clients and signs requests', () => {
    const sdk = requireSdkBundle(AZURE, require) as typeof import('@azure/storage-blob')
    const credential = new sdk.StorageSharedKeyCredential('acct', Buffer.from('key').toString('base64'))
    const container = new sdk.BlobServiceClient('http://127.0.0.1:1/acct', credential).getContainerClient('c')
    assert.equal(container.getBlockBlobClient('a/b').url, 'http://127.0.0.1:1/acct/c/a/b')
    assert.equal(credential.computeHMACSHA256('x'), credential.computeHMACSHA256('x'))
  })

  it('CAIRN_SDK_BUNDLES=0 loads the packages as they are', () => {
    process.env.CAIRN_SDK_BUNDLES = '0'
    try {
      assert.equal(requireSdkBundle(AZURE, require), undefined)
    } finally {
      delete process.env.CAIRN_SDK_BUNDLES
    }
  })

  it('only the SDKs are bundled; nothing is loaded from a folder without a build', () => {
    assert.equal(requireSdkBundle('pg', require), undefined)
    assert.equal(requireSdkBundle(AZURE, require, join(scratch, 'none')), undefined)
  })

  it('a bundle of another version than the installed package is not used', () => {
    const v = vendorCopy('version')
    v.manifest.bundles[AZURE]!.version = '0.0.1'
    v.save()
    assert.equal(requireSdkBundle(AZURE, require, v.dir), undefined)
    assert.equal(
      installedVersion(AZURE, require),
      (require(`${AZURE}/package.json`) as { version: string }).version,
    )
  })

  it('a bundle whose text differs from the one the manifest records is not used, nor its cache', () => {
    const v = vendorCopy('changed')
    const file = join(v.dir, v.manifest.bundles[AZURE]!.file)
    // The same length, so V8's own check of the cache (the source's length) would not notice.
    const text = readFileSync(file, 'utf8')
    writeFileSync(file, text.replace('BlobServiceClient', 'BlobServiceClienT'))
    assert.equal(readFileSync(file, 'utf8').length, text.length)
    assert.notEqual(readFileSync(file, 'utf8'), text)
    assert.equal(requireSdkBundle(AZURE, require, v.dir), undefined)
  })

  it('a spoiled code cache is rejected and the bundle compiled instead', () => {
    const v = vendorCopy('cache')
    const cache = join(v.dir, v.manifest.bundles[AZURE]!.cache!)
    const bytes = readFileSync(cache)
    bytes.fill(0x41, 64, 4096)
    writeFileSync(cache, bytes)
    const sdk = requireSdkBundle(AZURE, require, v.dir) as { BlobServiceClient?: unknown }
    assert.equal(typeof sdk.BlobServiceClient, 'function')
    assert.equal(sdkBundleLoad(AZURE), 'compiled')
  })

  it('a cache written by another Node is not offered to V8; the bundle compiles', () => {
    const v = vendorCopy('node')
    v.manifest.node = 'v0.0.0'
    v.save()
    assert.equal(
      typeof (requireSdkBundle(AZURE, require, v.dir) as { BlobServiceClient?: unknown }).BlobServiceClient,
      'function',
    )
    assert.equal(sdkBundleLoad(AZURE), 'compiled')
  })

  it('a bundle that fails to load leaves the package to load as it is', () => {
    const v = vendorCopy('throws')
    const entry = v.manifest.bundles[AZURE]!
    const text = "throw new Error('broken bundle')"
    writeFileSync(join(v.dir, entry.file), text)
    entry.sha256 = bundleDigest(text)
    v.save()
    assert.equal(requireSdkBundle(AZURE, require, v.dir), undefined)
    assert.equal(sdkBundleLoad(AZURE), 'package')
  })

  it('the bundles hold no import(), which a script run by node:vm cannot call; the S3 SDK requires instead', () => {
    const manifest = JSON.parse(readFileSync(join(VENDOR, 'sdk-bundles.json'), 'utf8')) as SdkBundleManifest
    for (const specifier of SDK_BUNDLES) {
      const text = readFileSync(join(VENDOR, manifest.bundles[specifier]!.file), 'utf8')
      assert.equal(text.match(/\bimport\s*\(/g), null, specifier)
    }
    const s3 = readFileSync(join(VENDOR, manifest.bundles['@aws-sdk/client-s3']!.file), 'utf8')
    assert.match(s3, /Promise\.resolve\(\)\.then\(\(\)=>[^;]*require\("node:http"\)/)
  })
})
