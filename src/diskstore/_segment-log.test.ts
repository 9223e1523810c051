import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ALIGN, alignedBuffer } from '../util/index.js'
import { RECORD_HEADER_SIZE, RecordType, SegmentLog } from './_segment-log.js'

const META = Buffer.from('meta-bytes')

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-seglog-'))
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }))
}

/** Every record of a freshly opened log, as type and data bytes. */
async function readBack(dir: string): Promise<{ type: number; data: Buffer }[]> {
  const log = SegmentLog.open(dir, 1024 * 1024)
  const out: { type: number; data: Buffer }[] = []
  for (const rec of log.records({ segment: 0, offset: 0 })) {
    const data = Buffer.alloc(rec.dataLength)
    log.read(rec.segment, rec.dataOffset, data, 0, rec.dataLength)
    out.push({ type: rec.type, data })
  }
  await log.close()
  return out
}

describe('SegmentLog background appends', () => {
  it('serves the bytes of a record from memory while its write is on its way', () =>
    withDir(async (dir) => {
      const log = SegmentLog.open(dir, 64 * 1024 * 1024)
      const data = randomBytes(256 * 1024)
      const rec = log.append(RecordType.write, META, data, { background: true })
      // Before the thread pool had a chance: the whole record, including its header, reads back.
      const now = Buffer.alloc(data.length)
      log.read(rec.segment, rec.dataOffset, now, 0, data.length)
      assert.deepEqual(now, data)
      const straddling = Buffer.alloc(RECORD_HEADER_SIZE + META.length + 100)
      log.read(rec.segment, rec.offset, straddling, 0, straddling.length)
      assert.deepEqual(straddling.subarray(RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + META.length), META)
      assert.deepEqual(straddling.subarray(RECORD_HEADER_SIZE + META.length), data.subarray(0, 100))
      await rec.written
      const later = Buffer.alloc(data.length)
      log.read(rec.segment, rec.dataOffset, later, 0, data.length)
      assert.deepEqual(later, data)
      await log.close()
    }))

  it('reads a range spanning written and pending records in order', () =>
    withDir(async (dir) => {
      const log = SegmentLog.open(dir, 64 * 1024 * 1024)
      const first = log.append(RecordType.write, META, Buffer.alloc(5000, 1))
      const second = log.append(RecordType.write, META, Buffer.alloc(7000, 2), { background: true })
      const third = log.append(RecordType.write, META, Buffer.alloc(3000, 3))
      const all = Buffer.alloc(third.end - first.offset)
      log.read(first.segment, first.offset, all, 0, all.length)
      await second.written
      const expected = Buffer.alloc(all.length)
      log.read(first.segment, first.offset, expected, 0, expected.length)
      assert.deepEqual(all, expected)
      assert.equal(all[second.dataOffset - first.offset], 2)
      await log.close()
    }))

  it('makes background records durable, in order, before durable() resolves', () =>
    withDir(async (dir) => {
      const log = SegmentLog.open(dir, 1024 * 1024)
      const pieces = Array.from({ length: 12 }, (_, i) => Buffer.alloc(200 * 1024, i + 1))
      for (const [i, p] of pieces.entries()) {
        if (i % 3 === 0) log.append(RecordType.clear, META)
        else log.append(RecordType.write, META, p, { background: true })
      }
      await log.durable()
      const back = await readBack(dir)
      assert.equal(back.length, 12)
      for (const [i, r] of back.entries()) {
        if (i % 3 === 0) assert.equal(r.type, RecordType.clear)
        else assert.deepEqual(r.data, pieces[i])
      }
      await log.close()
    }))

  it('keeps a removed segment open until the writes and the fsync using it are done', () =>
    withDir(async (dir) => {
      const log = SegmentLog.open(dir, 64 * 1024 * 1024)
      const old = log.append(RecordType.write, META, randomBytes(1024 * 1024), { background: true })
      log.rollNow()
      const kept = log.append(RecordType.write, META, randomBytes(4096), { background: true })
      const durable = log.durable()
      // Compaction removes a segment in the same turn in which a group commit may have started.
      log.removeSegment(old.segment)
      await durable
      await old.written
      await kept.written
      assert.deepEqual(log.segments(), [kept.segment])
      await log.close()
    }))

  it('writes pending records itself when synced at once (checkpoint)', () =>
    withDir(async (dir) => {
      const log = SegmentLog.open(dir, 64 * 1024 * 1024)
      const data = randomBytes(512 * 1024)
      log.append(RecordType.write, META, data, { background: true })
      log.syncNow()
      const back = await readBack(dir)
      assert.equal(back.length, 1)
      assert.deepEqual(back[0]?.data, data)
      await log.close()
    }))
})

