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

  it('answers many Put Pages and ranged Get Blobs at once, each with its own bytes (reused page buffers)', async () => {
    const h = await startBlobApi()
    try {
      const c = h.service.getContainerClient('many')
      await c.create()
      const b = c.getPageBlobClient('disk')
      await b.create(32 * MiB)
      // Whole 4 MiB pages (sent to the device directly), a 64 KiB one and an odd 5,120-byte one.
      const writes = Array.from({ length: 8 }, (_, i) =>
        b.uploadPages(pattern(4 * MiB, i), i * 4 * MiB, 4 * MiB),
      )
      await Promise.all(writes)
      await b.uploadPages(pattern(64 * 1024, 50), 5 * MiB + 8192, 64 * 1024)
      await b.uploadPages(pattern(5120, 51), 9 * MiB + 512, 5120)
      const expected = Buffer.concat(Array.from({ length: 8 }, (_, i) => pattern(4 * MiB, i)))
      pattern(64 * 1024, 50).copy(expected, 5 * MiB + 8192)
      pattern(5120, 51).copy(expected, 9 * MiB + 512)
      for (let round = 0; round < 2; round++) {
        const ranges = Array.from({ length: 24 }, (_, i) => {
          const start = ((i * 7919 + round * 104729) % 7000) * 4096 + (i % 3) * 512
          const count = i % 4 === 0 ? 4 * MiB : 4096 + ((i * 65537) % (2 * MiB))
          return { start, count: Math.min(count, 32 * MiB - start) }
        })
        const got = await Promise.all(ranges.map((r) => b.downloadToBuffer(r.start, r.count)))
        ranges.forEach((r, i) => {
          assert.ok(
            got[i]!.equals(expected.subarray(r.start, r.start + r.count)),
            `range ${r.start}+${r.count}`,
          )
        })
      }
    } finally {
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
