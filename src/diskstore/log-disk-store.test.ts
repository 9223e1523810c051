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
  it('keeps durable writes and bulk ones (direct, not durable) sent to the device directly through overwrites, snapshots, compaction and reopening', async () => {
    await withStore(
      async (store, _dir, reopen) => {
        const rnd = (seed: number, n: number) => {
          const b = Buffer.alloc(n)
          for (let i = 0; i < n; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i)
          return b
        }
        const model = Buffer.alloc(8 * MiB)
        const write = async (
          seed: number,
          at: number,
          n: number,
          durable = true,
          direct: boolean | undefined = undefined,
        ) => {
          const bytes = rnd(seed, n)
          await store.writePages(ref, at, bytes, { durable, ...(direct === undefined ? {} : { direct }) })
          bytes.copy(model, at)
        }
        // Direct (durable, 64 KiB+ in 4 KiB blocks), cached (not durable; too short) side by side.
        for (let i = 0; i < 8; i++) await write(i + 1, i * MiB, MiB)
        await write(20, 512 * 1024, 256 * 1024, false)
        await write(21, 3 * MiB + 512, 8192)
        const snap = await store.snapshot(ref)
        const atSnap = Buffer.from(model)
        for (let i = 0; i < 8; i += 2) await write(30 + i, i * MiB, MiB)
        // Bulk writes (geo-replication's): past the cache without waiting for durability, two at once,
        // made durable by flush().
        await Promise.all([
          write(40, 5 * MiB, MiB, false, true),
          write(41, 6 * MiB + 4096, 512 * 1024, false, true),
        ])
        await store.flush()
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
})
