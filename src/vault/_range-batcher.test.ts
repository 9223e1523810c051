import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RangeBatcher } from './_range-batcher.js'
import type { ObjectRange } from './vault-backend.js'

/** A fake remote: answers each range with its name and offset repeated, records the calls in flight. */
function remote(fail?: (r: ObjectRange) => boolean) {
  const calls: ObjectRange[][] = []
  let inFlight = 0
  let most = 0
  const release: (() => void)[] = []
  const getRanges = async (ranges: readonly ObjectRange[]): Promise<Buffer[]> => {
    calls.push([...ranges])
    most = Math.max(most, ++inFlight)
    await new Promise<void>((r) => release.push(r))
    inFlight--
    if (ranges.some((r) => fail?.(r))) throw new Error('the remote failed')
    return ranges.map((r) => Buffer.alloc(r.length, `${r.name}@${r.offset};`))
  }
  const drain = async () => {
    // Turns of the event loop: batches go out at the end of a turn, answers come back a turn later.
    for (let i = 0; i < 50; i++) {
      for (const r of release.splice(0)) r()
      await new Promise((r) => setImmediate(r))
    }
  }
  return { calls, getRanges, drain, most: () => most }
}

describe('RangeBatcher', () => {
  it('sends the reads of one turn as one call and answers each read its own bytes', async () => {
    const r = remote()
    const b = new RangeBatcher(r.getRanges)
    const reads = [0, 1, 2, 3].map((i) => b.read({ name: `p${i % 2}`, offset: i * 10, length: 10 }))
    await r.drain()
    const got = await Promise.all(reads)
    assert.equal(r.calls.length, 1)
    assert.equal(r.calls[0]!.length, 4)
    for (const [i, buf] of got.entries()) assert.deepEqual(buf, Buffer.alloc(10, `p${i % 2}@${i * 10};`))
  })

  it('splits by bytes and ranges, and keeps at most `window` calls in flight', async () => {
    const r = remote()
    const b = new RangeBatcher(r.getRanges, { maxBytes: 100, maxRanges: 3, window: 2 })
    const reads = Array.from({ length: 20 }, (_, i) => b.read({ name: 'p', offset: i * 40, length: 40 }))
    await r.drain()
    const got = await Promise.all(reads)
    assert.equal(got.length, 20)
    for (const c of r.calls) {
      assert.ok(c.length <= 3, 'at most maxRanges a call')
      assert.ok(c.length === 1 || c.reduce((n, x) => n + x.length, 0) <= 100, 'at most maxBytes a call')
    }
    assert.deepEqual(
      r.calls.flat().map((x) => x.offset),
      Array.from({ length: 20 }, (_, i) => i * 40),
      'every read asked once, in order',
    )
    assert.ok(r.most() <= 2, `${r.most()} calls in flight, window 2`)
    // A range larger than maxBytes goes alone.
    const big = b.read({ name: 'p', offset: 0, length: 500 })
    await r.drain()
    assert.equal((await big).length, 500)
  })

  it('fails every read of a failed call, and later reads still go', async () => {
    const r = remote((x) => x.name === 'bad')
    const b = new RangeBatcher(r.getRanges)
    const bad = [b.read({ name: 'bad', offset: 0, length: 4 }), b.read({ name: 'ok', offset: 4, length: 4 })]
    const outcomes = bad.map((p) =>
      p.then(
        () => undefined,
        (e: Error) => e.message,
      ),
    )
    await r.drain()
    assert.deepEqual(await Promise.all(outcomes), ['the remote failed', 'the remote failed'])
    const later = b.read({ name: 'ok', offset: 8, length: 4 })
    await r.drain()
    assert.equal((await later).length, 4)
  })
})
