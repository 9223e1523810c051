import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { selectRetained } from './retention.js'

/** One point every 6 hours for 60 days, newest last, ids p0…p239. */
const points = Array.from({ length: 240 }, (_, i) => ({
  id: `p${i}`,
  time: new Date(Date.UTC(2026, 0, 1) + i * 6 * 3600_000),
}))

describe('selectRetained', () => {
  it('keep-last keeps the newest N', () => {
    assert.deepEqual([...selectRetained(points, { keepLast: 3 })].sort(), ['p237', 'p238', 'p239'])
  })

  it('keep-daily keeps the newest point of each of the last N days', () => {
    const kept = selectRetained(points, { keepDaily: 3 })
    assert.deepEqual([...kept].sort(), ['p231', 'p235', 'p239'])
  })

  it('rules add up and a point kept by one rule uses up its period in the next', () => {
    const kept = selectRetained(points, { keepLast: 2, keepDaily: 2, keepWeekly: 2, keepMonthly: 2 })
    // p239 is Sunday 1 March 18:00 (ISO week 9). last: p239, p238; daily: p239, p235 (28 February);
    // weekly: p239, p211 (Sunday 22 February, week 8); monthly: p239 (March), p235 (February).
    assert.deepEqual([...kept].sort(), ['p211', 'p235', 'p238', 'p239'])
  })

  it('an empty policy keeps nothing and empty input keeps nothing', () => {
    assert.equal(selectRetained(points, {}).size, 0)
    assert.equal(selectRetained([], { keepLast: 5 }).size, 0)
  })
})
