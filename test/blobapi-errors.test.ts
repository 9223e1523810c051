// Bad requests, sent raw, answered with Azure's XML error codes and statuses.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { type BlobApiHarness, pattern, rawRequest, startBlobApi } from './_blobapi-harness.js'

describe('blob API bad requests, raw', () => {
  let h: BlobApiHarness
  const blob = '/raw/disk'
  before(async () => {
    h = await startBlobApi()
    const c = await rawRequest(h, 'PUT', '/raw?restype=container')
    assert.equal(c.status, 201)
    const b = await rawRequest(h, 'PUT', blob, {
      headers: { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': '65536' },
    })
    assert.equal(b.status, 201)
  })
  after(async () => {
    await h.close()
  })

  it('answers every request with x-ms-request-id and echoes a recent x-ms-version', async () => {
    const r = await rawRequest(h, 'HEAD', blob, { headers: { 'x-ms-version': '2021-08-06' } })
    assert.equal(r.status, 200)
    assert.match(r.headers.get('x-ms-request-id') ?? '', /^[0-9a-f-]{36}$/)
    assert.equal(r.headers.get('x-ms-version'), '2021-08-06')
    assert.equal(r.headers.get('x-ms-blob-type'), 'PageBlob')
    const bad = await rawRequest(h, 'HEAD', blob, { headers: { 'x-ms-version': 'yesterday' } })
    assert.equal(bad.status, 400)
    assert.equal(bad.headers.get('x-ms-error-code'), 'InvalidHeaderValue')
  })

  it('refuses an anonymous request with NoAuthenticationInformation', async () => {
    const r = await rawRequest(h, 'GET', blob, { sign: false })
    assert.equal(r.status, 401)
    assert.equal(r.code, 'NoAuthenticationInformation')
    assert.match(
      r.text,
      /^<\?xml version="1.0" encoding="utf-8"\?><Error><Code>NoAuthenticationInformation<\/Code><Message>/,
    )
    assert.match(r.text, /RequestId:[0-9a-f-]{36}/)
  })

  it('refuses a request signed with a wrong key with AuthenticationFailed', async () => {
    const r = await rawRequest(h, 'GET', blob, { key: Buffer.alloc(64, 1).toString('base64') })
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    assert.match(r.text, /<AuthenticationErrorDetail>/)
  })

  it('refuses a request dated more than 15 minutes from the service clock', async () => {
    const r = await rawRequest(h, 'PUT', `${blob}?comp=metadata`, { headers: { 'x-ms-meta-a': '1' } })
    assert.equal(r.status, 200)
    const meta = await rawRequest(h, 'GET', `${blob}?comp=metadata`)
    assert.equal(meta.status, 200)
    assert.equal(meta.headers.get('x-ms-meta-a'), '1')
    const signedOther = await rawRequest(h, 'GET', `${blob}?comp=metadata`, {
      headers: { 'x-ms-date': new Date(Date.now() - 3600_000).toUTCString() },
    })
    assert.equal(signedOther.status, 403)
    assert.equal(signedOther.code, 'AuthenticationFailed')
  })

  it('accepts Put Page with the Range header as well as x-ms-range', async () => {
    const data = pattern(1024, 1)
    const r = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { range: 'bytes=1024-2047', 'x-ms-page-write': 'update' },
      body: data,
    })
    assert.equal(r.status, 201)
    const got = await rawRequest(h, 'GET', blob, { headers: { 'x-ms-range': 'bytes=1024-2047' } })
    assert.equal(got.status, 206)
    assert.equal(got.headers.get('content-range'), 'bytes 1024-2047/65536')
  })

  it('refuses misaligned page ranges with InvalidHeaderValue naming the header', async () => {
    const r = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': 'bytes=0-510', 'x-ms-page-write': 'update' },
      body: Buffer.alloc(511),
    })
    assert.equal(r.status, 400)
    assert.equal(r.code, 'InvalidHeaderValue')
    assert.match(r.text, /<HeaderName>x-ms-range<\/HeaderName>/)
    const clear = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': 'bytes=100-611', 'x-ms-page-write': 'clear' },
    })
    assert.equal(clear.code, 'InvalidHeaderValue')
  })

  it('refuses page ranges past the end with InvalidPageRange and reads past the end with InvalidRange', async () => {
    const r = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': 'bytes=65536-66047', 'x-ms-page-write': 'update' },
      body: Buffer.alloc(512),
    })
    assert.equal(r.status, 416)
    assert.equal(r.code, 'InvalidPageRange')
    const read = await rawRequest(h, 'GET', blob, { headers: { 'x-ms-range': 'bytes=65536-70000' } })
    assert.equal(read.status, 416)
    assert.equal(read.code, 'InvalidRange')
  })

  it('refuses a write larger than 4 MiB with RequestBodyTooLarge', async () => {
    const r = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': `bytes=0-${4 * 1024 * 1024 + 511}`, 'x-ms-page-write': 'update' },
      body: Buffer.alloc(4 * 1024 * 1024 + 512),
    })
    assert.equal(r.status, 413)
    assert.equal(r.code, 'RequestBodyTooLarge')
  })

  it('checks Content-MD5 and x-ms-content-crc64 of a page write', async () => {
    const data = pattern(512, 7)
    const md5 = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: {
        'x-ms-range': 'bytes=0-511',
        'x-ms-page-write': 'update',
        'content-md5': createHash('md5').update('other').digest('base64'),
      },
      body: data,
    })
    assert.equal(md5.status, 400)
    assert.equal(md5.code, 'Md5Mismatch')
    const crc = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: {
        'x-ms-range': 'bytes=0-511',
        'x-ms-page-write': 'update',
        'x-ms-content-crc64': 'AAAAAAAAAAA=',
      },
      body: data,
    })
    assert.equal(crc.status, 400)
    assert.equal(crc.code, 'Crc64Mismatch')
    const good = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: {
        'x-ms-range': 'bytes=0-511',
        'x-ms-page-write': 'update',
        'content-md5': createHash('md5').update(data).digest('base64'),
      },
      body: data,
    })
    assert.equal(good.status, 201)
  })

  it('refuses Put Blob of a page blob with a body, and of other blob types', async () => {
    const body = await rawRequest(h, 'PUT', '/raw/with-body', {
      headers: { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': '512' },
      body: Buffer.alloc(512),
    })
    assert.equal(body.status, 400)
    assert.equal(body.code, 'InvalidHeaderValue')
    const block = await rawRequest(h, 'PUT', '/raw/block', {
      headers: { 'x-ms-blob-type': 'BlockBlob' },
      body: Buffer.from('hi'),
    })
    assert.equal(block.status, 400)
    const unaligned = await rawRequest(h, 'PUT', '/raw/odd', {
      headers: { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': '1000' },
    })
    assert.equal(unaligned.code, 'InvalidHeaderValue')
  })

  it('refuses a prevsnapshot newer than the snapshot, and answers missing snapshots', async () => {
    const s1 = (await rawRequest(h, 'PUT', `${blob}?comp=snapshot`)).headers.get('x-ms-snapshot')!
    const s2 = (await rawRequest(h, 'PUT', `${blob}?comp=snapshot`)).headers.get('x-ms-snapshot')!
    assert.ok(s1 < s2)
    const newer = await rawRequest(h, 'GET', `${blob}?comp=pagelist&snapshot=${s1}&prevsnapshot=${s2}`)
    assert.equal(newer.status, 400)
    assert.equal(newer.code, 'PreviousSnapshotCannotBeNewer')
    const ok = await rawRequest(h, 'GET', `${blob}?comp=pagelist&snapshot=${s2}&prevsnapshot=${s1}`)
    assert.equal(ok.status, 200)
    assert.match(ok.text, /^<\?xml version="1.0" encoding="utf-8"\?><PageList/)
    const missing = '2001-01-01T00:00:00.0000000Z'
    const prevMissing = await rawRequest(h, 'GET', `${blob}?comp=pagelist&prevsnapshot=${missing}`)
    assert.equal(prevMissing.status, 409)
    assert.equal(prevMissing.code, 'PreviousSnapshotNotFound')
    const snapMissing = await rawRequest(h, 'GET', `${blob}?snapshot=${missing}`)
    assert.equal(snapMissing.status, 404)
    assert.equal(snapMissing.code, 'BlobNotFound')
    const del = await rawRequest(h, 'DELETE', `${blob}?snapshot=${missing}`)
    assert.equal(del.code, 'BlobNotFound')
    await rawRequest(h, 'DELETE', blob, { headers: { 'x-ms-delete-snapshots': 'only' } })
  })

  it('answers lease conflicts with Azure lease codes', async () => {
    const id = '33333333-3333-3333-3333-333333333333'
    const acquire = await rawRequest(h, 'PUT', `${blob}?comp=lease`, {
      headers: { 'x-ms-lease-action': 'acquire', 'x-ms-lease-duration': '-1', 'x-ms-proposed-lease-id': id },
    })
    assert.equal(acquire.status, 201)
    assert.equal(acquire.headers.get('x-ms-lease-id'), id)
    const again = await rawRequest(h, 'PUT', `${blob}?comp=lease`, {
      headers: { 'x-ms-lease-action': 'acquire', 'x-ms-lease-duration': '-1' },
    })
    assert.equal(again.status, 409)
    assert.equal(again.code, 'LeaseAlreadyPresent')
    const write = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': 'bytes=0-511', 'x-ms-page-write': 'clear' },
    })
    assert.equal(write.status, 412)
    assert.equal(write.code, 'LeaseIdMissing')
    const del = await rawRequest(h, 'DELETE', blob, {
      headers: { 'x-ms-lease-id': '44444444-4444-4444-4444-444444444444' },
    })
    assert.equal(del.status, 412)
    assert.equal(del.code, 'LeaseIdMismatchWithBlobOperation')
    const badDuration = await rawRequest(h, 'PUT', `${blob}?comp=lease`, {
      headers: { 'x-ms-lease-action': 'acquire', 'x-ms-lease-duration': '5' },
    })
    assert.equal(badDuration.code, 'InvalidHeaderValue')
    const release = await rawRequest(h, 'PUT', `${blob}?comp=lease`, {
      headers: { 'x-ms-lease-action': 'release', 'x-ms-lease-id': id },
    })
    assert.equal(release.status, 200)
    const notPresent = await rawRequest(h, 'PUT', `${blob}?comp=page`, {
      headers: { 'x-ms-range': 'bytes=0-511', 'x-ms-page-write': 'clear', 'x-ms-lease-id': id },
    })
    assert.equal(notPresent.status, 412)
    assert.equal(notPresent.code, 'LeaseNotPresentWithBlobOperation')
  })

  it('answers unknown containers, blobs and operations', async () => {
    assert.equal((await rawRequest(h, 'GET', '/nope?restype=container')).code, 'ContainerNotFound')
    assert.equal((await rawRequest(h, 'GET', '/raw/nope')).code, 'BlobNotFound')
    assert.equal(
      (
        await rawRequest(h, 'PUT', '/raw/nope?comp=page', {
          headers: { 'x-ms-range': 'bytes=0-511', 'x-ms-page-write': 'clear' },
        })
      ).code,
      'BlobNotFound',
    )
    const verb = await rawRequest(h, 'POST', blob)
    assert.equal(verb.status, 405)
    assert.equal(verb.code, 'UnsupportedHttpVerb')
    const name = await rawRequest(h, 'PUT', '/Bad_Name?restype=container')
    assert.equal(name.code, 'InvalidResourceName')
  })
})
