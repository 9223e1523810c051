import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { ContainerClient } from '@azure/storage-blob'
import { type BlobApiHarness, errorOf, pattern, startBlobApi } from './_blobapi-harness.js'

const KiB = 1024
const MiB = 1024 * KiB

describe('blob API page blobs, with the Azure SDK', () => {
  let h: BlobApiHarness
  let c: ContainerClient
  before(async () => {
    h = await startBlobApi()
    c = h.service.getContainerClient('disks')
    await c.create()
  })
  after(async () => {
    await h.close()
  })

  it('Put Blob creates a zeroed page blob with properties, metadata and a sequence number', async () => {
    const b = c.getPageBlobClient('created')
    await b.create(64 * KiB, {
      blobHTTPHeaders: { blobContentType: 'application/x-raw-disk-image', blobCacheControl: 'no-cache' },
      metadata: { vm: 'web1' },
      blobSequenceNumber: 7,
    })
    const p = await b.getProperties()
    assert.equal(p.contentLength, 64 * KiB)
    assert.equal(p.blobType, 'PageBlob')
    assert.equal(p.contentType, 'application/x-raw-disk-image')
    assert.equal(p.cacheControl, 'no-cache')
    assert.equal(p.blobSequenceNumber, 7)
    assert.deepEqual(p.metadata, { vm: 'web1' })
    assert.equal(p.leaseState, 'available')
    assert.deepEqual(await b.downloadToBuffer(), Buffer.alloc(64 * KiB))
    assert.equal((await b.createIfNotExists(64 * KiB)).succeeded, false)
    assert.equal((await c.getPageBlobClient('created-2').createIfNotExists(512)).succeeded, true)
  })

  it('Put Page writes with x-ms-range and clears pages, and Get Blob reads any range', async () => {
    const b = c.getPageBlobClient('pages')
    await b.create(1 * MiB)
    const data = pattern(4 * MiB > 1 * MiB ? 256 * KiB : 0, 3)
    await b.uploadPages(data, 512 * KiB, data.length)
    await b.clearPages(512 * KiB + 64 * KiB, 64 * KiB)
    const expected = Buffer.alloc(1 * MiB)
    data.copy(expected, 512 * KiB)
    expected.fill(0, 576 * KiB, 640 * KiB)
    assert.deepEqual(await b.downloadToBuffer(), expected)
    // Unaligned reads are fine.
    assert.deepEqual(
      await b.downloadToBuffer(512 * KiB + 3, 1000),
      expected.subarray(512 * KiB + 3, 512 * KiB + 1003),
    )
    const partial = await b.download(1 * MiB - 100)
    assert.equal(partial.contentLength, 100)
    assert.equal(partial.contentRange, `bytes ${1 * MiB - 100}-${1 * MiB - 1}/${1 * MiB}`)
    const ranges = await b.getPageRanges()
    assert.deepEqual(ranges.pageRange, [
      { offset: 512 * KiB, count: 64 * KiB - 1 },
      { offset: 640 * KiB, count: 128 * KiB - 1 },
    ])
    assert.equal(ranges.blobContentLength, 1 * MiB)
  })

  it('Put Page accepts a 4 MiB write and checks Content-MD5 and x-ms-content-crc64 when sent', async () => {
    const b = c.getPageBlobClient('checked')
    await b.create(8 * MiB)
    const data = pattern(4 * MiB, 9)
    const md5 = createHash('md5').update(data).digest()
    const r = await b.uploadPages(data, 4 * MiB, data.length, { transactionalContentMD5: md5 })
    assert.deepEqual(Buffer.from(r.contentMD5!), md5)
    assert.deepEqual(await b.downloadToBuffer(4 * MiB, 4 * MiB), data)
    const wrong = await errorOf(
      b.uploadPages(data.subarray(0, 512), 0, 512, {
        transactionalContentMD5: createHash('md5').update('x').digest(),
      }),
    )
    assert.deepEqual(wrong, { code: 'Md5Mismatch', status: 400 })
    const badCrc = await errorOf(
      b.uploadPages(data.subarray(0, 512), 0, 512, { transactionalContentCrc64: new Uint8Array(8) }),
    )
    assert.deepEqual(badCrc, { code: 'Crc64Mismatch', status: 400 })
  })

  it('Get Blob of a range can return its MD5', async () => {
    const b = c.getPageBlobClient('checked')
    const r = await b.download(4 * MiB, 1 * MiB, { rangeGetContentMD5: true })
    const expected = createHash('md5')
      .update(pattern(4 * MiB, 9).subarray(0, 1 * MiB))
      .digest()
    assert.deepEqual(Buffer.from(r.contentMD5!), expected)
  })

  it('Set Blob Properties resizes, sets content properties and sequence numbers', async () => {
    const b = c.getPageBlobClient('resized')
    await b.create(8 * KiB)
    await b.uploadPages(pattern(8 * KiB, 4), 0, 8 * KiB)
    await b.resize(16 * KiB)
    let p = await b.getProperties()
    assert.equal(p.contentLength, 16 * KiB)
    assert.deepEqual(await b.downloadToBuffer(8 * KiB, 8 * KiB), Buffer.alloc(8 * KiB))
    await b.resize(4 * KiB)
    assert.deepEqual(await b.downloadToBuffer(), pattern(8 * KiB, 4).subarray(0, 4 * KiB))
    await b.setHTTPHeaders({ blobContentType: 'text/plain', blobContentLanguage: 'en' })
    p = await b.getProperties()
    assert.equal(p.contentType, 'text/plain')
    assert.equal(p.contentLanguage, 'en')
    assert.equal(p.contentLength, 4 * KiB)
    const up = await b.updateSequenceNumber('update', 10)
    assert.equal(up.blobSequenceNumber, 10)
    assert.equal((await b.updateSequenceNumber('max', 5)).blobSequenceNumber, 10)
    assert.equal((await b.updateSequenceNumber('max', 12)).blobSequenceNumber, 12)
    assert.equal((await b.updateSequenceNumber('increment')).blobSequenceNumber, 13)
    // Writes can be made conditional on the sequence number.
    await b.uploadPages(pattern(512, 1), 0, 512, { conditions: { ifSequenceNumberEqualTo: 13 } })
    const e = await errorOf(
      b.uploadPages(pattern(512, 1), 0, 512, { conditions: { ifSequenceNumberLessThan: 13 } }),
    )
    assert.deepEqual(e, { code: 'SequenceNumberConditionNotMet', status: 412 })
    const bad = await errorOf(b.resize(1000))
    assert.equal(bad.code, 'InvalidHeaderValue')
  })

  it('Set and Get Metadata, with ETag conditions', async () => {
    const b = c.getPageBlobClient('meta')
    await b.create(4 * KiB)
    const etag = (await b.getProperties()).etag!
    await b.setMetadata({ a: '1', Backup: 'daily' }, { conditions: { ifMatch: etag } })
    const p = await b.getProperties()
    assert.deepEqual(p.metadata, { a: '1', backup: 'daily' })
    assert.notEqual(p.etag, etag)
    assert.deepEqual(await errorOf(b.setMetadata({}, { conditions: { ifMatch: etag } })), {
      code: 'ConditionNotMet',
      status: 412,
    })
    const notModified = await errorOf(b.getProperties({ conditions: { ifNoneMatch: p.etag! } }))
    assert.equal(notModified.status, 304)
  })

  it('Lease Blob acquires, renews, changes, breaks and releases, and leases guard writes', async () => {
    const b = c.getPageBlobClient('leased')
    await b.create(4 * KiB)
    const lc = b.getBlobLeaseClient()
    const acquired = await lc.acquireLease(-1)
    assert.equal(acquired.leaseId, lc.leaseId)
    let p = await b.getProperties()
    assert.equal(p.leaseState, 'leased')
    assert.equal(p.leaseStatus, 'locked')
    assert.equal(p.leaseDuration, 'infinite')
    assert.deepEqual(await errorOf(b.uploadPages(pattern(512, 1), 0, 512)), {
      code: 'LeaseIdMissing',
      status: 412,
    })
    assert.deepEqual(
      await errorOf(
        b.uploadPages(pattern(512, 1), 0, 512, {
          conditions: { leaseId: '11111111-1111-1111-1111-111111111111' },
        }),
      ),
      { code: 'LeaseIdMismatchWithBlobOperation', status: 412 },
    )
    await b.uploadPages(pattern(512, 1), 0, 512, { conditions: { leaseId: lc.leaseId } })
    assert.deepEqual(await errorOf(b.getBlobLeaseClient().acquireLease(30)), {
      code: 'LeaseAlreadyPresent',
      status: 409,
    })
    await lc.renewLease()
    const newId = '22222222-2222-2222-2222-222222222222'
    await lc.changeLease(newId)
    assert.equal(lc.leaseId, newId)
    const broken = await lc.breakLease(0)
    assert.equal(broken.leaseTime, 0)
    p = await b.getProperties()
    assert.equal(p.leaseState, 'broken')
    await b.uploadPages(pattern(512, 2), 0, 512)
    const again = b.getBlobLeaseClient()
    await again.acquireLease(15)
    assert.equal((await b.getProperties()).leaseDuration, 'fixed')
    await again.releaseLease()
    assert.equal((await b.getProperties()).leaseState, 'available')
    assert.deepEqual(await errorOf(again.renewLease()), {
      code: 'LeaseNotPresentWithLeaseOperation',
      status: 409,
    })
  })

  it('Snapshot Blob keeps a read-only point in time that Get Blob and Get Properties read', async () => {
    const b = c.getPageBlobClient('snapped')
    await b.create(8 * KiB)
    await b.uploadPages(pattern(8 * KiB, 1), 0, 8 * KiB)
    const s1 = await b.createSnapshot({ metadata: { point: 'one' } })
    assert.match(s1.snapshot!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/)
    await b.uploadPages(pattern(4 * KiB, 2), 0, 4 * KiB)
    const snap = b.withSnapshot(s1.snapshot!)
    assert.deepEqual(await snap.downloadToBuffer(), pattern(8 * KiB, 1))
    assert.deepEqual((await snap.getProperties()).metadata, { point: 'one' })
    const now = await b.downloadToBuffer()
    assert.deepEqual(now.subarray(0, 4 * KiB), pattern(4 * KiB, 2))
    const ro = await errorOf(snap.uploadPages(pattern(512, 1), 0, 512))
    assert.equal(ro.status, 400)
    const missing = await errorOf(b.withSnapshot('2020-01-01T00:00:00.0000000Z').getProperties())
    assert.deepEqual(missing, { code: undefined, status: 404 })
    const missingBody = await errorOf(b.withSnapshot('2020-01-01T00:00:00.0000000Z').download())
    assert.deepEqual(missingBody, { code: 'BlobNotFound', status: 404 })
  })

  it('Delete Blob refuses a blob with snapshots, deletes one snapshot, only the snapshots, or all', async () => {
    const b = c.getPageBlobClient('deleted')
    await b.create(4 * KiB)
    const s1 = (await b.createSnapshot()).snapshot!
    const s2 = (await b.createSnapshot()).snapshot!
    assert.deepEqual(await errorOf(b.delete()), { code: 'SnapshotsPresent', status: 409 })
    await b.withSnapshot(s1).delete()
    assert.equal((await errorOf(b.withSnapshot(s1).getProperties())).status, 404)
    assert.ok(await b.withSnapshot(s2).exists())
    await b.delete({ deleteSnapshots: 'only' })
    assert.equal(await b.withSnapshot(s2).exists(), false)
    assert.ok(await b.exists())
    await b.createSnapshot()
    await b.delete({ deleteSnapshots: 'include' })
    assert.equal(await b.exists(), false)
    assert.deepEqual(await errorOf(b.delete()), { code: 'BlobNotFound', status: 404 })
  })

  it('Get Page Ranges diffs against a previous snapshot with PageRange and ClearRange', async () => {
    const b = c.getPageBlobClient('diffed')
    await b.create(1 * MiB)
    await b.uploadPages(pattern(64 * KiB, 1), 0, 64 * KiB)
    await b.uploadPages(pattern(64 * KiB, 2), 256 * KiB, 64 * KiB)
    const s1 = (await b.createSnapshot()).snapshot!
    await b.uploadPages(pattern(8 * KiB, 3), 512 * KiB, 8 * KiB)
    await b.clearPages(256 * KiB, 64 * KiB)
    const s2 = (await b.createSnapshot()).snapshot!
    await b.uploadPages(pattern(4 * KiB, 4), 0, 4 * KiB)

    const d12 = await b.getPageRangesDiff(0, 1 * MiB, s1, { conditions: {} }).then((r) => r)
    // Diff of the live blob since s1: the write at 0, the write at 512 KiB, the clear at 256 KiB.
    assert.deepEqual(d12.pageRange, [
      { offset: 0, count: 4 * KiB - 1 },
      { offset: 512 * KiB, count: 8 * KiB - 1 },
    ])
    assert.deepEqual(d12.clearRange, [{ offset: 256 * KiB, count: 64 * KiB - 1 }])

    const between = await b.withSnapshot(s2).getPageRangesDiff(0, 1 * MiB, s1)
    assert.deepEqual(between.pageRange, [{ offset: 512 * KiB, count: 8 * KiB - 1 }])
    assert.deepEqual(between.clearRange, [{ offset: 256 * KiB, count: 64 * KiB - 1 }])

    // Within a range.
    const windowed = await b.withSnapshot(s2).getPageRangesDiff(0, 300 * KiB, s1)
    assert.deepEqual(windowed.pageRange, [])
    assert.deepEqual(windowed.clearRange, [{ offset: 256 * KiB, count: 300 * KiB - 256 * KiB - 1 }])

    // A snapshot's own page ranges.
    const atS1 = await b.withSnapshot(s1).getPageRanges()
    assert.deepEqual(atS1.pageRange, [
      { offset: 0, count: 64 * KiB - 1 },
      { offset: 256 * KiB, count: 64 * KiB - 1 },
    ])

    // prevsnapshot newer than the snapshot, and a missing prevsnapshot.
    assert.deepEqual(await errorOf(b.withSnapshot(s1).getPageRangesDiff(0, 1 * MiB, s2)), {
      code: 'PreviousSnapshotCannotBeNewer',
      status: 400,
    })
    assert.deepEqual(await errorOf(b.getPageRangesDiff(0, 1 * MiB, '2020-01-01T00:00:00.0000000Z')), {
      code: 'PreviousSnapshotNotFound',
      status: 409,
    })
  })

  it('Get Page Ranges pages its answer with marker, maxresults and NextMarker', async () => {
    const b = c.getPageBlobClient('fragmented')
    await b.create(1 * MiB)
    for (let i = 0; i < 10; i++) await b.uploadPages(pattern(512, i), i * 8 * KiB, 512)
    const seen: number[] = []
    let pages = 0
    for await (const page of b.listPageRanges().byPage({ maxPageSize: 3 })) {
      pages++
      for (const r of page.pageRange ?? []) seen.push(r.start)
      assert.ok((page.pageRange ?? []).length <= 3)
    }
    assert.equal(pages, 4)
    assert.deepEqual(
      seen,
      Array.from({ length: 10 }, (_, i) => i * 8 * KiB),
    )
    const s = (await b.createSnapshot()).snapshot!
    await b.clearPages(0, 1 * MiB)
    const diff: string[] = []
    for await (const page of b.listPageRangesDiff(0, 1 * MiB, s).byPage({ maxPageSize: 4 }))
      for (const r of page.clearRange ?? []) diff.push(`${r.start}-${r.end}`)
    assert.equal(diff.length, 10)
  })

  it('Copy Blob copies a blob or a snapshot and reports the copy', async () => {
    const src = c.getPageBlobClient('copy-src')
    await src.create(64 * KiB, { metadata: { from: 'src' } })
    await src.uploadPages(pattern(64 * KiB, 5), 0, 64 * KiB)
    const s = (await src.createSnapshot()).snapshot!
    await src.uploadPages(pattern(64 * KiB, 6), 0, 64 * KiB)

    const dst = c.getPageBlobClient('copy-dst')
    const poller = await dst.beginCopyFromURL(src.withSnapshot(s).url)
    const done = await poller.pollUntilDone()
    assert.equal(done.copyStatus, 'success')
    const p = await dst.getProperties()
    assert.equal(p.copyStatus, 'success')
    assert.equal(p.copyProgress, `${64 * KiB}/${64 * KiB}`)
    assert.ok(p.copyId)
    assert.equal(p.copySource, src.withSnapshot(s).url)
    assert.deepEqual(p.metadata, { from: 'src' })
    assert.deepEqual(await dst.downloadToBuffer(), pattern(64 * KiB, 5))

    const live = c.getPageBlobClient('copy-live')
    const r = await live.syncCopyFromURL(src.url)
    assert.equal(r.copyStatus, 'success')
    assert.deepEqual(await live.downloadToBuffer(), pattern(64 * KiB, 6))
    // The copy is independent of its source.
    await live.clearPages(0, 64 * KiB)
    assert.deepEqual(await src.downloadToBuffer(), pattern(64 * KiB, 6))

    const missing = await errorOf(c.getPageBlobClient('copy-x').syncCopyFromURL(`${c.url}/nope`))
    assert.deepEqual(missing, { code: 'CannotVerifyCopySource', status: 404 })
  })

  it('Incremental Copy Blob keeps a destination snapshot per copy and refuses direct writes', async () => {
    const other = h.service.getContainerClient('backup')
    await other.create()
    const src = c.getPageBlobClient('inc-src')
    await src.create(256 * KiB)
    await src.uploadPages(pattern(128 * KiB, 1), 0, 128 * KiB)
    const s1 = (await src.createSnapshot()).snapshot!
    const dst = other.getPageBlobClient('inc-dst')
    const first = await dst.startCopyIncremental(src.withSnapshot(s1).url)
    assert.equal(first.copyStatus, 'success')
    let p = await dst.getProperties()
    assert.equal(p.isIncrementalCopy, true)
    const d1 = p.destinationSnapshot!
    assert.ok(d1)
    assert.deepEqual(
      await dst.withSnapshot(d1).downloadToBuffer(),
      await src.withSnapshot(s1).downloadToBuffer(),
    )

    await src.uploadPages(pattern(8 * KiB, 2), 200 * KiB, 8 * KiB)
    await src.clearPages(0, 16 * KiB)
    const s2 = (await src.createSnapshot()).snapshot!
    await dst.startCopyIncremental(src.withSnapshot(s2).url)
    p = await dst.getProperties()
    const d2 = p.destinationSnapshot!
    assert.notEqual(d2, d1)
    assert.deepEqual(
      await dst.withSnapshot(d2).downloadToBuffer(),
      await src.withSnapshot(s2).downloadToBuffer(),
    )
    assert.deepEqual(
      await dst.withSnapshot(d1).downloadToBuffer(),
      await src.withSnapshot(s1).downloadToBuffer(),
    )
    const diff = await dst.withSnapshot(d2).getPageRangesDiff(0, 256 * KiB, d1)
    assert.deepEqual(diff.pageRange, [{ offset: 200 * KiB, count: 8 * KiB - 1 }])
    assert.deepEqual(diff.clearRange, [{ offset: 0, count: 16 * KiB - 1 }])

    const snaps: string[] = []
    for await (const b of other.listBlobsFlat({ includeSnapshots: true }))
      if (b.snapshot) snaps.push(b.snapshot)
    assert.deepEqual(snaps, [d1, d2])

    assert.deepEqual(await errorOf(dst.uploadPages(pattern(512, 1), 0, 512)), {
      code: 'OperationNotAllowedOnIncrementalCopyBlob',
      status: 409,
    })
    assert.deepEqual(await errorOf(dst.startCopyIncremental(src.url)), {
      code: 'IncrementalCopySourceMustBeSnapshot',
      status: 409,
    })
    assert.deepEqual(await errorOf(dst.startCopyIncremental(src.withSnapshot(s1).url)), {
      code: 'IncrementalCopyOfEarlierVersionSnapshotNotAllowed',
      status: 409,
    })
  })
})
