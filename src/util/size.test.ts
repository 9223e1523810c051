import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formatBytes, parseSize } from './size.js'

describe('parseSize', () => {
  it('reads bytes and binary and decimal units', () => {
    assert.equal(parseSize('4096'), 4096)
    assert.equal(parseSize('512KiB'), 512 * 1024)
    assert.equal(parseSize('1GiB'), 1024 ** 3)
    assert.equal(parseSize('8TiB'), 8 * 1024 ** 4)
    assert.equal(parseSize('1.5GB'), 1.5e9)
    assert.equal(parseSize('2 m'), 2 * 1024 ** 2)
  })

  it('refuses what is not a size with InvalidSize', () => {
    for (const bad of ['', 'abc', '1XB', '-1', '0.3']) {
      assert.throws(
        () => parseSize(bad),
        (e: Error & { code?: string }) => e.code === 'InvalidSize',
        bad,
      )
    }
  })

  it('formatBytes is readable', () => {
    assert.equal(formatBytes(512), '512 B')
    assert.equal(formatBytes(1536), '1.50 KiB')
    assert.equal(formatBytes(1024 ** 3), '1.00 GiB')
  })
})
