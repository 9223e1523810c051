import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { crc32 } from './_crc32.js'

describe('crc32', () => {
  it('gives the values of zlib.crc32, also when continued across pieces', () => {
    for (const size of [1, 15, 16, 63, 64, 4096, 65_537, 1 << 20]) {
      const data = randomBytes(size)
      assert.equal(crc32(data), zlibCrc32(data))
      const cut = Math.floor(size / 3)
      assert.equal(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), zlibCrc32(data))
      assert.equal(crc32(data, 0xdeadbeef), zlibCrc32(data, 0xdeadbeef))
    }
  })

  it('leaves the value unchanged for an empty piece, as zlib.crc32 does', () => {
    const empty = Buffer.alloc(0)
    assert.equal(crc32(empty), zlibCrc32(empty))
    assert.equal(crc32(empty, 0xdeadbeef), zlibCrc32(empty, 0xdeadbeef))
    assert.equal(crc32(Buffer.alloc(64).subarray(9, 9), 7), 7)
  })
})
