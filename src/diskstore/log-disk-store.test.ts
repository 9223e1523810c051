import assert from 'node:assert/strict'
import {
  appendFileSync,
  closeSync,
  cpSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { alignedBuffer, CairnError } from '../util/index.js'
import { LogDiskStore, type LogDiskStoreOptions } from './log-disk-store.js'
import type { DiskRef } from './types.js'

const MiB = 1024 * 1024
const ref: DiskRef = { account: 'acct1', container: 'disks', disk: 'os' }
const data = (n: number, fill: number) => Buffer.alloc(n, fill)

async function withStore(
  fn: (store: LogDiskStore, dir: string, reopen: () => Promise<LogDiskStore>) => Promise<void>,
  options: LogDiskStoreOptions = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ds-'))
  const opts = { compactIntervalMs: 0, ...options }
  let store = await LogDiskStore.open(dir, opts)
  try {
    await store.createAccount('acct1')
    await store.createContainer('acct1', 'disks')
    await store.createDisk(ref, { size: 8 * MiB })
    await fn(store, dir, async () => {
      await store.close()
      store = await LogDiskStore.open(dir, opts)
      return store
    })
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Asserts that `fn` throws a CairnError with `code`. */
async function rejects(fn: () => unknown, code: string): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (err: unknown) => err instanceof CairnError && err.code === code,
    `expected ${code}`,
  )
}

describe('LogDiskStore', () => {
  it('keeps durable writes sent to the device directly through overwrites, snapshots, compaction and reopening', async () => {
    await withStore(
      async (store, _dir, reopen) => {
        const rnd = (seed: number, n: number) => {
          const b = Buffer.alloc(n)
          for (let i = 0; i < n; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i)
          return b
        }
        const model = Buffer.alloc(8 * MiB)
        const write = async (seed: number, at: number, n: number, durable = true) => {
          const bytes = rnd(seed, n)
          await store.writePages(ref, at, bytes, { durable })
          bytes.copy(model, at)
        }
        // Direct (durable, 64 KiB+ in 4 KiB blocks), cached (not durable; too short) side by side.
        for (let i = 0; i < 8; i++) await write(i + 1, i * MiB, MiB)
        await write(20, 512 * 1024, 256 * 1024, false)
        await write(21, 3 * MiB + 512, 8192)
        const snap = await store.snapshot(ref)
        const atSnap = Buffer.from(model)
        for (let i = 0; i < 8; i += 2) await write(30 + i, i * MiB, MiB)
        const check = async (s: LogDiskStore) => {
          assert.deepEqual(await s.read(ref, 0, 8 * MiB), model)
          assert.deepEqual(s.readSync(ref, 0, 8 * MiB), model)
          assert.deepEqual(await s.read(ref, 0, 8 * MiB, { snapshot: snap.snapshot! }), atSnap)
          // A read into aligned memory, and one starting inside a direct write.
          const into = alignedBuffer(2 * MiB)
          await s.read(ref, MiB, 2 * MiB, { into })
          assert.deepEqual(into.subarray(0, 2 * MiB), model.subarray(MiB, 3 * MiB))
          assert.deepEqual(
            await s.read(ref, MiB + 4608, 70_000),
            model.subarray(MiB + 4608, MiB + 4608 + 70_000),
          )
        }
        await check(store)
        await store.deleteSnapshot(ref, snap.snapshot!)
        const { reclaimedBytes } = await store.compact()
        assert.ok(reclaimedBytes > 0, 'compaction reclaimed the overwritten writes')
        assert.deepEqual(await store.read(ref, 0, 8 * MiB), model)
        const again = await reopen()
        assert.deepEqual(await again.read(ref, 0, 8 * MiB), model)
        assert.deepEqual(again.readSync(ref, 0, 8 * MiB), model)
      },
      { segmentSize: 4 * MiB },
    )
  })

  it('after a power failure tore an earlier segment, refuses to open with advice, and repairLog cuts there and keeps the rest aside', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'cairn-ds-cut-'))
    try {
      const page = (i: number) => Buffer.alloc(8192, (i % 250) + 1)
      await withStore(
        async (store, dir) => {
          for (let i = 0; i < 40; i++) await store.writePages(ref, i * 8192, page(i))
          // What a power failure can leave: every record was synced, then one segment before the
          // last loses its tail (its writeback never happened) while later segments are on disk.
          cpSync(dir, copy, { recursive: true })
        },
        { segmentSize: 64 * 1024 },
      )
      const segments = readdirSync(copy)
        .filter((f) => f.startsWith('seg-'))
        .sort()
      assert.ok(segments.length >= 4, `only ${segments.length} segments`)
      const torn = join(copy, segments[1]!)
      const fd = openSync(torn, 'r+')
      ftruncateSync(fd, statSync(torn).size - 3000)
      closeSync(fd)
      await assert.rejects(
        LogDiskStore.open(copy, { compactIntervalMs: 0 }),
        (err: unknown) =>
          err instanceof CairnError && err.code === 'StoreCorrupt' && /--repair-disk-log/.test(err.message),
      )
      const repaired = await LogDiskStore.open(copy, { compactIntervalMs: 0, repairLog: true })
      let kept = 0
      try {
        // The log is cut at one place: the writes that survive are the first ones, in order.
        for (let i = 0; i < 40; i++) {
          const got = await repaired.read(ref, i * 8192, 8192)
          if (got.equals(page(i))) {
            assert.equal(kept, i, `write ${i} survived after a lost one`)
            kept++
          } else assert.ok(got.equals(Buffer.alloc(8192)), `write ${i} is neither there nor zeros`)
        }
        assert.ok(kept > 0 && kept < 40, `kept ${kept} of 40 writes`)
        await repaired.writePages(ref, 0, Buffer.alloc(8192, 0xee))
      } finally {
        await repaired.close()
      }
      const aside = readdirSync(copy).filter((f) => f.startsWith('damaged-'))
      assert.equal(aside.length, 1)
      assert.deepEqual(readdirSync(join(copy, aside[0]!)).sort(), segments.slice(1))
      // The repaired store opens as usual from now on.
      const again = await LogDiskStore.open(copy, { compactIntervalMs: 0 })
      try {
        assert.ok((await again.read(ref, 0, 8192)).equals(Buffer.alloc(8192, 0xee)))
        if (kept > 1) assert.ok((await again.read(ref, 8192, 8192)).equals(page(1)))
      } finally {
        await again.close()
      }
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })

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

  it('compaction reclaims overwritten data no snapshot sees and keeps the rest readable', async () => {
    await withStore(
      async (store, _dir, reopen) => {
        for (let i = 0; i < 8; i++) await store.writePages(ref, 0, data(MiB, i + 1), { durable: false })
        await store.writePages(ref, MiB, data(MiB, 42))
        const before = store.usage()
        const progress: number[] = []
        const { reclaimedBytes } = await store.compact({ onProgress: (p) => progress.push(p.bytesDone) })
        const after = store.usage()
        assert.ok(reclaimedBytes >= 5 * MiB, `reclaimed ${reclaimedBytes}`)
        assert.ok(after.segmentBytes < before.segmentBytes)
        assert.equal(after.liveBytes, 2 * MiB)
        assert.ok(progress.length > 0)
        const s = await reopen()
        assert.ok((await s.read(ref, 0, MiB)).equals(data(MiB, 8)))
        assert.ok((await s.read(ref, MiB, MiB)).equals(data(MiB, 42)))
      },
      { segmentSize: 2 * MiB + 4096 },
    )
  })

  it('opens after a torn record at the log tail and keeps everything before it', async () => {
    await withStore(async (store, dir, reopen) => {
      await store.writePages(ref, 0, data(4096, 5))
      await store.close()
      // Remove checkpoints so the log is replayed, then tear the tail.
      for (const f of readdirSync(dir)) if (f.startsWith('checkpoint-')) rmSync(join(dir, f))
      const seg = readdirSync(dir).filter((f) => f.startsWith('seg-'))[0]!
      appendFileSync(join(dir, seg), Buffer.from('CRNL\x01\x01\x00\x00garbage-that-is-not-a-record'))
      const s = await reopen()
      assert.ok((await s.read(ref, 0, 4096)).equals(data(4096, 5)))
      await s.writePages(ref, 4096, data(512, 6))
      const s2 = await reopen()
      assert.ok((await s2.read(ref, 4096, 512)).equals(data(512, 6)))
    })
  })

  it('drops a last segment a kill left without its header, so writes after the reopen survive the next one', async () => {
    await withStore(
      async (store, dir, reopen) => {
        await store.writePages(ref, 0, data(4096, 5))
        await store.close()
        // A kill in a segment roll, after the file was created and before its header was written.
        const last = readdirSync(dir)
          .filter((f) => f.startsWith('seg-'))
          .sort()
          .at(-1)!
        const next = `seg-${String(Number(last.slice(4, 10)) + 1).padStart(6, '0')}.log`
        writeFileSync(join(dir, next), Buffer.alloc(0))
        const s = await reopen()
        assert.ok(!readdirSync(dir).includes(next))
        await s.writePages(ref, 4096, data(4096, 6))
        await s.snapshot(ref)
        const s2 = await reopen()
        assert.ok((await s2.read(ref, 0, 8192)).equals(Buffer.concat([data(4096, 5), data(4096, 6)])))
        assert.equal(s2.listSnapshots(ref).length, 1)
      },
      { segmentSize: 64 * 1024 },
    )
  })

  it('refuses to open, changing nothing, when a segment before the last is damaged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ds-'))
    try {
      const store = await LogDiskStore.open(dir, { compactIntervalMs: 0, segmentSize: 64 * 1024 })
      await store.createAccount('acct1')
      await store.createContainer('acct1', 'disks')
      await store.createDisk(ref, { size: MiB })
      for (let i = 0; i < 8; i++) await store.writePages(ref, i * 32768, data(32768, i + 1))
      await store.close()
      for (const f of readdirSync(dir)) if (f.startsWith('checkpoint-')) rmSync(join(dir, f))
      const segs = readdirSync(dir).filter((f) => f.startsWith('seg-'))
      assert.ok(segs.length > 2)
      const first = join(dir, segs.sort()[0]!)
      const bytes = readFileSync(first)
      bytes[bytes.length - 100]! ^= 0xff
      writeFileSync(first, bytes)
      await rejects(() => LogDiskStore.open(dir, { compactIntervalMs: 0 }), 'StoreCorrupt')
      assert.deepEqual(
        readdirSync(dir)
          .filter((f) => f.startsWith('seg-'))
          .sort(),
        segs.sort(),
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('falls back to the previous checkpoint when the newest is damaged', async () => {
    await withStore(async (store, dir, reopen) => {
      await store.writePages(ref, 0, data(512, 1))
      let s = await reopen()
      await s.writePages(ref, 512, data(512, 2))
      s = await reopen()
      const ckpts = readdirSync(dir)
        .filter((f) => f.startsWith('checkpoint-'))
        .sort()
      assert.equal(ckpts.length, 2)
      const newest = join(dir, ckpts[1]!)
      const bytes = readFileSync(newest)
      bytes[bytes.length - 3]! ^= 0xff
      writeFileSync(newest, bytes)
      s = await reopen()
      assert.ok((await s.read(ref, 0, 1024)).equals(Buffer.concat([data(512, 1), data(512, 2)])))
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
})
