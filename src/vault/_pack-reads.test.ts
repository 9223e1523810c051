import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ChunkKind } from './_chunk-codec.js'
import type { ChunkLocation } from './_chunk-index.js'
import { planPackReads } from './_pack-reads.js'

const at = (pack: string, offset: number, length: number): ChunkLocation => ({
  pack,
  offset,
  length,
  rawLength: length,
  kind: ChunkKind.data,
})

describe('planPackReads', () => {
  it('reads the blobs of one pack that lie side by side with one read, in the order they were asked for', () => {
    const reads = planPackReads([at('p1', 100, 50), at('p1', 0, 100), at('p1', 150, 10)])
    assert.deepEqual(reads, [
      {
        pack: 'p1',
        offset: 0,
        length: 160,
        chunks: [
          { at: 1, offset: 0, length: 100 },
          { at: 0, offset: 100, length: 50 },
          { at: 2, offset: 150, length: 10 },
        ],
      },
    ])
  })

  it('spans a small gap, but splits at a wide gap, at the size bound and between packs', () => {
    const reads = planPackReads(
      [at('a', 0, 10), at('a', 15, 10), at('a', 100, 10), at('b', 0, 10), at('a', 110, 30)],
      { gap: 5, span: 35 },
    )
    assert.deepEqual(
      reads.map((r) => [r.pack, r.offset, r.length, r.chunks.map((c) => c.at)]),
      [
        ['a', 0, 25, [0, 1]],
        ['a', 100, 10, [2]],
        ['b', 0, 10, [3]],
        ['a', 110, 30, [4]],
      ],
    )
  })

  it('reads a blob asked for twice once, and each read covers every blob it lists', () => {
    const locs = [at('p', 0, 10), at('p', 0, 10), at('q', 40, 4)]
    const reads = planPackReads(locs)
    assert.equal(reads.length, 2)
    for (const r of reads)
      for (const c of r.chunks) {
        const loc = locs[c.at]!
        assert.equal(r.offset + c.offset, loc.offset)
        assert.ok(c.offset + c.length <= r.length)
      }
  })
})