describe('SegmentLog direct appends', () => {
  /** A log in `dir` with a small record first, so the next one starts off any 4 KiB boundary. */
  const openWithOffset = (dir: string) => {
    const log = SegmentLog.open(dir, 64 * 1024 * 1024)
    log.append(RecordType.meta, Buffer.from('{"op":"x"}'))
    return log
  }

  it('puts a direct record’s data on a 4 KiB boundary of the file and reads it back, also after reopening', () =>
    withDir(async (dir) => {
      const log = openWithOffset(dir)
      const data = randomBytes(1024 * 1024)
      const rec = log.append(RecordType.write, META, data, { background: true, direct: true })
      assert.equal(rec.dataOffset % ALIGN, 0)
      assert.ok(rec.meta.length > META.length, 'the meta is padded')
      assert.deepEqual(rec.meta.subarray(0, META.length), META)
      assert.ok(rec.meta.subarray(META.length).every((b) => b === 0))
      // While on its way (from memory), then from the device, through both read paths.
      const now = Buffer.alloc(data.length)
      log.read(rec.segment, rec.dataOffset, now, 0, data.length)
      assert.deepEqual(now, data)
      await rec.written
      const later = Buffer.alloc(data.length)
      const pending = log.readLater(rec.segment, rec.dataOffset, later, 0, data.length)
      assert.ok(pending !== null, 'the aligned data is read on the thread pool')
      await pending
      assert.deepEqual(later, data)
      const into = alignedBuffer(data.length)
      await log.readLater(rec.segment, rec.dataOffset, into, 0, data.length)
      assert.deepEqual(into.subarray(0, data.length), data)
      await log.durable()
      await log.close()
      const back = await readBack(dir)
      assert.equal(back.length, 2)
      assert.deepEqual(back[1]?.data, data)
    }))

  it('keeps short or unaligned data in the cache, as a plain background append', () =>
    withDir(async (dir) => {
      const log = openWithOffset(dir)
      const short = log.append(RecordType.write, META, randomBytes(32 * 1024), {
        background: true,
        direct: true,
      })
      const odd = log.append(RecordType.write, META, randomBytes(100_000), { background: true, direct: true })
      for (const rec of [short, odd]) {
        assert.equal(rec.meta.length, META.length)
        assert.equal(rec.dataOffset, rec.offset + RECORD_HEADER_SIZE + META.length)
      }
      await Promise.all([short.written, odd.written])
      await log.close()
    }))

  it('gives the same answers on a memory file system (tmpfs)', async (t) => {
    if (!existsSync('/dev/shm')) return t.skip('no /dev/shm here')
    const dir = mkdtempSync(join('/dev/shm', 'cairn-seglog-'))
    try {
      const log = openWithOffset(dir)
      const data = randomBytes(256 * 1024)
      const rec = log.append(RecordType.write, META, data, { background: true, direct: true })
      await rec.written
      const back = Buffer.alloc(data.length)
      const pending = log.readLater(rec.segment, rec.dataOffset, back, 0, data.length)
      await pending
      assert.deepEqual(back, data)
      await log.durable()
      await log.close()
      assert.deepEqual((await readBack(dir))[1]?.data, data)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps a removed segment open until a read on the thread pool is done', () =>
    withDir(async (dir) => {
      const log = openWithOffset(dir)
      const data = randomBytes(512 * 1024)
      const rec = log.append(RecordType.write, META, data, { background: true, direct: true })
      await rec.written
      await log.durable()
      log.rollNow()
      const back = Buffer.alloc(data.length)
      const pending = log.readLater(rec.segment, rec.dataOffset, back, 0, data.length)
      log.removeSegment(rec.segment)
      await pending
      assert.deepEqual(back, data)
      await log.close()
    }))
})
