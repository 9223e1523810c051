import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { crc64 } from './_crc64.js'

/** CRC-64/NVME one bit at a time, with BigInt: slow, and plainly the definition. */
function bitwise(data: Uint8Array): bigint {
  const poly = 0x9a6c9329ac4bc9b5n
  let crc = 0xffffffffffffffffn
  for (const byte of data) {
    crc ^= BigInt(byte)
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n
  }
  return crc ^ 0xffffffffffffffffn
}

describe('crc64', () => {
  it('matches the CRC-64/NVME check value for "123456789"', () => {
    assert.equal(crc64(Buffer.from('123456789')).readBigUInt64LE(0), 0xae8b14860a799888n)
  })

  it('is all zeros for an empty input', () => {
    assert.equal(crc64(new Uint8Array(0)).readBigUInt64LE(0), 0n)
  })

  it('gives the bit-at-a-time answer for every length and alignment (the sliced loop and its tail)', () => {
    const data = Buffer.alloc(300)
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff
    for (const offset of [0, 1, 2, 3, 4, 8]) {
      for (let length = 0; length <= 80; length++) {
        const slice = data.subarray(offset, offset + length)
        assert.equal(crc64(slice).readBigUInt64LE(0), bitwise(slice), `offset ${offset} length ${length}`)
      }
    }
    const big = Buffer.alloc(64 * 1024 + 13)
    for (let i = 0; i < big.length; i += 7) big[i] = i & 0xff
    assert.equal(crc64(big).readBigUInt64LE(0), bitwise(big))
  })

  it('changes when one bit of a page changes', () => {
    const page = Buffer.alloc(512, 7)
    const before = crc64(page).toString('base64')
    page[100]! ^= 1
    assert.notEqual(crc64(page).toString('base64'), before)
  })
})
