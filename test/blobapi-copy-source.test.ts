// A copy source in another account needs that account's authorization (a SAS on the source URL): Copy
// Blob, Incremental Copy Blob and Put Page From URL, with the official SDK and raw requests. Same-account
// copies keep working with the destination's Shared Key.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  AnonymousCredential,
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  PageBlobClient,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { crc64 } from '../src/blobapi/_crc64.js'
import {
  type BlobApiHarness,
  pattern,
  rawRequest,
  errorOf as refused,
  startBlobApi,
} from './_blobapi-harness.js'

const HOUR = 3600_000
const noRetry = { retryOptions: { maxTries: 1 } }

describe('blob API copy sources in other accounts', () => {
  let h: BlobApiHarness
  let other: BlobServiceClient
  let otherKey: StorageSharedKeyCredential
  let source: PageBlobClient
  const data = pattern(16384, 11)
  /** A SAS URL of the source blob (or one of its snapshots) signed with the other account's key. */
  const sasOf = (permissions: string, options: { snapshot?: string; expiresOn?: Date } = {}) =>
    `${source.url}?${options.snapshot !== undefined ? `snapshot=${encodeURIComponent(options.snapshot)}&` : ''}${generateBlobSASQueryParameters(
      {
        containerName: 'src',
        blobName: 'disk.vhd',
        permissions: BlobSASPermissions.parse(permissions),
        expiresOn: options.expiresOn ?? new Date(Date.now() + HOUR),
        ...(options.snapshot !== undefined ? { snapshotTime: options.snapshot } : {}),
      },
      otherKey,
    )}`

  before(async () => {
    h = await startBlobApi()
    const acct = await h.store.createAccount('otheracct')
    otherKey = new StorageSharedKeyCredential('otheracct', acct.keys[0])
    other = new BlobServiceClient(`${h.url}/otheracct`, otherKey, noRetry)
    await other.getContainerClient('src').create()
    source = other.getContainerClient('src').getPageBlobClient('disk.vhd')
    await source.create(65536)
    await source.uploadPages(data, 0, data.length)
    await h.service.getContainerClient('dst').create()
  })
  after(async () => {
    await h.close()
  })

  it('Copy Blob from another account with only the destination key is refused: 404 CannotVerifyCopySource', async () => {
    const dest = h.service.getContainerClient('dst').getPageBlobClient('stolen.vhd')
    assert.deepEqual(await refused(dest.beginCopyFromURL(source.url)), {
      status: 404,
      code: 'CannotVerifyCopySource',
    })
    assert.equal(await dest.exists(), false)
    const raw = await rawRequest(h, 'PUT', '/dst/stolen.vhd', { headers: { 'x-ms-copy-source': source.url } })
    assert.equal(raw.status, 404)
    assert.equal(raw.code, 'CannotVerifyCopySource')
    assert.match(raw.text, /needs a SAS of that account/)
  })

  it('Copy Blob from another account with a read SAS of that account copies, and shows the source without the SAS', async () => {
    const dest = h.service.getContainerClient('dst').getPageBlobClient('copied.vhd')
    const poller = await dest.beginCopyFromURL(sasOf('r'))
    const done = await poller.pollUntilDone()
    assert.equal(done.copyStatus, 'success')
    assert.deepEqual(await dest.downloadToBuffer(0, data.length), data)
    const props = await dest.getProperties()
    assert.equal(props.copySource, source.url)
    assert.doesNotMatch(props.copySource ?? '', /sig=/)
  })

  it('a source SAS without read, expired, tampered or of another key is refused with 403 CannotVerifyCopySource', async () => {
    const dest = h.service.getContainerClient('dst').getPageBlobClient('refused.vhd')
    const tampered = new URL(sasOf('r'))
    tampered.searchParams.set('sp', 'rw')
    const foreignKey = `${source.url}?${generateBlobSASQueryParameters(
      {
        containerName: 'src',
        blobName: 'disk.vhd',
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + HOUR),
      },
      h.credential,
    )}`
    for (const url of [
      sasOf('w'),
      sasOf('r', { expiresOn: new Date(Date.now() - 60_000) }),
      tampered.toString(),
      foreignKey,
    ]) {
      const r = await rawRequest(h, 'PUT', '/dst/refused.vhd', { headers: { 'x-ms-copy-source': url } })
      assert.equal(r.status, 403, url)
      assert.equal(r.code, 'CannotVerifyCopySource')
    }
    assert.equal(await dest.exists(), false)
  })

  it('same-account copies work with the destination Shared Key; a destination SAS needs a source SAS too', async () => {
    const mine = h.service.getContainerClient('dst').getPageBlobClient('mine.vhd')
    await mine.create(4096)
    await mine.uploadPages(pattern(512, 2), 0, 512)
    const copy = h.service.getContainerClient('dst').getPageBlobClient('mine-copy.vhd')
    await (await copy.beginCopyFromURL(mine.url)).pollUntilDone()
    assert.deepEqual(await copy.downloadToBuffer(0, 512), pattern(512, 2))

    const destSas = await h.service
      .getContainerClient('dst')
      .getPageBlobClient('via-sas.vhd')
      .generateSasUrl({ permissions: BlobSASPermissions.parse('cw'), expiresOn: new Date(Date.now() + HOUR) })
    const viaSas = new PageBlobClient(destSas, new AnonymousCredential(), noRetry)
    assert.deepEqual(await refused(viaSas.beginCopyFromURL(mine.url)), {
      status: 404,
      code: 'CannotVerifyCopySource',
    })
    const mineSas = await mine.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    await (await viaSas.beginCopyFromURL(mineSas)).pollUntilDone()
    assert.deepEqual(await copy.downloadToBuffer(0, 512), pattern(512, 2))
  })

  it('Incremental Copy from another account needs a SAS of the source snapshot', async () => {
    const snap = (await source.createSnapshot()).snapshot!
    const dest = h.service.getContainerClient('dst').getPageBlobClient('incremental.vhd')
    const bare = `${source.url}?snapshot=${encodeURIComponent(snap)}`
    assert.deepEqual(await refused(dest.startCopyIncremental(bare)), {
      status: 404,
      code: 'CannotVerifyCopySource',
    })
    const r = await dest.startCopyIncremental(sasOf('r', { snapshot: snap }))
    assert.equal(r.copyStatus, 'success')
    const copied = (await dest.getProperties()).destinationSnapshot
    assert.ok(copied)
    assert.deepEqual(await dest.withSnapshot(copied).downloadToBuffer(0, data.length), data)
  })

  it('Copy Blob checks the source conditions: 412 SourceConditionNotMet', async () => {
    const r = await rawRequest(h, 'PUT', '/dst/conditional.vhd', {
      headers: { 'x-ms-copy-source': sasOf('r'), 'x-ms-source-if-match': '"0x8DEWRONG"' },
    })
    assert.equal(r.status, 412)
    assert.equal(r.code, 'SourceConditionNotMet')
    const etag = (await source.getProperties()).etag!
    const ok = await rawRequest(h, 'PUT', '/dst/conditional.vhd', {
      headers: { 'x-ms-copy-source': sasOf('r'), 'x-ms-source-if-match': etag },
    })
    assert.equal(ok.status, 202)
  })

  it('a synchronous copy takes the source tags with x-ms-copy-source-tag-option COPY; x-ms-source-lease-id must match', async () => {
    await source.setTags({ origin: 'other' })
    const dest = h.service.getContainerClient('dst').getPageBlobClient('sync-tags.vhd')
    await dest.syncCopyFromURL(sasOf('r'), { copySourceTags: 'COPY' })
    assert.deepEqual((await dest.getTags()).tags, { origin: 'other' })
    await dest.syncCopyFromURL(sasOf('r'), { copySourceTags: 'REPLACE', tags: { mine: 'yes' } })
    assert.deepEqual((await dest.getTags()).tags, { mine: 'yes' })
    const asyncCopy = await rawRequest(h, 'PUT', '/dst/sync-tags.vhd', {
      headers: { 'x-ms-copy-source': sasOf('r'), 'x-ms-copy-source-tag-option': 'COPY' },
    })
    assert.equal(asyncCopy.status, 400)
    assert.equal(asyncCopy.code, 'InvalidHeaderValue')
    const lease = source.getBlobLeaseClient()
    await lease.acquireLease(-1)
    try {
      const wrong = await rawRequest(h, 'PUT', '/dst/sync-tags.vhd', {
        headers: {
          'x-ms-copy-source': sasOf('r'),
          'x-ms-source-lease-id': '00000000-0000-0000-0000-000000000001',
        },
      })
      assert.equal(wrong.status, 412)
      assert.equal(wrong.code, 'LeaseIdMismatchWithBlobOperation')
      const right = await rawRequest(h, 'PUT', '/dst/sync-tags.vhd', {
        headers: { 'x-ms-copy-source': sasOf('r'), 'x-ms-source-lease-id': lease.leaseId },
      })
      assert.equal(right.status, 202)
    } finally {
      await lease.releaseLease()
    }
    const blockBlob = await rawRequest(h, 'PUT', '/dst/block.txt', {
      headers: { 'x-ms-copy-source': sasOf('r'), 'x-ms-blob-type': 'BlockBlob' },
    })
    assert.equal(blockBlob.status, 400)
    assert.equal(blockBlob.code, 'InvalidHeaderValue')
  })

  it('Put Page From URL copies a range from another account with a source SAS, as AzCopy does', async () => {
    const dest = h.service.getContainerClient('dst').getPageBlobClient('ranged.vhd')
    await dest.create(65536)
    assert.deepEqual(await refused(dest.uploadPagesFromURL(source.url, 0, 0, 4096)), {
      status: 404,
      code: 'CannotVerifyCopySource',
    })
    const r = await dest.uploadPagesFromURL(sasOf('r'), 4096, 8192, 8192, {
      sourceContentCrc64: crc64(data.subarray(4096, 12288)),
    })
    assert.ok(r.etag)
    assert.deepEqual(await dest.downloadToBuffer(8192, 8192), data.subarray(4096, 12288))
    assert.deepEqual(await dest.downloadToBuffer(0, 8192), Buffer.alloc(8192))
    const ranges = await dest.getPageRanges(0, 65536)
    assert.deepEqual(ranges.pageRange, [{ offset: 8192, count: 8191 }])
  })

  it('Put Page From URL answers Azure errors for bad ranges, checksums, conditions and token authorization', async () => {
    await h.service.getContainerClient('dst').getPageBlobClient('errors.vhd').create(65536)
    const put = (headers: Record<string, string>) =>
      rawRequest(h, 'PUT', '/dst/errors.vhd?comp=page', {
        headers: {
          'x-ms-page-write': 'update',
          'x-ms-copy-source': sasOf('r'),
          'x-ms-range': 'bytes=0-4095',
          'x-ms-source-range': 'bytes=0-4095',
          ...headers,
        },
      })
    const ok = await put({})
    assert.equal(ok.status, 201, ok.text)
    assert.equal(ok.headers.get('x-ms-content-crc64'), crc64(data.subarray(0, 4096)).toString('base64'))
    assert.match(ok.headers.get('x-ms-blob-sequence-number') ?? '', /^\d+$/)
    const mismatch = await put({ 'x-ms-source-range': 'bytes=0-511' })
    assert.equal(mismatch.status, 400)
    assert.equal(mismatch.code, 'InvalidHeaderValue')
    const past = await put({ 'x-ms-source-range': 'bytes=65536-69631' })
    assert.equal(past.status, 416)
    assert.equal(past.code, 'InvalidRange')
    const crc = await put({ 'x-ms-source-content-crc64': Buffer.alloc(8).toString('base64') })
    assert.equal(crc.status, 400)
    assert.equal(crc.code, 'Crc64Mismatch')
    const md5 = await put({ 'x-ms-source-content-md5': Buffer.alloc(16).toString('base64') })
    assert.equal(md5.status, 400)
    assert.equal(md5.code, 'Md5Mismatch')
    const cond = await put({ 'x-ms-source-if-none-match': '*' })
    assert.equal(cond.status, 412)
    assert.equal(cond.code, 'SourceConditionNotMet')
    const seq = await put({ 'x-ms-if-sequence-number-lt': '0' })
    assert.equal(seq.status, 412)
    const bearer = await put({ 'x-ms-copy-source-authorization': 'Bearer abc' })
    assert.equal(bearer.status, 400)
    assert.match(bearer.text, /<HeaderName>x-ms-copy-source-authorization<\/HeaderName>/)
    const missing = await put({ 'x-ms-source-range': '' })
    assert.equal(missing.status, 400)
    assert.equal(missing.code, 'MissingRequiredHeader')
    const readOnly = await rawRequest(h, 'PUT', '/dst/errors.vhd?comp=page', {
      headers: {
        'x-ms-page-write': 'update',
        'x-ms-copy-source': sasOf('w'),
        'x-ms-range': 'bytes=0-511',
        'x-ms-source-range': 'bytes=0-511',
      },
    })
    assert.equal(readOnly.status, 403)
    assert.equal(readOnly.code, 'CannotVerifyCopySource')
  })
})
