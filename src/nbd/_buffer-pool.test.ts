import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BufferPool } from './_buffer-pool.js'

describe('BufferPool', () => {
  it('hands back a buffer given back, for the same size only', () => {
    const pool = new BufferPool(1024 * 1024)
    const a = pool.take(64 * 1024)
    assert.equal(a.length, 64 * 1024)
    pool.give(a)
    assert.equal(pool.kept, 64 * 1024)
    assert.notEqual(pool.take(32 * 1024), a)
    assert.equal(pool.take(64 * 1024), a)
    assert.equal(pool.kept, 0)
    assert.notEqual(pool.take(64 * 1024), a)
  })

  it('never keeps more than its capacity and makes room for the size given last', () => {
    const pool = new BufferPool(256 * 1024)
    const small = [pool.take(64 * 1024), pool.take(64 * 1024), pool.take(64 * 1024)]
    for (const b of small) pool.give(b)
    assert.equal(pool.kept, 192 * 1024)
    const big = pool.take(128 * 1024)
    pool.give(big)
    assert.ok(pool.kept <= 256 * 1024)
    assert.equal(pool.take(128 * 1024), big)
    pool.give(pool.take(512 * 1024))
    assert.ok(pool.kept <= 256 * 1024)
  })

  it('gives buffers of their own memory, not views of a shared slab', () => {
    const pool = new BufferPool(1024 * 1024)
    const a = pool.take(100)
    const b = pool.take(100)
    assert.notEqual(a.buffer, b.buffer)
    assert.equal(a.byteOffset, 0)
  })
})
