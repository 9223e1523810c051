// Get Page Ranges with x-ms-previous-snapshot-url (the SDKs' managed-disk diff): the exact diff across
// snapshots of one blob and of blobs of one lineage, and Azure's errors for every other URL.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ContainerClient, PageBlobClient } from '@azure/storage-blob'
import { type BlobApiHarness, errorOf, pattern, rawRequest, startBlobApi } from './_blobapi-harness.js'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 2 * MiB

interface Ranges {
  pageRange?: { offset: number; count?: number }[]
  clearRange?: { offset: number; count?: number }[]
}

/** `base` with a diff applied: page ranges read from `target`, clear ranges zeroed. */
async function applyDiff(base: Buffer, diff: Ranges, target: PageBlobClient): Promise<Buffer> {
  const out = Buffer.from(base)
  for (const r of diff.clearRange ?? []) out.fill(0, r.offset, r.offset + r.count! + 1)
  for (const r of diff.pageRange ?? []) {
    const bytes = await target.downloadToBuffer(r.offset, r.count! + 1)
    bytes.copy(out, r.offset)
  }
  return out
}

function snapshotUrl(b: PageBlobClient, snapshot: string): string {
  return b.withSnapshot(snapshot).url
}

describe('Get Page Ranges with a previous snapshot URL (managed-disk diffs)', () => {
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

  it('diffs against a snapshot of the same blob exactly as prevsnapshot does, clear ranges included', async () => {
    const b = c.getPageBlobClient('same')
    await b.create(SIZE)
    await b.uploadPages(pattern(256 * KiB, 1), 0, 256 * KiB)
    const s1 = (await b.createSnapshot()).snapshot!
    await b.clearPages(64 * KiB, 64 * KiB)
    await b.uploadPages(pattern(4 * KiB, 2), 1 * MiB, 4 * KiB)
    const viaUrl = await b.getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(b, s1))
    const viaSnapshot = await b.getPageRangesDiff(0, SIZE, s1)
    assert.deepEqual(viaUrl.pageRange, [{ offset: 1 * MiB, count: 4 * KiB - 1 }])
    assert.deepEqual(viaUrl.clearRange, [{ offset: 64 * KiB, count: 64 * KiB - 1 }])
    assert.deepEqual(viaUrl.pageRange, viaSnapshot.pageRange)
    assert.deepEqual(viaUrl.clearRange, viaSnapshot.clearRange)
  })

  it('diffs across a copy: a snapshot copied to a second disk, then changed, diffs exactly against the first', async () => {
    // The seed procedure of a managed-disk backup tool: copy a snapshot to a second disk, keep using
    // the copy, and diff its snapshots against the original snapshot.
    const a = c.getPageBlobClient('seed-source')
    await a.create(SIZE)
    await a.uploadPages(pattern(512 * KiB, 3), 0, 512 * KiB)
    await a.uploadPages(pattern(64 * KiB, 4), 1536 * KiB, 64 * KiB)
    const s1 = (await a.createSnapshot()).snapshot!
    const base = await a.withSnapshot(s1).downloadToBuffer()

    const b = c.getPageBlobClient('seed-copy')
    await b.syncCopyFromURL(snapshotUrl(a, s1))
    await b.clearPages(128 * KiB, 32 * KiB)
    await b.clearPages(1536 * KiB, 64 * KiB)
    await b.uploadPages(pattern(8 * KiB, 5), 1 * MiB, 8 * KiB)
    await b.uploadPages(pattern(4 * KiB, 6), 500 * KiB, 4 * KiB)
    const b1 = (await b.createSnapshot()).snapshot!

    const diff = await b.withSnapshot(b1).getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(a, s1))
    assert.deepEqual(diff.clearRange, [
      { offset: 128 * KiB, count: 32 * KiB - 1 },
      { offset: 1536 * KiB, count: 64 * KiB - 1 },
    ])
    assert.deepEqual(diff.pageRange, [
      { offset: 500 * KiB, count: 4 * KiB - 1 },
      { offset: 1 * MiB, count: 8 * KiB - 1 },
    ])
    // Applying the diff to the original snapshot gives the copy's snapshot, byte for byte.
    const rebuilt = await applyDiff(base, diff, b.withSnapshot(b1))
    assert.ok(rebuilt.equals(await b.withSnapshot(b1).downloadToBuffer()))

    // The live copy too, and a copy of the copy (same lineage, two hops).
    await b.clearPages(0, 4 * KiB)
    const live = await b.getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(a, s1))
    assert.ok((await applyDiff(base, live, b)).equals(await b.downloadToBuffer()))
    const g = c.getPageBlobClient('seed-grandchild')
    await g.syncCopyFromURL(snapshotUrl(b, b1))
    const fromGrandchild = await g.getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(a, s1))
    assert.deepEqual(fromGrandchild.pageRange, diff.pageRange)
    assert.deepEqual(fromGrandchild.clearRange, diff.clearRange)
  })

  it('diffs an incremental-copy destination against its source and the other way round', async () => {
    const src = c.getPageBlobClient('inc-source')
    await src.create(SIZE)
    await src.uploadPages(pattern(128 * KiB, 7), 0, 128 * KiB)
    const s1 = (await src.createSnapshot()).snapshot!
    await src.clearPages(0, 16 * KiB)
    await src.uploadPages(pattern(16 * KiB, 8), 1 * MiB, 16 * KiB)
    const s2 = (await src.createSnapshot()).snapshot!
    const dst = c.getPageBlobClient('inc-backup')
    await dst.startCopyIncremental(snapshotUrl(src, s1))
    const d1Id = (await dst.getProperties()).destinationSnapshot!
    // Source's newer snapshot against the backup's snapshot: what changed since the backup.
    const forward = await src
      .withSnapshot(s2)
      .getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(dst, d1Id))
    const same = await src.withSnapshot(s2).getPageRangesDiff(0, SIZE, s1)
    assert.deepEqual(forward.pageRange, same.pageRange)
    assert.deepEqual(forward.clearRange, same.clearRange)
    assert.deepEqual(forward.clearRange, [{ offset: 0, count: 16 * KiB - 1 }])
    // The backup's snapshot against the source's older snapshot: nothing changed.
    const none = await dst.withSnapshot(d1Id).getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(src, s1))
    assert.deepEqual(none.pageRange, [])
    assert.deepEqual(none.clearRange, [])
  })

  it('refuses a snapshot of an unrelated blob with 409 instead of listing every page', async () => {
    const a = c.getPageBlobClient('lonely-a')
    const b = c.getPageBlobClient('lonely-b')
    for (const x of [a, b]) {
      await x.create(SIZE)
      await x.uploadPages(pattern(64 * KiB, 9), 0, 64 * KiB)
    }
    const sa = (await a.createSnapshot()).snapshot!
    assert.deepEqual(await errorOf(b.getPageRangesDiffForManagedDisks(0, SIZE, snapshotUrl(a, sa))), {
      code: 'PreviousSnapshotOperationNotSupported',
      status: 409,
    })
    const raw = await rawRequest(h, 'GET', '/disks/lonely-b?comp=pagelist', {
      headers: { 'x-ms-previous-snapshot-url': snapshotUrl(a, sa) },
    })
    assert.equal(raw.status, 409)
    assert.equal(raw.code, 'PreviousSnapshotOperationNotSupported')
    assert.equal(raw.headers.get('x-ms-error-code'), 'PreviousSnapshotOperationNotSupported')
    assert.doesNotMatch(raw.text, /<PageRange>/)
  })

  it('answers Azure errors for a missing snapshot, a URL without a snapshot, a foreign URL and a garbled one', async () => {
    const b = c.getPageBlobClient('errors')
    await b.create(SIZE)
    const s1 = (await b.createSnapshot()).snapshot!
    const missing = snapshotUrl(b, '2020-01-01T00:00:00.0000000Z')
    assert.deepEqual(await errorOf(b.getPageRangesDiffForManagedDisks(0, SIZE, missing)), {
      code: 'PreviousSnapshotNotFound',
      status: 409,
    })
    const otherBlob = `${c.getPageBlobClient('no-such-blob').url}?snapshot=${s1}`
    assert.deepEqual(await errorOf(b.getPageRangesDiffForManagedDisks(0, SIZE, otherBlob)), {
      code: 'PreviousSnapshotNotFound',
      status: 409,
    })
    for (const url of [
      b.url,
      `https://someoneelse.blob.core.windows.net/disks/errors?snapshot=${s1}`,
      'not a url',
      `ftp://127.0.0.1/devstoreaccount1/disks/errors?snapshot=${s1}`,
    ]) {
      const raw = await rawRequest(h, 'GET', '/disks/errors?comp=pagelist', {
        headers: { 'x-ms-previous-snapshot-url': url },
      })
      assert.equal(raw.status, 400, url)
      assert.equal(raw.code, 'InvalidHeaderValue', url)
      assert.match(raw.text, /<HeaderName>x-ms-previous-snapshot-url<\/HeaderName>/)
    }
    const both = await rawRequest(h, `GET`, `/disks/errors?comp=pagelist&prevsnapshot=${s1}`, {
      headers: { 'x-ms-previous-snapshot-url': snapshotUrl(b, s1) },
    })
    assert.equal(both.status, 400)
    assert.equal(both.code, 'InvalidHeaderValue')
  })

  it('serves the header in raw HTTP, host-style URLs and the prevsnapshoturl query form alike', async () => {
    const b = c.getPageBlobClient('raw')
    await b.create(SIZE)
    await b.uploadPages(pattern(8 * KiB, 10), 0, 8 * KiB)
    const s1 = (await b.createSnapshot()).snapshot!
    await b.clearPages(0, 512)
    await b.uploadPages(pattern(512, 11), 64 * KiB, 512)
    for (const url of [
      snapshotUrl(b, s1),
      `https://devstoreaccount1.blob.core.windows.net/disks/raw?snapshot=${encodeURIComponent(s1)}`,
    ]) {
      const r = await rawRequest(h, 'GET', '/disks/raw?comp=pagelist', {
        headers: { 'x-ms-previous-snapshot-url': url },
      })
      assert.equal(r.status, 200, r.text)
      assert.equal(r.headers.get('content-type'), 'application/xml')
      assert.equal(r.headers.get('x-ms-blob-content-length'), String(SIZE))
      assert.ok(r.headers.get('etag'))
      assert.match(
        r.text,
        /<PageList><ClearRange><Start>0<\/Start><End>511<\/End><\/ClearRange><PageRange><Start>65536<\/Start><End>66047<\/End><\/PageRange><\/PageList>/,
      )
    }
    const q = await rawRequest(
      h,
      'GET',
      `/disks/raw?comp=pagelist&prevsnapshoturl=${encodeURIComponent(snapshotUrl(b, s1))}`,
    )
    assert.equal(q.status, 200, q.text)
    assert.match(q.text, /<ClearRange><Start>0<\/Start><End>511<\/End><\/ClearRange>/)
  })
})
