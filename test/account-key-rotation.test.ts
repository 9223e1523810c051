// Account key regeneration through the CLI and the management API: the old key and every SAS signed
// with it stop working at once, the other key keeps working.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { rawRequest } from './_raw-http.js'
import { cairnAt, startService } from './_service.js'

interface Keys {
  account: string
  key1: string
  key2: string
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p
    return 200
  } catch (err) {
    assert.ok(err instanceof RestError, String(err))
    return err.statusCode ?? 0
  }
}

describe('account key regeneration', () => {
  it('cairn account keys regenerate replaces one key: its requests and SAS fail at once, the other key works', async () => {
    const svc = await startService()
    try {
      const blobUrl = `${svc.listeners.blob}/rot1`
      assert.equal((await cairnAt(svc.url, ['account', 'create', 'rot1'])).code, 0)
      const before = JSON.parse((await cairnAt(svc.url, ['account', 'keys', 'rot1'])).stdout) as Keys
      const client = (key: string) =>
        new BlobServiceClient(blobUrl, new StorageSharedKeyCredential('rot1', key), {
          retryOptions: { maxTries: 1 },
        })
      await client(before.key1).getContainerClient('disks').create()
      const disk = client(before.key1).getContainerClient('disks').getPageBlobClient('os.vhd')
      await disk.create(4096)
      const sas = (key: string) =>
        `${blobUrl}/disks/os.vhd?${generateBlobSASQueryParameters(
          {
            containerName: 'disks',
            blobName: 'os.vhd',
            permissions: BlobSASPermissions.parse('r'),
            expiresOn: new Date(Date.now() + 3600_000),
          },
          new StorageSharedKeyCredential('rot1', key),
        )}`
      const sas1 = sas(before.key1)
      const sas2 = sas(before.key2)
      assert.equal((await fetch(sas1, { method: 'HEAD' })).status, 200)

      const rotated = await cairnAt(svc.url, ['account', 'keys', 'regenerate', 'rot1', '--key', 'key1'])
      assert.equal(rotated.code, 0, rotated.stderr)
      const after = JSON.parse(rotated.stdout) as Keys
      assert.notEqual(after.key1, before.key1)
      assert.equal(after.key2, before.key2)
      const shown = JSON.parse((await cairnAt(svc.url, ['account', 'keys', 'rot1'])).stdout) as Keys
      assert.equal(shown.key1, after.key1)

      const list = (key: string) => client(key).getContainerClient('disks').getProperties()
      assert.equal(await status(list(before.key1)), 403)
      assert.equal(await status(list(before.key2)), 200)
      assert.equal(await status(list(after.key1)), 200)
      const old = await fetch(sas1)
      assert.equal(old.status, 403)
      assert.equal(old.headers.get('x-ms-error-code'), 'AuthenticationFailed')
      assert.equal((await fetch(sas2, { method: 'HEAD' })).status, 200)
      assert.equal((await fetch(sas(after.key1), { method: 'HEAD' })).status, 200)
    } finally {
      await svc.dispose()
    }
  })

  it('POST /api/v1/accounts/{account}/keys/regenerate takes key1 or key2 and refuses anything else', async () => {
    const svc = await startService()
    try {
      const post = (path: string, body: unknown) =>
        rawRequest(`${svc.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      assert.equal((await post('/api/v1/accounts', { name: 'rot2' })).status, 201)
      const before = JSON.parse((await rawRequest(`${svc.url}/api/v1/accounts/rot2/keys`)).text) as {
        keys: [string, string]
      }
      const r = await post('/api/v1/accounts/rot2/keys/regenerate', { keyName: 'key2' })
      assert.equal(r.status, 200)
      const after = JSON.parse(r.text) as { account: string; keys: [string, string] }
      assert.equal(after.account, 'rot2')
      assert.equal(after.keys[0], before.keys[0])
      assert.notEqual(after.keys[1], before.keys[1])
      assert.equal(Buffer.from(after.keys[1], 'base64').length, 64)
      const bad = await post('/api/v1/accounts/rot2/keys/regenerate', { keyName: 'key3' })
      assert.equal(bad.status, 400)
      assert.equal(bad.code, 'InvalidRequest')
      const missing = await post('/api/v1/accounts/nosuch/keys/regenerate', { keyName: 'key1' })
      assert.equal(missing.status, 404)
      assert.equal(missing.code, 'AccountNotFound')
    } finally {
      await svc.dispose()
    }
  })
})
