import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { CairnError } from '../util/index.js'
import { AzureBlobVaultBackend } from './azure-blob-vault-backend.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { openVaultBackend } from './open-vault-backend.js'
import { S3VaultBackend } from './s3-vault-backend.js'

function refused(location: string, pattern: RegExp): void {
  assert.throws(
    () => openVaultBackend(location),
    (err: unknown) => {
      assert.ok(err instanceof CairnError)
      assert.equal(err.code, 'UnsupportedVaultLocation', err.message)
      assert.match(err.message, pattern)
      return true
    },
    location,
  )
}

describe('openVaultBackend', () => {
  it('opens a folder from an absolute path or a file:/// URL, both at the same place', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-open-backend-'))
    try {
      const folder = join(dir, 'a vault with spaces')
      const byPath = openVaultBackend(folder)
      assert.ok(byPath instanceof FsVaultBackend)
      assert.equal(byPath.location, folder)
      const byUrl = openVaultBackend(pathToFileURL(folder).href)
      assert.ok(byUrl instanceof FsVaultBackend)
      assert.equal(byUrl.location, folder, 'percent-escapes of the URL are decoded')
      await byUrl.put('config', Buffer.from('hello'))
      assert.equal((await readFile(join(folder, 'config'))).toString(), 'hello')
      assert.equal((await byPath.get('config')).toString(), 'hello')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('opens memory://NAME on one store per name', async () => {
    try {
      const a = openVaultBackend('memory://factory-a')
      assert.ok(a instanceof MemoryVaultBackend)
      assert.equal(a.kind, 'memory')
      assert.equal(a.location, 'memory://factory-a')
      await a.put('x', Buffer.from('1'))
      assert.equal((await openVaultBackend('memory://factory-a').get('x')).toString(), '1')
      assert.deepEqual(await openVaultBackend('memory://factory-b').list(''), [])
    } finally {
      MemoryVaultBackend.drop('factory-a')
      MemoryVaultBackend.drop('factory-b')
    }
    assert.deepEqual(await openVaultBackend('memory://factory-a').list(''), [], 'drop forgets the objects')
    MemoryVaultBackend.drop('factory-a')
  })

  it('opens azblob:// and s3:// locations on their backends, keeping only the non-secret parameters', () => {
    const env = { AZURE_STORAGE_KEY: 'a2V5', AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' }
    const az = openVaultBackend('azblob://acct1/vaults/site-a/', { objectStores: { env } })
    assert.ok(az instanceof AzureBlobVaultBackend)
    assert.equal(az.kind, 'azure')
    assert.equal(az.location, 'azblob://acct1/vaults/site-a')
    const s3 = openVaultBackend(
      's3://my.bucket/a/b?region=eu-west-1&path-style=true&endpoint=http%3A%2F%2F127.0.0.1%3A9000',
      {
        objectStores: { env },
      },
    )
    assert.ok(s3 instanceof S3VaultBackend)
    assert.equal(s3.kind, 's3')
    assert.equal(
      s3.location,
      's3://my.bucket/a/b?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1&path-style=true',
    )
    assert.equal(openVaultBackend('S3://bucket', { objectStores: { env } }).kind, 's3')
  })

  it('refuses object-store locations that carry secrets or bad names, never echoing the secret', () => {
    const env = { AZURE_STORAGE_KEY: 'a2V5', AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' }
    const refusedHere = (location: string, pattern: RegExp) =>
      assert.throws(
        () => openVaultBackend(location, { objectStores: { env } }),
        (err: unknown) => {
          assert.ok(err instanceof CairnError)
          assert.equal(err.code, 'UnsupportedVaultLocation', err.message)
          assert.match(err.message, pattern)
          assert.doesNotMatch(err.message, /hunter2|sig=|AKIASECRET/)
          return true
        },
        location,
      )
    refusedHere('s3://AKIASECRET:hunter2@bucket/x', /credentials never go in a location/)
    refusedHere('azblob://acct1/c1/x?sig=hunter2&sv=2020', /"sig" is not a location parameter/)
    refusedHere('s3://bucket/x?secret=hunter2', /"secret" is not a location parameter/)
    refusedHere('s3://Bad_Bucket/x', /not a bucket name/)
    refusedHere('azblob://acct1', /names no container/)
    refusedHere('azblob://ACCT/c1', /not a storage account name/)
    refusedHere('azblob://acct1/c--1', /not a container name/)
    refusedHere('s3://bucket/x?endpoint=ftp://h', /not an http/)
    refusedHere('s3://bucket/../x', /"\." or "\.\." part/)
  })

  it('an object store without credentials in the options or the environment is ObjectStoreAuthFailed', () => {
    for (const location of ['azblob://acct1/vaults', 's3://bucket'])
      assert.throws(
        () => openVaultBackend(location, { objectStores: { env: {} } }),
        (err: unknown) => err instanceof CairnError && err.code === 'ObjectStoreAuthFailed',
      )
  })

  it('refuses relative paths, unknown schemes, remote file URLs and bad memory names', () => {
    refused('vaults/offsite', /neither an absolute path nor a URL/)
    refused('./offsite', /neither an absolute path nor a URL/)
    refused('', /neither an absolute path nor a URL/)
    refused('ftp://host/x', /no vault backend for "ftp:"/)
    refused('file://otherhost/srv/vault', /not a local file URL/)
    refused('file:relative', /a file URL is file:\/\/\/ABSOLUTE\/PATH/)
    refused('memory://', /memory:\/\/NAME/)
    refused('memory://a/b', /memory:\/\/NAME/)
  })
})

describe('object-store SDKs in a vault process', () => {
  it('load from the build’s bundles with their code caches (V8 takes them with the flags the vault sets)', () => {
    const vault = new URL('./index.js', import.meta.url).href
    const util = new URL('../util/index.js', import.meta.url).href
    const script = `import ${JSON.stringify(vault)}
      import { lazyRequire, sdkBundleLoad } from ${JSON.stringify(util)}
      const loads = {}
      for (const s of ['@azure/storage-blob', '@aws-sdk/client-s3']) { lazyRequire(s)(); loads[s] = sdkBundleLoad(s) }
      process.stdout.write(JSON.stringify(loads))`
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
    assert.deepEqual(JSON.parse(out), { '@azure/storage-blob': 'cached', '@aws-sdk/client-s3': 'cached' })
  })
})
