import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { toWall } from './_zoned-time.js'
import { validatePolicy } from './policy.js'
import { dueRun, jitterFor, nextRun, plannedRuns, scheduledTimes, spreadFor } from './schedule.js'

const DAY = 86_400_000
const HOUR = 3_600_000
const YEAR_START = Date.UTC(2026, 0, 1)
const YEAR_END = Date.UTC(2027, 0, 1)

const dailyBerlin = validatePolicy({
  name: 'daily',
  timeZone: 'Europe/Berlin',
  schedule: { frequency: 'Daily', time: '22:30' },
  retention: { daily: { days: 30 } },
})
const hourly = (intervalHours: number, windowStart: string, windowDurationHours: number) =>
  validatePolicy({
    name: 'hourly',
    policyType: 'Enhanced',
    schedule: { frequency: 'Hourly', intervalHours, windowStart, windowDurationHours },
    retention: { daily: { days: 30 } },
  })

describe('schedule', () => {
  it('a daily policy runs 365 times in 2026, always at 22:30 Berlin time across daylight saving', () => {
    const times = scheduledTimes(dailyBerlin, YEAR_START, YEAR_END)
    assert.equal(times.length, 365)
    for (const t of times) {
      const w = toWall(t, 'Europe/Berlin')
      assert.deepEqual([w.hour, w.minute], [22, 30])
    }
  })

  it('a weekly policy runs only on its days', () => {
    const weekly = validatePolicy({
      name: 'weekly',
      schedule: { frequency: 'Weekly', days: ['Saturday', 'Sunday'], time: '03:00' },
      retention: { weekly: { weeks: 12 } },
    })
    const times = scheduledTimes(weekly, YEAR_START, YEAR_END)
    assert.equal(times.length, 104)
    assert.ok(times.every((t) => [0, 6].includes(new Date(t).getUTCDay())))
  })

  it('an hourly policy runs every interval inside its window, also across midnight', () => {
    const day = scheduledTimes(hourly(4, '08:00', 12), YEAR_START, YEAR_START + DAY)
    assert.deepEqual(
      day.map((t) => new Date(t).toISOString().slice(11, 16)),
      ['08:00', '12:00', '16:00'],
    )
    assert.equal(scheduledTimes(hourly(4, '00:00', 24), YEAR_START, YEAR_END).length, 365 * 6)
    const night = scheduledTimes(hourly(6, '20:00', 12), YEAR_START + DAY, YEAR_START + 2 * DAY)
    assert.deepEqual(
      night.map((t) => new Date(t).toISOString().slice(11, 16)),
      ['02:00', '20:00'],
    )
  })

  it('jitter is stable per item and spreads a thousand items evenly over the spread', () => {
    const spread = spreadFor(dailyBerlin)
    assert.equal(spread, 2 * HOUR)
    const buckets = new Array(12).fill(0)
    for (let i = 0; i < 1000; i++) {
      const j = jitterFor(`vm-${i}`, dailyBerlin)
      assert.equal(j, jitterFor(`vm-${i}`, dailyBerlin))
      assert.ok(j >= 0 && j < spread)
      buckets[Math.floor(j / (spread / 12))]++
    }
    // 1000 items over 12 ten-minute buckets: about 83 each.
    assert.ok(Math.min(...buckets) > 50 && Math.max(...buckets) < 120, `uneven buckets ${buckets}`)
  })

  it('an hourly run never starts outside its window or after the next slot', () => {
    const p = hourly(4, '08:00', 10)
    // Runs at 08, 12, 16; the window ends at 18, so the spread is at most 2 h.
    assert.equal(spreadFor(p), 2 * HOUR)
    for (let i = 0; i < 200; i++) {
      for (const r of plannedRuns(`vm-${i}`, p, YEAR_START, YEAR_START + DAY)) {
        const h = (r.at - YEAR_START) / HOUR
        assert.ok(h >= 8 && h < 18, `run at ${h} h`)
      }
    }
  })

  it('after downtime of three days a daily item is due once, with the two missed slots counted', () => {
    const p = validatePolicy({ ...dailyBerlin, timeZone: 'UTC' })
    const last = scheduledTimes(p, YEAR_START, YEAR_START + DAY)[0]!
    const now = last + 3 * DAY + 3 * HOUR
    const due = dueRun('vm-1', p, last, now)
    assert.ok(due)
    assert.equal(due.slot, last + 3 * DAY)
    assert.equal(due.skipped, 2)
    assert.equal(dueRun('vm-1', p, due.slot, now), undefined, 'nothing more is due after the catch-up')
    assert.equal(nextRun('vm-1', p, due.slot).slot, last + 4 * DAY)
  })
})
