// The contract every DiskStore keeps, as one suite each implementation runs
// (disk-store.contract.test.ts loops over DISK_STORES). Cases that hold for any store live here;
// log-disk-store.test.ts keeps what is particular to the log (segments, checkpoints, repair, compaction).
// Over ~600 lines on purpose: a list of independent contract cases, one `it` each.
import assert from 'node:assert/strict'
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'node:test'
import { CairnError } from '../util/index.js'
import { LogDiskStore } from './log-disk-store.js'
import type { DiskRef, DiskStore } from './types.js'

const MiB = 1024 * 1024
const ref: DiskRef = { account: 'acct1', container: 'disks', disk: 'os' }
const data = (n: number, fill: number) => Buffer.alloc(n, fill)

/** Opens a store on one place; called again after close() it reopens the same store. */
export type OpenStore = (options?: { clock?: () => number }) => Promise<DiskStore>

/** One DiskStore implementation under test. */
export interface DiskStoreUnderTest {
  name: string
  /** A fresh, empty place for a store, and how to open it. */
  place(): Promise<{ open: OpenStore; cleanup(): Promise<void> }>
}

function logStoreIn(parent: string): DiskStoreUnderTest['place'] {
  return async () => {
    const dir = mkdtempSync(join(parent, 'cairn-ds-contract-'))
    return {
      open: (options = {}) => LogDiskStore.open(dir, { compactIntervalMs: 0, ...options }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  }
}

/** Every DiskStore Cairn has, on each kind of file system the tests can reach. */
export const DISK_STORES: DiskStoreUnderTest[] = [
  { name: 'LogDiskStore', place: logStoreIn(tmpdir()) },
  ...(existsSync('/dev/shm')
    ? [{ name: 'LogDiskStore on tmpfs (no O_DIRECT)', place: logStoreIn('/dev/shm') }]
    : []),
]

/** Asserts that `fn` throws (or rejects with) a CairnError with `code`. */
async function rejects(fn: () => unknown, code: string): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (err: unknown) => err instanceof CairnError && err.code === code,
    `expected ${code}`,
  )
}

