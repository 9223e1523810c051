import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
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
