// Azure's answers, exactly: options that are not served are refused (never ignored), lease ids in every
// GUID form and lease breaks, Azure's error codes and headers, unaligned Get Page Ranges, host-style
// copy sources and copy sources shown without their SAS. Each with the Azure SDK and raw HTTP.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { BlobSASPermissions, type ContainerClient, generateBlobSASQueryParameters } from '@azure/storage-blob'
import { crc64 } from '../src/blobapi/_crc64.js'
import { type BlobApiHarness, errorOf, pattern, rawRequest, startBlobApi } from './_blobapi-harness.js'

const KiB = 1024
const MiB = 1024 * KiB
const GUID = '0f8fad5b-d9cb-469f-a165-70867728950e'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('blob API fidelity: Azure answers, exactly', () => {
  let h: BlobApiHarness
  let c: ContainerClient
  before(async () => {
    h = await startBlobApi()
    c = h.service.getContainerClient('fidelity')
    await c.create()
  })
  after(async () => {
    await h.close()
  })

  it('refuses x-ms-access-tier on Put Blob and Copy Blob of a page blob with 400, and creates nothing', async () => {
    const b = c.getPageBlobClient('tiered')
    assert.deepEqual(await errorOf(b.create(4 * KiB, { tier: 'P10' })), {
      code: 'BlobAccessTierNotSupportedForAccountType',
      status: 400,
    })
    assert.equal(await b.exists(), false)
    const src = c.getPageBlobClient('tier-src')
    await src.create(4 * KiB)
    const viaSdk = await errorOf(c.getPageBlobClient('tier-copy').beginCopyFromURL(src.url, { tier: 'Hot' }))
    assert.deepEqual(viaSdk, { code: 'BlobAccessTierNotSupportedForAccountType', status: 400 })
    const raw = await rawRequest(h, 'PUT', '/fidelity/tier-copy', {
      headers: { 'x-ms-copy-source': src.url, 'x-ms-access-tier': 'Cool' },
    })
    assert.equal(raw.status, 400)
    assert.equal(raw.code, 'BlobAccessTierNotSupportedForAccountType')
    assert.equal(raw.headers.get('x-ms-error-code'), 'BlobAccessTierNotSupportedForAccountType')
    assert.match(raw.text, /<HeaderName>x-ms-access-tier<\/HeaderName>/)
    assert.equal(await c.getPageBlobClient('tier-copy').exists(), false)
  })

  it('refuses other options it does not serve: encryption scopes, CPK, immutability, versions, unknown includes, checksums without a range', async () => {
    const cases: [string, string, Record<string, string>, string][] = [
      [
        'PUT',
        '/fidelity/scoped',
        { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': '512', 'x-ms-encryption-scope': 'mine' },
        'UnsupportedHeader',
      ],
      [
        'PUT',
        '/fidelity/held',
        { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': '512', 'x-ms-legal-hold': 'true' },
        'UnsupportedHeader',
      ],
      [
        'PUT',
        '/fidelity/immutable',
        {
          'x-ms-blob-type': 'PageBlob',
          'x-ms-blob-content-length': '512',
          'x-ms-immutability-policy-mode': 'Locked',
        },
        'UnsupportedHeader',
      ],
      [
        'GET',
        '/fidelity/tier-src',
        {
          'x-ms-encryption-key': 'a2V5',
          'x-ms-encryption-key-sha256': 'aGFzaA==',
          'x-ms-encryption-algorithm': 'AES256',
        },
        'UnsupportedHeader',
      ],
      ['GET', '/fidelity/tier-src?versionid=2026-01-01T00:00:00.0000000Z', {}, 'UnsupportedQueryParameter'],
      ['GET', '/fidelity?restype=container&comp=list&include=bogus', {}, 'InvalidQueryParameterValue'],
      ['GET', '/fidelity/tier-src', { 'x-ms-range-get-content-md5': 'true' }, 'MissingRequiredHeader'],
    ]
    for (const [method, path, headers, code] of cases) {
      const r = await rawRequest(h, method, path, { headers })
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(headers)}: ${r.text}`)
      assert.equal(r.code, code, path)
    }
    for (const name of ['scoped', 'held', 'immutable'])
      assert.equal(await c.getPageBlobClient(name).exists(), false, name)
    // What exists nowhere here may be asked for: the listing is exact without it.
    const listed = await rawRequest(
      h,
      'GET',
      '/fidelity?restype=container&comp=list&include=deleted,versions,snapshots',
    )
    assert.equal(listed.status, 200)
  })

  it('takes proposed lease ids in every GUID form and answers them hyphenated; any form names the lease', async () => {
    const forms = [GUID.toUpperCase(), GUID.replaceAll('-', ''), `{${GUID}}`, `(${GUID.toUpperCase()})`]
    for (const [i, form] of forms.entries()) {
      const b = c.getPageBlobClient(`lease-form-${i}`)
      await b.create(4 * KiB)
      const acquired = await b.getBlobLeaseClient(form).acquireLease(-1)
      assert.equal(acquired.leaseId, GUID, form)
      // A write under the lease, naming it in another of its forms.
      const other = forms[(i + 1) % forms.length]!
      await b.uploadPages(pattern(512, i), 0, 512, { conditions: { leaseId: other } })
      const w = await rawRequest(h, 'PUT', `/fidelity/lease-form-${i}?comp=page`, {
        headers: { 'x-ms-range': 'bytes=0-511', 'x-ms-page-write': 'clear', 'x-ms-lease-id': form },
      })
      assert.equal(w.status, 201, w.text)
      const changed = await rawRequest(h, 'PUT', `/fidelity/lease-form-${i}?comp=lease`, {
        headers: {
          'x-ms-lease-action': 'change',
          'x-ms-lease-id': other,
          'x-ms-proposed-lease-id': `{${GUID.replace('0f8f', '1f8f')}}`,
        },
      })
      assert.equal(changed.status, 200, changed.text)
      assert.equal(changed.headers.get('x-ms-lease-id'), GUID.replace('0f8f', '1f8f'))
    }
    const bad = await rawRequest(h, 'PUT', '/fidelity/lease-form-0?comp=lease', {
      headers: {
        'x-ms-lease-action': 'acquire',
        'x-ms-lease-duration': '-1',
        'x-ms-proposed-lease-id': `{${GUID}`,
      },
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.code, 'InvalidHeaderValue')
  })

  it('breaks leases as Azure does: x-ms-lease-time, breaking, then broken', async () => {
    const b = c.getPageBlobClient('breaking')
    await b.create(4 * KiB)
    const lease = b.getBlobLeaseClient()
    await lease.acquireLease(30)
    const broke = await lease.breakLease(2)
    assert.equal(broke.leaseTime, 2)
    let p = await b.getProperties()
    assert.deepEqual([p.leaseState, p.leaseStatus], ['breaking', 'locked'])
    // A break during the break with a longer period keeps the shorter remaining time.
    const again = await rawRequest(h, 'PUT', '/fidelity/breaking?comp=lease', {
      headers: { 'x-ms-lease-action': 'break', 'x-ms-lease-break-period': '60' },
    })
    assert.equal(again.status, 202)
    assert.ok(Number(again.headers.get('x-ms-lease-time')) <= 2)
    await sleep(2200)
    p = await b.getProperties()
    assert.deepEqual([p.leaseState, p.leaseStatus], ['broken', 'unlocked'])
    assert.deepEqual(await errorOf(lease.renewLease()), {
      code: 'LeaseIsBrokenAndCannotBeRenewed',
      status: 409,
    })
    await b.uploadPages(pattern(512, 1), 0, 512)
    // An infinite lease broken without a period is broken at once, with a lease time of 0.
    await lease.acquireLease(-1)
    const now = await rawRequest(h, 'PUT', '/fidelity/breaking?comp=lease', {
      headers: { 'x-ms-lease-action': 'break' },
    })
    assert.equal(now.status, 202)
    assert.equal(now.headers.get('x-ms-lease-time'), '0')
    p = await b.getProperties()
    assert.deepEqual([p.leaseState, p.leaseStatus], ['broken', 'unlocked'])
  })

  it('checks a lease id sent with a read', async () => {
    const b = c.getPageBlobClient('read-lease')
    await b.create(4 * KiB)
    const none = await rawRequest(h, 'GET', '/fidelity/read-lease', { headers: { 'x-ms-lease-id': GUID } })
    assert.deepEqual([none.status, none.code], [412, 'LeaseNotPresentWithBlobOperation'])
    await b.getBlobLeaseClient(GUID).acquireLease(-1)
    const wrong = await rawRequest(h, 'HEAD', '/fidelity/read-lease', {
      headers: { 'x-ms-lease-id': GUID.replace('0f8f', '2f8f') },
    })
    assert.equal(wrong.status, 412)
    assert.equal(wrong.headers.get('x-ms-error-code'), 'LeaseIdMismatchWithBlobOperation')
    assert.equal((await b.getProperties({ conditions: { leaseId: GUID } })).leaseState, 'leased')
  })

  it('answers InvalidMetadata for names that are not C# identifiers, on create and on Set Blob Metadata', async () => {
    const b = c.getPageBlobClient('meta')
    assert.deepEqual(await errorOf(b.create(512, { metadata: { 'not-an-identifier': 'x' } })), {
      code: 'InvalidMetadata',
      status: 400,
    })
    await b.create(512, { metadata: { _fine_1: 'x' } })
    assert.deepEqual(await errorOf(b.setMetadata({ '1starts_with_digit': 'x' })), {
      code: 'InvalidMetadata',
      status: 400,
    })
    const raw = await rawRequest(h, 'PUT', '/fidelity/meta?comp=metadata', {
      headers: { 'x-ms-meta-a.b': 'x' },
    })
    assert.deepEqual([raw.status, raw.code], [400, 'InvalidMetadata'])
    assert.deepEqual((await b.getProperties()).metadata, { _fine_1: 'x' })
  })

  it('answers OutOfRangeInput for container names of the wrong length, on every operation', async () => {
    for (const name of ['ab', 'a'.repeat(64)]) {
      assert.deepEqual(await errorOf(h.service.getContainerClient(name).create()), {
        code: 'OutOfRangeInput',
        status: 400,
      })
      const raw = await rawRequest(h, 'GET', `/${name}/blob`)
      assert.deepEqual([raw.status, raw.code], [400, 'OutOfRangeInput'])
    }
    const longest = h.service.getContainerClient('a'.repeat(63))
    await longest.create()
    await longest.delete()
  })

  it('answers UnsatisfiableCondition for If-None-Match: * on Get and Head of an existing blob', async () => {
    const b = c.getPageBlobClient('exists')
    await b.create(512)
    const cond = { conditions: { ifNoneMatch: '*' } }
    assert.deepEqual(await errorOf(b.download(0, undefined, cond)), {
      code: 'UnsatisfiableCondition',
      status: 400,
    })
    const head = await rawRequest(h, 'HEAD', '/fidelity/exists', { headers: { 'if-none-match': '*' } })
    assert.equal(head.status, 400)
    assert.equal(head.headers.get('x-ms-error-code'), 'UnsatisfiableCondition')
    // A blob that does not exist is simply not found.
    const missing = await rawRequest(h, 'GET', '/fidelity/nothing', { headers: { 'if-none-match': '*' } })
    assert.equal(missing.code, 'BlobNotFound')
  })

  it('answers BothCrc64AndMd5HeaderPresent when Put Page sends both checksums, before reading the body', async () => {
    const b = c.getPageBlobClient('both')
    await b.create(4 * KiB)
    const data = pattern(512, 9)
    const md5 = createHash('md5').update(data).digest()
    assert.deepEqual(
      await errorOf(
        b.uploadPages(data, 0, 512, { transactionalContentMD5: md5, transactionalContentCrc64: crc64(data) }),
      ),
      { code: 'BothCrc64AndMd5HeaderPresent', status: 400 },
    )
    const raw = await rawRequest(h, 'PUT', '/fidelity/both?comp=page', {
      headers: {
        'x-ms-range': 'bytes=0-511',
        'x-ms-page-write': 'update',
        'content-md5': md5.toString('base64'),
        'x-ms-content-crc64': crc64(data).toString('base64'),
      },
      body: data,
    })
    assert.deepEqual([raw.status, raw.code], [400, 'BothCrc64AndMd5HeaderPresent'])
    assert.deepEqual((await b.getPageRanges()).pageRange, [])
  })

  it('sends Content-Range: bytes */N with every 416', async () => {
    const b = c.getPageBlobClient('short')
    await b.create(4 * KiB)
    const snap = (await b.createSnapshot()).snapshot!
    const cases: [string, string, Record<string, string>][] = [
      ['GET', '/fidelity/short', { 'x-ms-range': 'bytes=8192-9000' }],
      ['GET', `/fidelity/short?snapshot=${encodeURIComponent(snap)}`, { range: 'bytes=5000-' }],
      ['GET', '/fidelity/short?comp=pagelist', { 'x-ms-range': 'bytes=8192-9215' }],
      ['PUT', '/fidelity/short?comp=page', { 'x-ms-range': 'bytes=4096-4607', 'x-ms-page-write': 'clear' }],
    ]
    for (const [method, path, headers] of cases) {
      const r = await rawRequest(h, method, path, { headers })
      assert.equal(r.status, 416, `${method} ${path}: ${r.text}`)
      assert.equal(r.headers.get('content-range'), 'bytes */4096', path)
    }
    const viaSdk = await errorOf(b.download(8192, 10))
    assert.equal(viaSdk.status, 416)
  })

  it('answers x-ms-blob-content-md5 on full and ranged Get Blob, and range checksums when asked', async () => {
    const b = c.getPageBlobClient('md5')
    const whole = createHash('md5').update('the whole blob').digest()
    await b.create(8 * KiB, { blobHTTPHeaders: { blobContentMD5: whole } })
    const data = pattern(1024, 4)
    await b.uploadPages(data, 1024, 1024)
    const full = await b.download()
    assert.deepEqual(full.blobContentMD5, whole)
    assert.deepEqual(full.contentMD5, whole)
    const ranged = await b.download(1024, 1024, { rangeGetContentMD5: true })
    assert.deepEqual(ranged.blobContentMD5, whole)
    assert.deepEqual(ranged.contentMD5, createHash('md5').update(data).digest())
    const crc = await b.download(1024, 1024, { rangeGetContentCrc64: true })
    assert.deepEqual(crc.contentCrc64, crc64(data))
    const raw = await rawRequest(h, 'GET', '/fidelity/md5', { headers: { 'x-ms-range': 'bytes=0-99' } })
    assert.equal(raw.headers.get('x-ms-blob-content-md5'), whole.toString('base64'))
    assert.equal(raw.headers.get('content-md5'), null)
  })

  it('answers every Put Page of data with its x-ms-content-crc64, and with Content-MD5 alone when the client sent one', async () => {
    const b = c.getPageBlobClient('crc')
    await b.create(8 * MiB)
    for (const [at, length] of [
      [0, 512],
      [4096, 64 * KiB],
      [1 * MiB, 4 * MiB],
    ] as const) {
      const data = pattern(length, at + 1)
      const r = await b.uploadPages(data, at, length)
      assert.deepEqual(r.xMsContentCrc64, crc64(data), `${length} bytes at ${at}`)
    }
    const data = pattern(512, 77)
    const raw = await rawRequest(h, 'PUT', '/fidelity/crc?comp=page', {
      headers: { 'x-ms-range': 'bytes=512-1023', 'x-ms-page-write': 'update' },
      body: data,
    })
    assert.equal(raw.status, 201)
    assert.equal(raw.headers.get('x-ms-content-crc64'), crc64(data).toString('base64'))
    const md5 = createHash('md5').update(data).digest('base64')
    const withMd5 = await rawRequest(h, 'PUT', '/fidelity/crc?comp=page', {
      headers: { 'x-ms-range': 'bytes=512-1023', 'x-ms-page-write': 'update', 'content-md5': md5 },
      body: data,
    })
    assert.equal(withMd5.headers.get('content-md5'), md5)
    assert.equal(withMd5.headers.get('x-ms-content-crc64'), null)
  })

  it('Get Page Ranges takes a range that is not 512-aligned and clips the answer; Put Page and Clear Pages still need alignment', async () => {
    const b = c.getPageBlobClient('unaligned')
    await b.create(16 * KiB)
    await b.uploadPages(pattern(2 * KiB, 1), 1 * KiB, 2 * KiB)
    await b.uploadPages(pattern(512, 2), 8 * KiB, 512)
    const r = await b.getPageRanges(1500, 7000)
    assert.deepEqual(r.pageRange, [
      { offset: 1500, count: 3 * KiB - 1 - 1500 },
      // The window ends at byte 8499: the second range is cut there.
      { offset: 8 * KiB, count: 8499 - 8 * KiB },
    ])
    const raw = await rawRequest(h, 'GET', '/fidelity/unaligned?comp=pagelist', {
      headers: { 'x-ms-range': 'bytes=100-1100' },
    })
    assert.equal(raw.status, 200)
    assert.match(
      raw.text,
      /<PageList><PageRange><Start>1024<\/Start><End>1100<\/End><\/PageRange><\/PageList>/,
    )
    const snap = (await b.createSnapshot()).snapshot!
    await b.clearPages(2 * KiB, 512)
    const diff = await b.getPageRangesDiff(2000, 301, snap)
    // Cleared 2048-2559; the window 2000-2300 cuts it.
    assert.deepEqual(diff.clearRange, [{ offset: 2 * KiB, count: 2300 - 2 * KiB }])
    const put = await rawRequest(h, 'PUT', '/fidelity/unaligned?comp=page', {
      headers: { 'x-ms-range': 'bytes=100-611', 'x-ms-page-write': 'clear' },
    })
    assert.deepEqual([put.status, put.code], [400, 'InvalidHeaderValue'])
  })

  it('copies from a host-style source URL of an account of this service and never shows a SAS in the copy source', async () => {
    const src = c.getPageBlobClient('copy-src')
    await src.create(4 * KiB)
    await src.uploadPages(pattern(4 * KiB, 5), 0, 4 * KiB)
    const hostStyle = 'https://devstoreaccount1.blob.core.windows.net/fidelity/copy-src'
    const dst = c.getPageBlobClient('copy-host-style')
    const copied = await dst.syncCopyFromURL(hostStyle)
    assert.equal(copied.copyStatus, 'success')
    assert.deepEqual(await dst.downloadToBuffer(), await src.downloadToBuffer())
    const raw = await rawRequest(h, 'PUT', '/fidelity/copy-host-raw', {
      headers: { 'x-ms-copy-source': hostStyle },
    })
    assert.equal(raw.status, 202, raw.text)
    const foreign = await rawRequest(h, 'PUT', '/fidelity/copy-foreign', {
      headers: { 'x-ms-copy-source': 'https://someoneelse.blob.core.windows.net/fidelity/copy-src' },
    })
    assert.equal(foreign.status, 404)
    assert.equal(foreign.code, 'CannotVerifyCopySource')

    const sas = generateBlobSASQueryParameters(
      {
        containerName: 'fidelity',
        blobName: 'copy-src',
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      h.credential,
    ).toString()
    assert.match(sas, /sig=/)
    const signed = c.getPageBlobClient('copy-signed')
    await signed.syncCopyFromURL(`${src.url}?${sas}`)
    const shown = (await signed.getProperties()).copySource!
    assert.equal(shown, src.url)
    let listed: string | undefined
    for await (const item of c.listBlobsFlat({ prefix: 'copy-signed', includeCopy: true }))
      listed = item.properties.copySource
    assert.equal(listed, src.url)
    const head = await rawRequest(h, 'HEAD', '/fidelity/copy-signed')
    assert.doesNotMatch(head.headers.get('x-ms-copy-source') ?? '', /sig=|sv=|se=|sp=/)
  })
})
