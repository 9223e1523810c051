import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WriteTable } from './_write-table.js'

describe('WriteTable', () => {
  it('splits a write into pieces when compaction relocates part of it', () => {
    const t = new WriteTable()
    t.add(7, 3, 1000)
    t.relocate(7, 4096, 8192, 9, 20)
    const seen: [number, number, number, number][] = []
    assert.ok(t.resolve(7, 0, 16384, (seg, off, len, into) => seen.push([seg, off, len, into])))
    assert.deepEqual(seen, [
      [3, 1000, 4096, 0],
      [9, 20, 8192, 4096],
      [3, 1000 + 12288, 4096, 12288],
    ])
  })

  it('forgets the pieces of an earlier use of a write id that is added again', () => {
    const t = new WriteTable()
    t.relocate(5, 512, 512, 4, 100)
    t.add(5, 6, 200)
    assert.deepEqual(
      [...t.entries()],
      [[5, [{ at: 0, length: Number.POSITIVE_INFINITY, segment: 6, offset: 200 }]]],
    )
  })
})