/** Registers the contract's tests for one implementation (call inside a describe). */
export function diskStoreContract(s: DiskStoreUnderTest): void {
  /**
   * Runs `fn` on a fresh store holding acct1/disks/os (8 MiB), with a scratch folder for files and a
   * way to close and reopen the store.
   */
  async function withStore(
    fn: (store: DiskStore, dir: string, reopen: () => Promise<DiskStore>) => Promise<void>,
    options: { clock?: () => number } = {},
  ): Promise<void> {
    const place = await s.place()
    const scratch = mkdtempSync(join(tmpdir(), 'cairn-ds-scratch-'))
    let store = await place.open(options)
    try {
      await store.createAccount('acct1')
      await store.createContainer('acct1', 'disks')
      await store.createDisk(ref, { size: 8 * MiB })
      await fn(store, scratch, async () => {
        await store.close()
        store = await place.open(options)
        return store
      })
    } finally {
      await store.close()
      await place.cleanup()
      rmSync(scratch, { recursive: true, force: true })
    }
  }

  it('reads back written pages and zeros in holes', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 4096, data(8192, 7))
      const got = await store.read(ref, 4000, 8400)
      assert.ok(got.subarray(0, 96).equals(Buffer.alloc(96)))
      assert.ok(got.subarray(96, 96 + 8192).equals(data(8192, 7)))
      assert.deepEqual(store.pageRanges(ref), [{ start: 4096, end: 12288 }])
      assert.equal(store.getDisk(ref).usedBytes, 8192)
    })
  })

  it('rejects bad writes with stable codes and changes nothing', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(512, 1))
      const before = store.getDisk(ref)
      await rejects(() => store.writePages(ref, 100, data(512, 2)), 'RangeNotAligned')
      await rejects(() => store.writePages(ref, 0, data(500, 2)), 'RangeNotAligned')
      await rejects(() => store.writePages(ref, 8 * MiB - 512, data(1024, 2)), 'RangeOutOfBounds')
      await rejects(() => store.writePages(ref, 0, data(4 * MiB + 512, 2)), 'WriteTooLarge')
      await rejects(() => store.clearPages(ref, 0, 100), 'RangeNotAligned')
      await rejects(() => store.writePages({ ...ref, disk: 'nope' }, 0, data(512, 2)), 'DiskNotFound')
      await rejects(
        () => store.writePages({ ...ref, container: 'nope' }, 0, data(512, 2)),
        'ContainerNotFound',
      )
      await rejects(() => store.writePages({ ...ref, account: 'nope' }, 0, data(512, 2)), 'AccountNotFound')
      await rejects(() => store.read(ref, 8 * MiB - 10, 20), 'RangeOutOfBounds')
      await rejects(
        () => store.read(ref, 0, 10, { snapshot: '2020-01-01T00:00:00.0000000Z' }),
        'SnapshotNotFound',
      )
      await rejects(() => store.createDisk({ ...ref, disk: 'x' }, { size: 1000 }), 'InvalidDiskSize')
      await rejects(() => store.createDisk({ ...ref, disk: 'x' }, { size: 9 * 1024 ** 4 }), 'InvalidDiskSize')
      await rejects(() => store.createDisk(ref, { size: 512 }), 'DiskAlreadyExists')
      await rejects(() => store.createAccount('Bad_Name'), 'InvalidName')
      await rejects(() => store.createContainer('acct1', 'x'), 'InvalidName')
      await rejects(() => store.resizeDisk(ref, 1000), 'InvalidDiskSize')
      const after = store.getDisk(ref)
      assert.equal(after.etag, before.etag)
      assert.equal(after.size, before.size)
      assert.ok((await store.read(ref, 0, 512)).equals(data(512, 1)))
    })
  })

  it('diffs between snapshots and the live disk, and refuses a newer-to-older diff', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(4096, 1))
      const s1 = (await store.snapshot(ref)).snapshot!
      await store.writePages(ref, 1024, data(512, 2))
      await store.clearPages(ref, 3072, 1024)
      const s2 = (await store.snapshot(ref)).snapshot!
      assert.ok(s1 < s2)
      assert.deepEqual(store.diff(ref, { from: s1, to: s2 }), {
        pageRanges: [{ start: 1024, end: 1536 }],
        clearRanges: [{ start: 3072, end: 4096 }],
      })
      assert.deepEqual(store.diff(ref, { from: s2 }), { pageRanges: [], clearRanges: [] })
      await rejects(() => store.diff(ref, { from: s2, to: s1 }), 'SnapshotOrderInvalid')
      await store.createDisk({ ...ref, disk: 'other' }, { size: MiB })
      const other = (await store.snapshot({ ...ref, disk: 'other' })).snapshot!
      await rejects(() => store.diff(ref, { from: other }), 'SnapshotNotFound')
      await rejects(() => store.diff(ref, { from: s1, marker: 'garbage' }), 'InvalidMarker')
    })
  })

  it('takes a consistency group snapshot in which no write lands in one disk and misses another', async () => {
    await withStore(async (store) => {
      const data2: DiskRef = { ...ref, disk: 'data' }
      await store.createDisk(data2, { size: MiB })
      // Writes issued in the same tick as the snapshot are in every cut or in none.
      const w1 = store.writePages(ref, 0, data(512, 1))
      const snap = store.snapshotGroup([ref, data2])
      const w2 = store.writePages(data2, 0, data(512, 2))
      const [, infos] = await Promise.all([w1, snap, w2])
      assert.equal(infos[0]!.snapshot, infos[1]!.snapshot)
      const id = infos[0]!.snapshot!
      assert.ok((await store.read(ref, 0, 512, { snapshot: id })).equals(data(512, 1)))
      assert.ok((await store.read(data2, 0, 512, { snapshot: id })).equals(Buffer.alloc(512)))
    })
  })

  it('keeps 500 snapshots of a disk, each reading its own content', async () => {
    await withStore(async (store, _dir, reopen) => {
      const ids: string[] = []
      for (let i = 0; i < 500; i++) {
        await store.writePages(ref, (i % 16) * 512, data(512, i % 251), { durable: false })
        ids.push((await store.snapshot(ref)).snapshot!)
      }
      assert.equal(new Set(ids).size, 500)
      assert.deepEqual([...ids].sort(), ids)
      const s = await reopen()
      assert.equal(s.listSnapshots(ref).length, 500)
      assert.ok((await s.read(ref, 0, 512, { snapshot: ids[0] })).equals(data(512, 0)))
      assert.ok(
        (await s.read(ref, (499 % 16) * 512, 512, { snapshot: ids[499] })).equals(data(512, 499 % 251)),
      )
    })
  })

  it('deletes a disk with snapshots only when told what happens to them', async () => {
    await withStore(async (store) => {
      await store.snapshot(ref)
      await rejects(() => store.deleteDisk(ref), 'DiskHasSnapshots')
      await store.deleteDisk(ref, { snapshots: 'only' })
      assert.equal(store.listSnapshots(ref).length, 0)
      await store.snapshot(ref)
      await store.deleteDisk(ref, { snapshots: 'include' })
      await rejects(() => store.getDisk(ref), 'DiskNotFound')
    })
  })

  it('promotes a snapshot and copies disks without copying data', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(MiB, 3))
      const s1 = (await store.snapshot(ref)).snapshot!
      await store.writePages(ref, 0, data(512, 4))
      const before = store.usage().segmentBytes
      await store.copyDisk({ ref, snapshot: s1 }, { ...ref, disk: 'clone' })
      assert.equal(store.usage().segmentBytes - before < 4096, true)
      assert.ok((await store.read({ ...ref, disk: 'clone' }, 0, 512)).equals(data(512, 3)))
      await store.promote(ref, s1)
      assert.ok((await store.read(ref, 0, 512)).equals(data(512, 3)))
      assert.deepEqual(store.diff(ref, { from: s1 }), { pageRanges: [], clearRanges: [] })
    })
  })

  it('follows the lease state machine and guards writes and deletes', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z')
    await withStore(
      async (store) => {
        const { id } = await store.lease(ref, { action: 'acquire', duration: 15 })
        assert.ok(id)
        assert.equal(store.getDisk(ref).lease.state, 'leased')
        await rejects(() => store.writePages(ref, 0, data(512, 1)), 'LeaseIdMissing')
        await rejects(
          () => store.writePages(ref, 0, data(512, 1), { conditions: { leaseId: 'x' } }),
          'LeaseIdMismatch',
        )
        await rejects(() => store.deleteDisk(ref), 'LeaseIdMissing')
        await rejects(() => store.lease(ref, { action: 'acquire', duration: -1 }), 'LeaseAlreadyPresent')
        await store.writePages(ref, 0, data(512, 1), { conditions: { leaseId: id! } })
        now += 16_000
        assert.equal(store.getDisk(ref).lease.state, 'expired')
        await store.writePages(ref, 0, data(512, 1))
        await store.lease(ref, { action: 'renew', id: id! })
        assert.equal(store.getDisk(ref).lease.state, 'leased')
        await store.lease(ref, { action: 'change', id: id!, proposedId: 'new-id' })
        const br = await store.lease(ref, { action: 'break', breakPeriod: 10 })
        assert.equal(br.leaseTime, 10)
        assert.equal(store.getDisk(ref).lease.state, 'breaking')
        await rejects(() => store.writePages(ref, 0, data(512, 1)), 'LeaseIdMissing')
        now += 11_000
        assert.equal(store.getDisk(ref).lease.state, 'broken')
        await rejects(() => store.lease(ref, { action: 'renew', id: 'new-id' }), 'LeaseIsBroken')
        await store.lease(ref, { action: 'release', id: 'new-id' })
        assert.equal(store.getDisk(ref).lease.state, 'available')
        await rejects(() => store.lease(ref, { action: 'release', id: 'new-id' }), 'LeaseNotPresent')
        await rejects(() => store.lease(ref, { action: 'acquire', duration: 5 }), 'InvalidRequest')
      },
      { clock: () => now },
    )
  })

  it('checks etag, date and sequence number conditions, and keeps sequence numbers', async () => {
    await withStore(async (store) => {
      const r = await store.setSequenceNumber(ref, 'update', 5)
      assert.equal(r.sequenceNumber, 5)
      assert.equal((await store.setSequenceNumber(ref, 'max', 3)).sequenceNumber, 5)
      assert.equal((await store.setSequenceNumber(ref, 'increment')).sequenceNumber, 6)
      const etag = store.getDisk(ref).etag
      await rejects(
        () => store.writePages(ref, 0, data(512, 1), { conditions: { ifMatch: '"0xother"' } }),
        'ConditionNotMet',
      )
      await rejects(
        () => store.writePages(ref, 0, data(512, 1), { conditions: { ifSequenceNumberLessThan: 6 } }),
        'SequenceNumberConditionNotMet',
      )
      const w = await store.writePages(ref, 0, data(512, 1), {
        conditions: { ifMatch: etag, ifSequenceNumberEqual: 6 },
      })
      assert.notEqual(w.etag, etag)
      await rejects(() => store.setSequenceNumber(ref, 'update', -1), 'InvalidRequest')
    })
  })

  it('resizes down and up: cut pages are gone, new pages read as zeros', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(2 * MiB, 9))
      await store.resizeDisk(ref, MiB)
      assert.equal(store.getDisk(ref).usedBytes, MiB)
      await store.resizeDisk(ref, 3 * MiB)
      const got = await store.read(ref, MiB - 512, 1024)
      assert.ok(got.subarray(0, 512).equals(data(512, 9)))
      assert.ok(got.subarray(512).equals(Buffer.alloc(512)))
    })
  })

  it('reports used and exclusive bytes of disks and snapshots', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(MiB, 1))
      const s1 = (await store.snapshot(ref)).snapshot!
      await store.writePages(ref, 0, data(MiB / 2, 2))
      assert.deepEqual(store.space(ref, s1), { ref, snapshot: s1, usedBytes: MiB, exclusiveBytes: MiB / 2 })
      assert.deepEqual(store.space(ref), { ref, usedBytes: MiB, exclusiveBytes: MiB / 2 })
    })
  })

  it('exports a live disk as it was when the export began, whatever is written while it runs', async () => {
    await withStore(async (store, dir) => {
      const live = { ...ref, disk: 'live' }
      await store.createDisk(live, { size: 32 * MiB })
      for (let at = 0; at < 32 * MiB; at += 4 * MiB) await store.writePages(live, at, data(4 * MiB, 1))
      const out = join(dir, 'live.img')
      const exporting = store.exportFile(live, out)
      // Rewrite every MiB while the export reads its 4 MiB blocks.
      for (let at = 0; at < 32 * MiB; at += MiB) await store.writePages(live, at, data(MiB, 2))
      await exporting
      assert.ok(readFileSync(out).equals(data(32 * MiB, 1)), 'the export holds bytes written after it began')
      assert.ok((await store.read(live, 0, 32 * MiB)).equals(data(32 * MiB, 2)))
    })
  })

  it('imports a sparse image keeping zero blocks as holes and exports it sparse', async () => {
    await withStore(async (store, dir) => {
      const img = join(dir, 'in.img')
      const image = Buffer.alloc(6 * MiB + 1000)
      image.fill(1, 0, 4096)
      image.fill(2, 5 * MiB, 5 * MiB + 512)
      image.fill(3, 6 * MiB, 6 * MiB + 1000)
      writeFileSync(img, image)
      const progress: number[] = []
      const target = { ...ref, disk: 'imported' }
      const info = await store.importFile(img, target, { onProgress: (p) => progress.push(p.bytesDone) })
      assert.equal(info.size, 6 * MiB + 1024)
      assert.equal(info.usedBytes, 4096 + 512 + 1024)
      assert.equal(progress[progress.length - 1], info.size)
      const out = join(dir, 'out.img')
      await store.exportFile(target, out)
      const back = readFileSync(out)
      assert.equal(back.length, info.size)
      assert.ok(back.subarray(0, image.length).equals(image))
      assert.ok(statSync(out).blocks * 512 < 64 * 1024, 'the export is sparse')

      // A sparse source: only its data ranges are read.
      const sparse = join(dir, 'sparse.img')
      const fd = openSync(sparse, 'w')
      writeSync(fd, data(4096, 9), 0, 4096, 3 * MiB)
      writeSync(fd, Buffer.concat([Buffer.alloc(512), data(512, 8)]), 0, 1024, 7 * MiB)
      ftruncateSync(fd, 9 * MiB)
      closeSync(fd)
      const sparseInfo = await store.importFile(sparse, { ...ref, disk: 'sparse' })
      assert.equal(sparseInfo.usedBytes, 4096 + 512)
      assert.deepEqual(store.pageRanges({ ...ref, disk: 'sparse' }), [
        { start: 3 * MiB, end: 3 * MiB + 4096 },
        { start: 7 * MiB + 512, end: 7 * MiB + 1024 },
      ])
      assert.ok((await store.read({ ...ref, disk: 'sparse' }, 0, 9 * MiB)).equals(readFileSync(sparse)))
    })
  })

  it('leaves no disk behind when an import is cancelled or the file is missing', async () => {
    await withStore(async (store, dir, reopen) => {
      const img = join(dir, 'big.img')
      writeFileSync(img, Buffer.alloc(12 * MiB, 1))
      const ac = new AbortController()
      const target = { ...ref, disk: 'cancelled' }
      await rejects(
        () => store.importFile(img, target, { signal: ac.signal, onProgress: () => ac.abort() }),
        'Cancelled',
      )
      await rejects(() => store.getDisk(target), 'DiskNotFound')
      await rejects(() => store.importFile(join(dir, 'missing.img'), target), 'FileNotFound')
      const s = await reopen()
      await rejects(() => s.getDisk(target), 'DiskNotFound')
      assert.deepEqual(
        s.listDisks('acct1', 'disks').items.map((d) => d.ref.disk),
        ['os'],
      )
    })
  })

  it('keeps accounts, containers, properties and metadata across a reopen', async () => {
    await withStore(async (store, _dir, reopen) => {
      await store.setDiskMetadata(ref, { owner: 'ops' })
      await store.setDiskContent(ref, { contentType: 'application/octet-stream' })
      await store.setContainerMetadata('acct1', 'disks', { tier: 'hot' })
      const keys = store.getAccount('acct1').keys
      const s = await reopen()
      const d = s.getDisk(ref)
      assert.deepEqual(d.metadata, { owner: 'ops' })
      assert.equal(d.content.contentType, 'application/octet-stream')
      assert.deepEqual(s.getContainer('acct1', 'disks').metadata, { tier: 'hot' })
      assert.deepEqual(s.getAccount('acct1').keys, keys)
      const rotated = await s.regenerateAccountKey('acct1', 2)
      assert.equal(rotated.keys[0], keys[0])
      assert.notEqual(rotated.keys[1], keys[1])
      await s.deleteAccount('acct1')
      assert.deepEqual(s.listAccounts(), [])
      await s.createAccount('acct1')
      await s.createContainer('acct1', 'disks')
      await s.createDisk(ref, { size: 512 })
    })
  })

  it('keeps blob index tags apart from content: etag unchanged, snapshots keep theirs, kept across a reopen', async () => {
    await withStore(async (store, _dir, reopen) => {
      const before = store.getDisk(ref)
      assert.equal(before.tags, undefined)
      await store.setDiskTags(ref, { project: 'alpha', tier: 'gold' })
      const tagged = store.getDisk(ref)
      assert.deepEqual(tagged.tags, { project: 'alpha', tier: 'gold' })
      assert.equal(tagged.etag, before.etag)
      assert.equal(tagged.lastModified, before.lastModified)
      const snap = await store.snapshot(ref)
      await store.setDiskTags(ref, { project: 'beta' })
      assert.deepEqual(store.getDisk(ref, snap.snapshot).tags, { project: 'alpha', tier: 'gold' })
      const other = { ...ref, disk: 'data' }
      await store.createDisk(other, { size: 4096, tags: { role: 'data' } })
      const copy = { ...ref, disk: 'copy' }
      await store.copyDisk({ ref }, copy)
      assert.equal(store.getDisk(copy).tags, undefined)
      await store.copyDisk({ ref }, copy, { overwrite: true, tags: { copied: 'yes' } })
      await store.lease(other, {
        action: 'acquire',
        duration: -1,
        proposedId: '11111111-2222-3333-4444-555555555555',
      })
      await rejects(
        () => store.setDiskTags(other, {}, { leaseId: '99999999-2222-3333-4444-555555555555' }),
        'LeaseIdMismatch',
      )
      const s = await reopen()
      assert.deepEqual(s.getDisk(ref).tags, { project: 'beta' })
      assert.deepEqual(s.getDisk(ref, snap.snapshot).tags, { project: 'alpha', tier: 'gold' })
      assert.deepEqual(s.getDisk(other).tags, { role: 'data' })
      assert.deepEqual(s.getDisk(copy).tags, { copied: 'yes' })
      await s.setDiskTags(ref, {})
      const again = await reopen()
      assert.equal(again.getDisk(ref).tags, undefined)
    })
  })

  it('clears pages back to holes: reads give zeros and the ranges and used bytes drop them', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(64 * 1024, 5))
      await store.clearPages(ref, 4096, 8192)
      assert.deepEqual(store.pageRanges(ref), [
        { start: 0, end: 4096 },
        { start: 12288, end: 64 * 1024 },
      ])
      assert.equal(store.getDisk(ref).usedBytes, 64 * 1024 - 8192)
      const got = await store.read(ref, 0, 16384)
      assert.ok(got.subarray(0, 4096).equals(data(4096, 5)))
      assert.ok(got.subarray(4096, 12288).equals(Buffer.alloc(8192)))
      assert.ok(got.subarray(12288).equals(data(4096, 5)))
      assert.deepEqual(store.pageRanges(ref, { offset: 2048, length: 4096 }), [{ start: 2048, end: 4096 }])
      // Clearing a hole changes nothing that reads.
      await store.clearPages(ref, 7 * MiB, MiB)
      assert.equal(store.getDisk(ref).usedBytes, 64 * 1024 - 8192)
    })
  })

  it('pages a diff with marker and maxResults, and diffs within a range', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 7 * MiB, data(8192, 9))
      const s0 = (await store.snapshot(ref)).snapshot!
      // Clearing a hole the snapshot also had is no change; clearing data is.
      await store.clearPages(ref, 6 * MiB, 4096)
      for (let i = 0; i < 7; i++) await store.writePages(ref, i * 65536, data(512, i + 1))
      await store.clearPages(ref, 7 * MiB, 4096)
      const whole = store.diff(ref, { from: s0 })
      assert.equal(whole.nextMarker, undefined)
      assert.equal(whole.pageRanges.length, 7)
      assert.deepEqual(whole.clearRanges, [{ start: 7 * MiB, end: 7 * MiB + 4096 }])
      const pages: number[] = []
      const seen = { pageRanges: [] as typeof whole.pageRanges, clearRanges: [] as typeof whole.clearRanges }
      let marker: string | undefined
      do {
        const part = store.diff(ref, { from: s0, maxResults: 3, ...(marker ? { marker } : {}) })
        pages.push(part.pageRanges.length + part.clearRanges.length)
        seen.pageRanges.push(...part.pageRanges)
        seen.clearRanges.push(...part.clearRanges)
        marker = part.nextMarker
      } while (marker !== undefined)
      assert.deepEqual(pages, [3, 3, 2])
      assert.deepEqual(seen, { pageRanges: whole.pageRanges, clearRanges: whole.clearRanges })
      assert.deepEqual(store.diff(ref, { from: s0, offset: 65536, length: 2 * 65536 }), {
        pageRanges: [
          { start: 65536, end: 65536 + 512 },
          { start: 2 * 65536, end: 2 * 65536 + 512 },
        ],
        clearRanges: [],
      })
    })
  })

  it('keeps writes made durable by flush(), snapshots and diffs across a reopen', async () => {
    await withStore(async (store, _dir, reopen) => {
      await store.writePages(ref, 0, data(4096, 1))
      const s1 = (await store.snapshot(ref, { metadata: { label: 'first' } })).snapshot!
      await store.writePages(ref, MiB, data(8192, 2), { durable: false })
      await store.clearPages(ref, 0, 512, { durable: false })
      await store.flush()
      const again = await reopen()
      assert.deepEqual(
        again.listSnapshots(ref).map((i) => [i.snapshot, i.metadata]),
        [[s1, { label: 'first' }]],
      )
      assert.ok((await again.read(ref, 0, 4096, { snapshot: s1 })).equals(data(4096, 1)))
      assert.ok((await again.read(ref, 0, 512)).equals(Buffer.alloc(512)))
      assert.ok((await again.read(ref, MiB, 8192)).equals(data(8192, 2)))
      assert.deepEqual(again.diff(ref, { from: s1 }), {
        pageRanges: [{ start: MiB, end: MiB + 8192 }],
        clearRanges: [{ start: 0, end: 512 }],
      })
    })
  })

  it('diffs across disks of one lineage exactly, refuses other disks, and keeps lineages across a reopen', async () => {
    await withStore(async (store, _dir, reopen) => {
      await store.writePages(ref, 0, data(8192, 1))
      await store.writePages(ref, MiB, data(4096, 2))
      const s1 = (await store.snapshot(ref)).snapshot!
      const copy = { ...ref, disk: 'copy' }
      const grandchild = { ...ref, disk: 'grandchild' }
      const stranger = { ...ref, disk: 'stranger' }
      await store.copyDisk({ ref, snapshot: s1 }, copy)
      await store.clearPages(copy, 0, 4096)
      await store.writePages(copy, 2 * MiB, data(512, 3))
      const c1 = (await store.snapshot(copy)).snapshot!
      await store.copyDisk({ ref: copy, snapshot: c1 }, grandchild)
      await store.createDisk(stranger, { size: 8 * MiB })
      await store.writePages(stranger, 0, data(8192, 1))
      const x1 = (await store.snapshot(stranger)).snapshot!
      const expected = {
        pageRanges: [{ start: 2 * MiB, end: 2 * MiB + 512 }],
        clearRanges: [{ start: 0, end: 4096 }],
      }
      let st = store
      for (let round = 0; round < 2; round++) {
        assert.deepEqual(st.diff(copy, { from: s1, fromDisk: ref }), expected)
        assert.deepEqual(st.diff(copy, { from: s1, fromDisk: ref, to: c1 }), expected)
        assert.deepEqual(st.diff(grandchild, { from: s1, fromDisk: ref }), expected)
        // Backwards across the copy too: the source's live content against the copy's snapshot.
        assert.deepEqual(st.diff(ref, { from: c1, fromDisk: copy }), {
          pageRanges: [{ start: 0, end: 4096 }],
          clearRanges: [{ start: 2 * MiB, end: 2 * MiB + 512 }],
        })
        await rejects(() => st.diff(stranger, { from: s1, fromDisk: ref }), 'LineageMismatch')
        await rejects(() => st.diff(ref, { from: x1, fromDisk: stranger }), 'LineageMismatch')
        await rejects(() => st.diff(copy, { from: x1, fromDisk: ref }), 'SnapshotNotFound')
        st = await reopen()
      }
      // A disk overwritten by a new one leaves the lineage; its own older snapshots still diff.
      await st.createDisk(copy, { size: 8 * MiB, overwrite: true })
      await rejects(() => st.diff(copy, { from: s1, fromDisk: ref }), 'LineageMismatch')
      assert.deepEqual(st.diff(copy, { from: c1 }).pageRanges, [])
    })
  })

  it('lists containers and disks by prefix, page by page with markers, with snapshots when asked', async () => {
    await withStore(async (store) => {
      for (const c of ['logs', 'vms-a', 'vms-b']) await store.createContainer('acct1', c)
      const containers: string[] = []
      let marker: string | undefined
      do {
        const page = store.listContainers('acct1', { maxResults: 2, ...(marker ? { marker } : {}) })
        assert.ok(page.items.length <= 2)
        containers.push(...page.items.map((c) => c.name))
        marker = page.nextMarker
      } while (marker !== undefined)
      assert.deepEqual(containers, ['disks', 'logs', 'vms-a', 'vms-b'])
      assert.deepEqual(
        store.listContainers('acct1', { prefix: 'vms-' }).items.map((c) => c.name),
        ['vms-a', 'vms-b'],
      )
      for (const d of ['vm1-data', 'vm1-os', 'vm2-os'])
        await store.createDisk({ ...ref, disk: d }, { size: MiB })
      const snap = (await store.snapshot({ ...ref, disk: 'vm1-os' })).snapshot!
      const first = store.listDisks('acct1', 'disks', { prefix: 'vm1-', maxResults: 1 })
      assert.deepEqual(
        first.items.map((d) => d.ref.disk),
        ['vm1-data'],
      )
      assert.ok(first.nextMarker)
      const second = store.listDisks('acct1', 'disks', { prefix: 'vm1-', marker: first.nextMarker! })
      assert.deepEqual(
        second.items.map((d) => d.ref.disk),
        ['vm1-os'],
      )
      assert.equal(second.nextMarker, undefined)
      assert.deepEqual(
        store
          .listDisks('acct1', 'disks', { includeSnapshots: true })
          .items.map((d) => [d.ref.disk, d.snapshot]),
        [
          ['os', undefined],
          ['vm1-data', undefined],
          ['vm1-os', snap],
          ['vm1-os', undefined],
          ['vm2-os', undefined],
        ],
      )
    })
  })

  it('a deleted snapshot is gone from listings, reads and diffs; others stay whole', async () => {
    await withStore(async (store) => {
      await store.writePages(ref, 0, data(512, 1))
      const s1 = (await store.snapshot(ref)).snapshot!
      await store.writePages(ref, 0, data(512, 2))
      const s2 = (await store.snapshot(ref)).snapshot!
      await store.deleteSnapshot(ref, s1)
      assert.deepEqual(
        store.listSnapshots(ref).map((i) => i.snapshot),
        [s2],
      )
      await rejects(() => store.read(ref, 0, 512, { snapshot: s1 }), 'SnapshotNotFound')
      await rejects(() => store.diff(ref, { from: s1 }), 'SnapshotNotFound')
      await rejects(() => store.deleteSnapshot(ref, s1), 'SnapshotNotFound')
      assert.ok((await store.read(ref, 0, 512, { snapshot: s2 })).equals(data(512, 2)))
    })
  })

  it('copies over an existing disk only with overwrite, and the source snapshot keeps its bytes', async () => {
    await withStore(async (store) => {
      const target = { ...ref, disk: 'target' }
      await store.createDisk(target, { size: MiB })
      await store.writePages(target, 0, data(512, 9))
      await store.writePages(ref, 0, data(4096, 3))
      const s1 = (await store.snapshot(ref)).snapshot!
      await rejects(() => store.copyDisk({ ref, snapshot: s1 }, target), 'DiskAlreadyExists')
      const copied = await store.copyDisk({ ref, snapshot: s1 }, target, {
        overwrite: true,
        metadata: { from: 'os' },
      })
      assert.equal(copied.size, 8 * MiB)
      assert.deepEqual(copied.metadata, { from: 'os' })
      await store.writePages(target, 0, data(512, 7))
      assert.ok((await store.read(target, 0, 1024)).equals(Buffer.concat([data(512, 7), data(512, 3)])))
      assert.ok(
        (await store.read(ref, 0, 512, { snapshot: s1 })).equals(data(512, 3)),
        'writes to the copy stay in the copy',
      )
    })
  })

  it('deleting a container or an account removes what is in it', async () => {
    await withStore(async (store, _dir, reopen) => {
      await store.createContainer('acct1', 'gone')
      await store.createDisk({ ...ref, container: 'gone' }, { size: MiB })
      await store.deleteContainer('acct1', 'gone')
      await rejects(() => store.getContainer('acct1', 'gone'), 'ContainerNotFound')
      await rejects(() => store.getDisk({ ...ref, container: 'gone' }), 'ContainerNotFound')
      await store.createAccount('acct2')
      await store.createContainer('acct2', 'ctr')
      await store.createDisk({ account: 'acct2', container: 'ctr', disk: 'd' }, { size: MiB })
      await store.deleteAccount('acct2')
      const again = await reopen()
      await rejects(() => again.getAccount('acct2'), 'AccountNotFound')
      assert.deepEqual(
        again.listContainers('acct1').items.map((c) => c.name),
        ['disks'],
      )
      assert.deepEqual(
        again.listAccounts().map((a) => a.name),
        ['acct1'],
      )
    })
  })

  it('reads into a given buffer: holes zeroed, bytes past the length left alone, a view answered', async () => {
    await withStore(async (store) => {
      const bytes = Buffer.alloc(8192, 0xab)
      await store.writePages(ref, 4096, bytes, { durable: false })
      // Old bytes in the buffer must not show through the holes around the data.
      const into = Buffer.alloc(64 * 1024, 0xee)
      const out = await store.read(ref, 0, 16384, { into })
      assert.equal(out.buffer, into.buffer)
      assert.equal(out.length, 16384)
      assert.ok(out.subarray(0, 4096).equals(Buffer.alloc(4096)))
      assert.ok(out.subarray(4096, 12288).equals(bytes))
      assert.ok(out.subarray(12288).equals(Buffer.alloc(4096)))
      assert.equal(into[16384], 0xee, 'bytes past the length are left alone')
      // A hole-only read still clears the whole range.
      into.fill(0x55)
      assert.ok((await store.read(ref, 65536, 4096, { into })).equals(Buffer.alloc(4096)))
      await rejects(() => store.read(ref, 0, 8192, { into: Buffer.alloc(4096) }), 'InvalidRequest')
    })
  })
}
