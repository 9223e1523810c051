import assert from 'node:assert/strict'
import { randomFillSync } from 'node:crypto'
import { describe, it } from 'node:test'
import { extentHeader, readExtentStream } from './_image-stream.js'

/** The extents a stream cut into chunks of the given sizes yields (copied: the reader reuses its buffer). */
async function read(body: Buffer, cuts: number[], size: number): Promise<[number, Buffer][]> {
  async function* chunks() {
    let at = 0
    for (let i = 0; at < body.length; i++) {
      const n = cuts[i % cuts.length]!
      yield body.subarray(at, at + n)
      at += n
    }
  }
  const out: [number, Buffer][] = []
  for await (const e of readExtentStream(chunks(), size)) out.push([e.offset, Buffer.from(e.data)])
  return out
}

describe('the extent stream', () => {
  it('yields the same extents however the body is cut into chunks, headers split included', async () => {
    const size = 16 * 1024 * 1024
    /** A body of three extents, the middle one of `middle` bytes. */
    const stream = (middle: number) => {
      const extents: [number, Buffer][] = [
        [0, randomFillSync(Buffer.alloc(512))],
        [4096, randomFillSync(Buffer.alloc(middle))],
        [size - 1024, randomFillSync(Buffer.alloc(1024))],
      ]
      const body = Buffer.concat([
        ...extents.flatMap(([at, b]) => [extentHeader(at, b.length), b]),
        extentHeader(size, 0),
      ])
      return { extents, body }
    }
    // The largest frame (4 MiB) in whole, 64 KiB and odd chunks; byte by byte (a chunk boundary at every
    // place of every header) a 64 KiB frame does: millions of 1-byte chunks would prove nothing more.
    const largest = stream(4 * 1024 * 1024)
    const small = stream(64 * 1024)
    const runs: [typeof small, number[]][] = [
      [largest, [largest.body.length]],
      [largest, [65536]],
      [largest, [513, 15]],
      [small, [1]],
      [small, [7, 16, 3]],
    ]
    for (const [{ extents, body }, cuts] of runs) {
      const got = await read(body, cuts, size)
      assert.equal(got.length, extents.length, `cuts ${cuts}`)
      for (const [i, [at, b]] of extents.entries()) {
        assert.equal(got[i]![0], at)
        assert.ok(got[i]![1].equals(b), `extent ${i}, cuts ${cuts}`)
      }
    }
  })

  it('refuses a body that ends inside a frame or before the end frame', async () => {
    const frame = Buffer.concat([extentHeader(0, 512), Buffer.alloc(512, 1)])
    for (const body of [frame, frame.subarray(0, 100), frame.subarray(0, 8), Buffer.alloc(0)]) {
      await assert.rejects(
        read(body, [64], 4096),
        (err: { code?: string }) => err.code === 'ImageStreamInvalid',
      )
    }
  })
})
