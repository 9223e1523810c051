import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { PIECE, sendPieces } from './_send-pieces.js'

/** A source of `size` bytes where byte i is (i * 7 + i / 4093) & 255, read into the buffer given. */
function source(size: number, failAt = -1) {
  const byte = (i: number) => (i * 7 + Math.floor(i / 4093)) & 255
  const read = async (at: number, length: number, into: Buffer) => {
    await new Promise((r) => setImmediate(r))
    if (at + length > size) throw new Error(`read past the end: ${at}+${length}`)
    if (failAt >= at && failAt < at + length) throw new Error(`cannot read at ${failAt}`)
    for (let i = 0; i < length; i++) into[i] = byte(at + i)
    return into.subarray(0, length)
  }
  const expect = (start: number, end: number) => {
    const out = Buffer.alloc(end - start)
    for (let i = start; i < end; i++) out[i - start] = byte(i)
    return out
  }
  return { read, expect }
}

/** A writable that takes its time (a slow socket), keeping copies of what it was given. */
function slowSink() {
  const parts: Buffer[] = []
  const out = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      parts.push(Buffer.from(chunk))
      setTimeout(done, 2)
    },
  })
  return { out, bytes: () => Buffer.concat(parts) }
}

describe('sendPieces', () => {
  it('writes every byte of a range over several pieces in order, two answers at once, through backpressure', async () => {
    const { read, expect } = source(5 * PIECE)
    const a = slowSink()
    const b = slowSink()
    await Promise.all([
      sendPieces(a.out, 12_345, 3 * PIECE + 99, read),
      sendPieces(b.out, PIECE - 1, 5 * PIECE, read),
    ])
    assert.ok(a.bytes().equals(expect(12_345, 3 * PIECE + 99)))
    assert.ok(b.bytes().equals(expect(PIECE - 1, 5 * PIECE)))
    assert.equal(a.out.writableEnded && b.out.writableEnded, true)
  })

  it('a failed read destroys the writable with its error after the bytes before it', async () => {
    const { read, expect } = source(4 * PIECE, 2 * PIECE + 10)
    const sink = slowSink()
    const destroyedWith = new Promise<Error>((r) => sink.out.once('error', r))
    await assert.rejects(sendPieces(sink.out, 0, 4 * PIECE, read), /cannot read at \d+/)
    assert.match((await destroyedWith).message, /cannot read at \d+/)
    assert.equal(sink.out.destroyed, true)
    assert.ok(
      expect(0, 2 * PIECE)
        .subarray(0, sink.bytes().length)
        .equals(sink.bytes()),
    )
  })

  it('stops reading when the writable is closed by its reader', async () => {
    let reads = 0
    const { read } = source(64 * PIECE)
    const sink = slowSink()
    const sent = sendPieces(sink.out, 0, 64 * PIECE, (at, length, into) => {
      reads++
      if (reads === 3) setImmediate(() => sink.out.destroy())
      return read(at, length, into)
    })
    await sent
    assert.ok(reads < 8, `${reads} pieces read after the writable closed`)
  })
})
