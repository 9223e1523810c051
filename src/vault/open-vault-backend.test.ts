import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { CairnError } from '../util/index.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { openVaultBackend } from './open-vault-backend.js'

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

  it('refuses object stores until they exist, naming the scheme and what works', () => {
    refused(
      's3://bucket/vaults/offsite',
      /s3:\/\/ object stores are not supported yet.*absolute path.*file:\/\/\//,
    )
    refused('azblob://account/container', /azblob:\/\/ object stores are not supported yet/)
    refused('S3://bucket', /s3:\/\/ object stores/)
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
