import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { dataRanges, forEachDataRun } from './_raw-file.js'

const runs = (buf: Buffer) => {
  const out: [number, number][] = []
  forEachDataRun(buf, buf.length, (s, e) => out.push([s, e]))
  return out
}

describe('raw image helpers', () => {
  it('finds runs of non-zero pages, including pages whose data starts late', () => {
    const buf = Buffer.alloc(8 * 512)
    buf[512 + 511] = 1
    buf[2 * 512] = 1
    buf[5 * 512 + 8] = 1
    assert.deepEqual(runs(buf), [
      [512, 1536],
      [2560, 3072],
    ])
    assert.deepEqual(runs(Buffer.alloc(4096)), [])
    assert.deepEqual(runs(Buffer.alloc(1024, 1)), [[0, 1024]])
  })

  it('lists the data ranges of a sparse file, page-aligned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-raw-'))
    try {
      const path = join(dir, 'sparse.raw')
      const fd = openSync(path, 'w')
      writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 8 * 1024 * 1024)
      writeSync(fd, Buffer.alloc(100, 1), 0, 100, 32 * 1024 * 1024 - 100)
      closeSync(fd)
      const ranges = await dataRanges(path, 32 * 1024 * 1024)
      assert.ok(ranges !== undefined, 'qemu-img map (from qemu-utils) answers')
      assert.ok(ranges.length >= 2)
      assert.ok(ranges.every((r) => r.start % 512 === 0 && r.end % 512 === 0))
      assert.ok(ranges.some((r) => r.start <= 8 * 1024 * 1024 && r.end >= 8 * 1024 * 1024 + 4096))
      assert.equal(ranges[ranges.length - 1]!.end, 32 * 1024 * 1024)
      const covered = ranges.reduce((n, r) => n + r.end - r.start, 0)
      assert.ok(covered < 1024 * 1024, 'the holes are skipped')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
