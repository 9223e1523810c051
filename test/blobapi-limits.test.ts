import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BlobServiceClient, RestError, StorageSharedKeyCredential } from '@azure/storage-blob'
import { sharedKey } from './_blobapi-harness.js'
import { generated, memoryOf, type RawAnswer, rawRequest } from './_raw-http.js'
import { type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024
const DEV = 'devstoreaccount1'
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

const azureCode = (r: RawAnswer) => r.headers['x-ms-error-code'] as string | undefined

/** A Put Page of `range` (inclusive `bytes=a-b`), signed, with the given body handling. */
function putPage(
  svc: RunningService,
  blob: string,
  range: string,
  body: { declaredOnly: number } | { chunked: AsyncIterable<Buffer> } | { bytes: Buffer },
): Promise<RawAnswer> {
  const url = new URL(`${svc.listeners.blob}/${DEV}/disks/${blob}?comp=page`)
  const headers: Record<string, string> = {
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': '2025-01-05',
    'x-ms-page-write': 'update',
    'x-ms-range': range,
  }
  if ('declaredOnly' in body) headers['content-length'] = String(body.declaredOnly)
  else if ('bytes' in body) headers['content-length'] = String(body.bytes.length)
  else headers['transfer-encoding'] = 'chunked'
  headers.authorization = sharedKey('PUT', url, headers, DEV_KEY)
  return rawRequest(url.href, {
    method: 'PUT',
    headers,
    ...('declaredOnly' in body ? { declaredOnly: body.declaredOnly } : {}),
    ...('bytes' in body ? { body: body.bytes } : {}),
    ...('chunked' in body ? { body: body.chunked } : {}),
  })
}

function client(svc: RunningService): BlobServiceClient {
  return new BlobServiceClient(`${svc.listeners.blob}/${DEV}`, new StorageSharedKeyCredential(DEV, DEV_KEY), {
    retryOptions: { maxTries: 1 },
  })
}

describe('blob API limits', () => {
  it('refuses a Put Page over 4 MiB, or not matching its range, from its headers before the body is sent', async () => {
    const svc = await startService()
    try {
      const page = client(svc).getContainerClient('disks').getPageBlobClient('limits')
      await page.create(64 * MiB)
      // 8 MiB range and body: over Azure's 4 MiB.
      const big = await putPage(svc, 'limits', `bytes=0-${8 * MiB - 1}`, { declaredOnly: 8 * MiB })
      assert.equal(big.status, 413)
      assert.equal(azureCode(big), 'RequestBodyTooLarge')
      // A 512-byte range announcing a 4 MiB body.
      const mismatch = await putPage(svc, 'limits', 'bytes=0-511', { declaredOnly: 4 * MiB })
      assert.equal(mismatch.status, 400)
      assert.equal(azureCode(mismatch), 'InvalidHeaderValue')
      // A body longer than its range never reaches the disk either.
      const longer = await putPage(svc, 'limits', 'bytes=0-511', { bytes: Buffer.alloc(1024, 9) })
      assert.equal(longer.status, 400)
      const ranges = await page.getPageRanges()
      assert.deepEqual(ranges.pageRange ?? [], [])
    } finally {
      await svc.dispose()
    }
  })

  it('refuses a chunked Put Page (no Content-Length) with 411 and does not keep a 1 GiB body in memory', async () => {
    const svc = await startService()
    try {
      const page = client(svc).getContainerClient('disks').getPageBlobClient('chunked')
      await page.create(2048 * MiB)
      const before = await memoryOf(svc.child.pid!)
      const r = await putPage(svc, 'chunked', `bytes=0-${1024 * MiB - 1}`, {
        chunked: generated(1024 * MiB, 5),
      })
      assert.equal(r.status, 411)
      assert.equal(azureCode(r), 'MissingContentLengthHeader')
      const small = await putPage(svc, 'chunked', 'bytes=0-4095', { chunked: generated(4096, 5) })
      assert.equal(small.status, 411)
      const after = await memoryOf(svc.child.pid!)
      const grew = after.peak - before.peak
      assert.ok(grew < 64 * MiB, `peak memory grew by ${Math.round(grew / MiB)} MiB for refused bodies`)
      // The service still serves, and a proper Put Page still works.
      await page.uploadPages(Buffer.alloc(4096, 5), 0, 4096)
      const back = await page.download(0, 4096)
      assert.equal(back.contentLength, 4096)
    } finally {
      await svc.dispose()
    }
  })

  it('refuses an empty Put Page update with InvalidHeaderValue', async () => {
    const svc = await startService()
    try {
      const page = client(svc).getContainerClient('disks').getPageBlobClient('empty')
      await page.create(MiB)
      const r = await putPage(svc, 'empty', 'bytes=0-511', { bytes: Buffer.alloc(0) })
      assert.equal(r.status, 400)
      assert.equal(azureCode(r), 'InvalidHeaderValue')
      assert.match(r.text, /<HeaderName>Content-Length<\/HeaderName>/)
    } finally {
      await svc.dispose()
    }
  })

  it('refuses metadata over 8 KiB on blobs and containers with MetadataTooLarge, and keeps 8 KiB', async () => {
    const svc = await startService()
    try {
      const container = client(svc).getContainerClient('disks')
      const page = container.getPageBlobClient('meta')
      // Names and values count: 8 KiB exactly is allowed.
      const fits = { k: 'v'.repeat(8 * 1024 - 1) }
      const over = { k: 'v'.repeat(8 * 1024) }
      await page.create(MiB, { metadata: fits })
      assert.equal((await page.getProperties()).metadata?.k?.length, 8 * 1024 - 1)
      const refused = async (p: Promise<unknown>) => {
        await assert.rejects(p, (e: unknown) => {
          assert.ok(e instanceof RestError)
          assert.equal(e.statusCode, 400)
          assert.equal(e.code, 'MetadataTooLarge')
          return true
        })
      }
      await refused(page.setMetadata(over))
      await refused(page.setMetadata({ a: 'x'.repeat(5000), b: 'y'.repeat(5000) }))
      await refused(container.getPageBlobClient('meta2').create(MiB, { metadata: over }))
      await refused(container.setMetadata(over))
      await refused(client(svc).getContainerClient('more').create({ metadata: over }))
      // Nothing of the refused requests was kept.
      assert.equal((await page.getProperties()).metadata?.k?.length, 8 * 1024 - 1)
      assert.equal(await container.getPageBlobClient('meta2').exists(), false)
      assert.equal(await client(svc).getContainerClient('more').exists(), false)
    } finally {
      await svc.dispose()
    }
  })
})
