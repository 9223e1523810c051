import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pattern, startBlobApi } from './_blobapi-harness.js'

describe('blob API smoke', () => {
  it('creates a container and a page blob, writes and reads pages', async () => {
    const h = await startBlobApi()
    try {
      const c = h.service.getContainerClient('disks')
      await c.create()
      const b = c.getPageBlobClient('os.vhd')
      await b.create(1024 * 1024)
      const data = pattern(8192, 1)
      await b.uploadPages(data, 4096, data.length)
      const got = await b.downloadToBuffer(4096, 8192)
      assert.deepEqual(got, data)
      const ranges = await b.getPageRanges()
      assert.deepEqual(ranges.pageRange, [{ offset: 4096, count: 8192 - 1 }])
    } finally {
      await h.close()
    }
  })
})
