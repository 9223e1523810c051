import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type DiskRef, LogDiskStore, type LogDiskStoreOptions } from '../src/diskstore/index.js'
import { CairnError, type Logger } from '../src/util/index.js'
import { mountSmallFs, smallFsUnavailable } from './_small-fs.js'

const MiB = 1024 * 1024
const ref: DiskRef = { account: 'acct1', container: 'disks', disk: 'os' }
const skip = smallFsUnavailable()

/** A logger that keeps every line, for counting them. */
function recordingLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = []
  const make = (): Logger => ({
    debug: (msg) => lines.push({ level: 'debug', msg }),
    info: (msg) => lines.push({ level: 'info', msg }),
    warn: (msg) => lines.push({ level: 'warn', msg }),
    error: (msg) => lines.push({ level: 'error', msg }),
    child: () => make(),
  })
  return Object.assign(make(), { lines })
}

async function isStoreFull(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof CairnError && err.code === 'StoreFull')
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function newStore(dir: string, options: LogDiskStoreOptions): Promise<LogDiskStore> {
  const store = await LogDiskStore.open(dir, options)
  await store.createAccount('acct1')
  await store.createContainer('acct1', 'disks')
  await store.createDisk(ref, { size: 64 * MiB })
  return store
}

describe('disk store on a full file system', { skip }, () => {
  it('a write that fails for want of space is never visible, before or after a reopen', async () => {
    const fs = mountSmallFs(48)
    let store: LogDiskStore | undefined
    try {
      const dir = join(fs.dir, 'disks')
      const options = { compactIntervalMs: 0, segmentSize: 8 * MiB }
      store = await newStore(dir, options)
      const before = randomBytes(2 * MiB)
      await store.writePages(ref, 0, before)
      fs.fill()
      // The store measured the free space at open: these appends reach the full file system.
      const failed = [
        store.writePages(ref, 0, Buffer.alloc(2 * MiB, 0x22)),
        store.writePages(ref, MiB, Buffer.alloc(MiB, 0x33), { durable: false }),
        store.writePages(ref, 4 * MiB, Buffer.alloc(MiB, 0x44)),
      ]
      for (const p of failed) await isStoreFull(p)
      assert.deepEqual(await store.read(ref, 0, 2 * MiB), before, 'the old bytes, before a restart')
      assert.deepEqual(await store.read(ref, 4 * MiB, MiB), Buffer.alloc(MiB), 'still a hole')
      assert.equal(store.health().state, 'full')
      await isStoreFull(store.writePages(ref, 0, Buffer.alloc(MiB, 0x55)))
      await store.close()
      store = await LogDiskStore.open(dir, options)
      assert.deepEqual(await store.read(ref, 0, 2 * MiB), before, 'the old bytes, after a restart')
      assert.deepEqual(await store.read(ref, 4 * MiB, MiB), Buffer.alloc(MiB))
      fs.unfill()
      const after = randomBytes(MiB)
      await store.writePages(ref, 0, after)
      await store.close()
      store = await LogDiskStore.open(dir, options)
      assert.deepEqual(await store.read(ref, 0, MiB), after)
      assert.deepEqual(await store.read(ref, MiB, MiB), before.subarray(MiB))
    } finally {
      await store?.close()
      fs.dispose()
    }
  })

  it('a write answered without waiting for durability is never one a failure before it cuts away', async () => {
    const fs = mountSmallFs(48)
    let store: LogDiskStore | undefined
    try {
      const dir = join(fs.dir, 'disks')
      const options = { compactIntervalMs: 0, segmentSize: 8 * MiB }
      store = await newStore(dir, options)
      writeFileSync(join(fs.dir, 'gap'), Buffer.alloc(256 * 1024, 1))
      fs.fill()
      // 256 KiB free: the first write does not fit, the small one after it would.
      rmSync(join(fs.dir, 'gap'))
      const big = store.writePages(ref, 8 * MiB, Buffer.alloc(MiB, 0x11))
      const small = store.writePages(ref, 12 * MiB, Buffer.alloc(4096, 0x22), { durable: false })
      await isStoreFull(big)
      await isStoreFull(small)
      assert.deepEqual(await store.read(ref, 12 * MiB, 4096), Buffer.alloc(4096))
      await store.close()
      store = await LogDiskStore.open(dir, options)
      assert.deepEqual(await store.read(ref, 12 * MiB, 4096), Buffer.alloc(4096))
    } finally {
      await store?.close()
      fs.dispose()
    }
  })

  it('warns once when the free space falls below the warning level, and keeps writing', async () => {
    const fs = mountSmallFs(32)
    const logger = recordingLogger()
    let store: LogDiskStore | undefined
    try {
      const dir = join(fs.dir, 'disks')
      store = await newStore(dir, { compactIntervalMs: 0, lowSpaceBytes: 16 * MiB, logger })
      const nearly = () => logger.lines.filter((l) => l.msg === 'disk store file system is nearly full')
      assert.equal(nearly().length, 0)
      for (let i = 0; i < 20; i++) await store.writePages(ref, i * MiB, Buffer.alloc(MiB, i + 1))
      assert.equal(nearly().length, 1)
      assert.equal(nearly()[0]!.level, 'warn')
      assert.equal(store.health().state, 'low')
      assert.ok(!logger.lines.some((l) => l.msg.startsWith('disk store is full')))
    } finally {
      await store?.close()
      fs.dispose()
    }
  })

  it('deletes work while full, compaction gives the space back and writes resume on their own; the episode is logged once', async () => {
    const fs = mountSmallFs(64)
    const logger = recordingLogger()
    let store: LogDiskStore | undefined
    try {
      const dir = join(fs.dir, 'disks')
      const options = { compactIntervalMs: 100, segmentSize: MiB, reserveBytes: 4 * MiB, logger }
      store = await newStore(dir, options)
      for (let i = 0; i < 12; i++) await store.writePages(ref, i * MiB, Buffer.alloc(MiB, i + 1))
      const snap = await store.snapshot(ref)
      const kept = randomBytes(MiB)
      for (let i = 0; i < 12; i++)
        await store.writePages(ref, i * MiB, i === 0 ? kept : Buffer.alloc(MiB, 0xee))
      fs.fill()
      for (let i = 0; i < 4; i++) await isStoreFull(store.writePages(ref, 20 * MiB, Buffer.alloc(MiB, 7)))
      await isStoreFull(store.snapshot(ref))
      assert.equal(store.health().state, 'full')
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('disk store is full')).length, 1)
      // The snapshot held 12 MiB that nothing else sees: deleting it frees them once compaction ran.
      await store.deleteSnapshot(ref, snap.snapshot!)
      await until('the store has space again', () => store!.health().state !== 'full')
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('disk store has space again')).length, 1)
      const fresh = randomBytes(MiB)
      await store.writePages(ref, 20 * MiB, fresh)
      assert.deepEqual(await store.read(ref, 0, MiB), kept)
      assert.deepEqual(await store.read(ref, 20 * MiB, MiB), fresh)

      // Full again, by someone else: a disk can still be deleted, and a write then fits.
      fs.fill('filler2')
      await isStoreFull(store.writePages(ref, 21 * MiB, Buffer.alloc(MiB, 9)))
      await store.deleteDisk(ref)
      await until('the store has space again', () => store!.health().state !== 'full')
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('disk store is full')).length, 2)
      await store.createDisk(ref, { size: 8 * MiB })
      await store.writePages(ref, 0, fresh)
      await store.close()
      store = await LogDiskStore.open(dir, options)
      assert.deepEqual(await store.read(ref, 0, MiB), fresh)
    } finally {
      await store?.close()
      fs.dispose()
    }
  })
})

