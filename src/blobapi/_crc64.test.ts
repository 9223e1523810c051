import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { crc64 } from './_crc64.js'

describe('crc64', () => {
  it('matches the CRC-64/NVME check value for "123456789"', () => {
    assert.equal(crc64(Buffer.from('123456789')).readBigUInt64LE(0), 0xae8b14860a799888n)
  })

  it('is all zeros for an empty input', () => {
    assert.equal(crc64(new Uint8Array(0)).readBigUInt64LE(0), 0n)
  })

  it('changes when one bit of a page changes', () => {
    const page = Buffer.alloc(512, 7)
    const before = crc64(page).toString('base64')
    page[100]! ^= 1
    assert.notEqual(crc64(page).toString('base64'), before)
  })
})
