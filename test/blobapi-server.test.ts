import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BlobServiceClient } from '@azure/storage-blob'
import { DEVELOPMENT_ACCOUNT } from '../src/blobapi/index.js'
import { pattern, rawRequest, startBlobApi } from './_blobapi-harness.js'

const MiB = 1024 * 1024

describe('BlobApiServer', () => {
  it('close() lets a download in flight finish and then refuses new connections', async () => {
    const h = await startBlobApi()
    let closed = false
    try {
      const c = h.service.getContainerClient('disks')
      await c.create()
      const b = c.getPageBlobClient('big')
      await b.create(32 * MiB)
      for (let i = 0; i < 8; i++) await b.uploadPages(pattern(4 * MiB, i), i * 4 * MiB, 4 * MiB)
      const r = await b.download()
      const closing = h.server.close()
      let got = 0
      for await (const chunk of r.readableStreamBody!) got += (chunk as Buffer).length
      await closing
      closed = true
      assert.equal(got, 32 * MiB)
      await assert.rejects(fetch(`${h.accountUrl}?comp=list`))
    } finally {
      if (!closed) await h.server.close()
      await h.close()
    }
  })

  it('serves blob names with spaces, slashes and non-ASCII letters', async () => {
    const h = await startBlobApi()
    try {
      const c = h.service.getContainerClient('names')
      await c.create()
      const name = 'vm 1/disks/Ä data+1.vhd'
      const b = c.getPageBlobClient(name)
      await b.create(4096, { metadata: { owner: 'x' } })
      await b.uploadPages(pattern(512, 1), 512, 512)
      assert.deepEqual(await b.downloadToBuffer(512, 512), pattern(512, 1))
      const names: string[] = []
      for await (const item of c.listBlobsFlat()) names.push(item.name)
      assert.deepEqual(names, [name])
      const copy = c.getPageBlobClient('copy of Ä')
      await copy.syncCopyFromURL(b.url)
      assert.deepEqual(await copy.downloadToBuffer(512, 512), pattern(512, 1))
    } finally {
      await h.close()
    }
  })

  it('serves clients configured with the development connection string of docs/blobapi.md', async () => {
    const h = await startBlobApi()
    try {
      const conn = `DefaultEndpointsProtocol=http;AccountName=${DEVELOPMENT_ACCOUNT.name};AccountKey=${DEVELOPMENT_ACCOUNT.key};BlobEndpoint=${h.accountUrl};`
      const service = BlobServiceClient.fromConnectionString(conn)
      await service.getContainerClient('viaconn').create()
      const names: string[] = []
      for await (const c of service.listContainers()) names.push(c.name)
      assert.deepEqual(names, ['viaconn'])
    } finally {
      await h.close()
    }
  })

  it('answers Abort Copy Blob with NoPendingCopyOperation, as copies finish at once', async () => {
    const h = await startBlobApi()
    try {
      const c = h.service.getContainerClient('copies')
      await c.create()
      const src = c.getPageBlobClient('src')
      await src.create(4096)
      const dst = c.getPageBlobClient('dst')
      const r = await dst.syncCopyFromURL(src.url)
      const abort = await rawRequest(h, 'PUT', `/copies/dst?comp=copy&copyid=${r.copyId}`, {
        headers: { 'x-ms-copy-action': 'abort' },
      })
      assert.equal(abort.status, 409)
      assert.equal(abort.code, 'NoPendingCopyOperation')
    } finally {
      await h.close()
    }
  })
})