describe('automatic compaction', () => {
  it('a store reopened many times with churn between reopenings keeps its segments within a bound of its live data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-churn-'))
    const segmentSize = 256 * 1024
    const options = { compactIntervalMs: 20, segmentSize }
    try {
      let last = Buffer.alloc(0)
      for (let session = 0; session < 30; session++) {
        const store = session === 0 ? await newStore(dir, options) : await LogDiskStore.open(dir, options)
        try {
          // Less than half a segment per session: the old trigger (appends since start) never fired.
          for (let i = 0; i < 3; i++) {
            last = randomBytes(32 * 1024)
            await store.writePages(ref, i * 32 * 1024, last)
          }
          await new Promise((r) => setTimeout(r, 120))
        } finally {
          await store.close()
        }
      }
      const store = await LogDiskStore.open(dir, { ...options, compactIntervalMs: 0 })
      try {
        const u = store.usage()
        assert.equal(u.liveBytes, 96 * 1024)
        assert.ok(
          u.segmentBytes <= 2 * u.liveBytes + 3 * segmentSize,
          `segments hold ${u.segmentBytes} bytes for ${u.liveBytes} live bytes`,
        )
        assert.deepEqual(await store.read(ref, 64 * 1024, 32 * 1024), last)
      } finally {
        await store.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
