import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { crc64, crc64Implementation, crc64Wasm } from './_crc64.js'

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

  it('gives the bit-at-a-time answer for every length and alignment (across the WebAssembly copy boundaries)', () => {
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

describe('crc64 by the native addon and by WebAssembly', () => {
  it('npm run build compiled the native addon wherever a C compiler is installed', () => {
    const cc = ['cc', 'gcc', 'clang'].some(
      (c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0,
    )
    if (cc && process.env.CAIRN_CRC64 !== 'wasm') assert.notEqual(crc64Implementation, 'wasm')
  })

  it('both give the bit-at-a-time answer across the folding boundaries (16, 128 and 256 bytes)', () => {
    const data = randomBytes(4096 + 64)
    const lengths = [255, 256, 257, 271, 272, 383, 384, 385, 511, 512, 1000, 1024, 1040, 2047, 4096]
    for (const offset of [0, 1, 5, 8, 15, 16, 63]) {
      for (const length of lengths) {
        const slice = data.subarray(offset, offset + length)
        const expected = bitwise(slice)
        assert.equal(crc64(slice).readBigUInt64LE(0), expected, `offset ${offset} length ${length}`)
        assert.equal(crc64Wasm(slice).readBigUInt64LE(0), expected, `wasm: offset ${offset} length ${length}`)
      }
    }
  })

  it('agree on 4 MiB bodies of random, zero and all-ones bytes', () => {
    for (const body of [randomBytes(4 << 20), Buffer.alloc(4 << 20), Buffer.alloc(4 << 20, 0xff)]) {
      assert.deepEqual(crc64(body), crc64Wasm(body))
      assert.deepEqual(crc64(body.subarray(3, body.length - 5)), crc64Wasm(body.subarray(3, body.length - 5)))
    }
  })
})

describe('crc64 of shared memory', () => {
  it('sums a body held in a SharedArrayBuffer (the page buffers) like the same bytes in a Buffer', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(1 << 20))
    for (let i = 0; i < shared.length; i += 3) shared[i] = (i * 31) & 0xff
    const view = shared.subarray(4096, 4096 + 300 * 1024)
    assert.deepEqual(crc64(view), crc64(Buffer.from(view)))
    assert.equal(crc64(view.subarray(0, 4096)).readBigUInt64LE(0), bitwise(view.subarray(0, 4096)))
  })
})
