import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { expiredSnapshots, planRetention, type RetentionPoint } from './plan-retention.js'
import { validatePolicy } from './policy.js'
import { scheduledTimes } from './schedule.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 0, 1)

const longTerm = validatePolicy({
  name: 'long-term',
  schedule: { frequency: 'Daily', time: '23:00' },
  retention: {
    daily: { days: 30 },
    weekly: { weeks: 12, daysOfWeek: ['Sunday'] },
    monthly: { months: 12, on: { format: 'Daily', days: [1] } },
    yearly: { years: 3, monthsOfYear: ['January'], on: { format: 'Daily', days: [1] } },
  },
})

/** A year of backups with pruning every day, as the scheduler would do it. */
function simulate(policy: typeof longTerm, days: number): { points: RetentionPoint[]; now: number } {
  let points: RetentionPoint[] = []
  let now = START
  for (const t of scheduledTimes(policy, START, START + days * DAY)) {
    points.push({ id: `rp-${t}`, time: t, kind: 'Scheduled' })
    now = t + 60_000
    const expired = new Set(planRetention(points, policy, now).expire.map((v) => v.id))
    points = points.filter((p) => !expired.has(p.id))
  }
  return { points, now }
}

describe('retention', () => {
  it('after a year of daily backups keeps 30 daily, 12 weekly, 12 monthly and 1 yearly point', () => {
    const { points, now } = simulate(longTerm, 365)
    const plan = planRetention(points, longTerm, now)
    assert.equal(plan.expire.length, 0)
    const count = (r: string) => plan.keep.filter((v) => v.reasons.includes(r as never)).length
    assert.equal(count('Daily'), 30)
    assert.equal(count('Weekly'), 12)
    assert.equal(count('Monthly'), 12)
    assert.equal(count('Yearly'), 1)
    // Overlaps (a Sunday that is also the 1st) are stored once.
    // 30 daily (Dec 2–31), 8 more Sundays (Oct 11 – Nov 29), 11 more 1sts (Jan 1 – Oct 1, Dec 1; Nov 1 is a Sunday).
    assert.equal(points.length, 30 + 8 + 11)
    const jan1 = plan.keep.find((v) => v.time === Date.UTC(2026, 0, 1, 23))
    assert.equal(jan1?.expiresAt, Date.UTC(2029, 0, 1, 23))
  })

  it('keeps only the last point of a day for the vault; hourly points live for the instant-restore days', () => {
    const p = validatePolicy({
      name: 'hourly',
      policyType: 'Enhanced',
      instantRpRetentionRangeInDays: 3,
      schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '00:00', windowDurationHours: 24 },
      retention: { daily: { days: 7 } },
    })
    const { points } = simulate(p, 60)
    // 7 days of end-of-day points plus the hourly points of the last 3 days.
    const lastOfDay = points.filter((x) => new Date(x.time).getUTCHours() === 20)
    assert.equal(lastOfDay.length, 7)
    assert.equal(points.length - lastOfDay.length, 3 * 5)
  })

  it("counts a scheduled point for its slot's day even when its run captured it after midnight", () => {
    const daily = validatePolicy({
      name: 'daily',
      instantRpRetentionRangeInDays: 2,
      schedule: { frequency: 'Daily', time: '03:00' },
      retention: { daily: { days: 30 } },
    })
    const HOUR = DAY / 24
    // Day 9's 03:00 run waited in the queue until 01:00 on day 10; day 10's ran on time at 04:54.
    const points: RetentionPoint[] = [
      { id: 'late', time: START + 10 * DAY + 1 * HOUR, slot: START + 9 * DAY + 3 * HOUR, kind: 'Scheduled' },
      {
        id: 'on-time',
        time: START + 10 * DAY + 5 * HOUR,
        slot: START + 10 * DAY + 3 * HOUR,
        kind: 'Scheduled',
      },
    ]
    const plan = planRetention(points, daily, START + 12 * DAY + 2 * HOUR)
    assert.deepEqual(plan.expire, [], "past the instant-restore days, each is still its own day's point")
    assert.deepEqual(
      plan.keep.map((v) => [v.id, v.reasons[0], v.expiresAt]),
      [
        ['late', 'Daily', points[0]!.time + 30 * DAY],
        ['on-time', 'Daily', points[1]!.time + 30 * DAY],
      ],
    )
    // Without the slot (points of before migration 20) the capture's day counts: the first is not a day's point.
    const unslotted = points.map(({ slot: _s, ...p }) => p)
    assert.deepEqual(
      planRetention(unslotted, daily, START + 12 * DAY + 2 * HOUR).expire.map((v) => v.id),
      ['late'],
    )
  })

  it('gives on-demand points their own expiry, 30 days by default', () => {
    const points: RetentionPoint[] = [
      { id: 'a', time: START, kind: 'OnDemand' },
      { id: 'b', time: START, kind: 'OnDemand', expiresAt: START + 90 * DAY },
      { id: 'c', time: START + 40 * DAY, kind: 'Scheduled' },
    ]
    const plan = planRetention(points, longTerm, START + 45 * DAY)
    assert.deepEqual(
      plan.expire.map((v) => v.id),
      ['a'],
    )
    assert.equal(plan.keep.find((v) => v.id === 'b')?.expiresAt, START + 90 * DAY)
  })

  it('always keeps the latest point, even past its expiry', () => {
    const points: RetentionPoint[] = [
      { id: 'old', time: START + 9 * DAY, kind: 'Scheduled' },
      { id: 'latest', time: START + 10 * DAY, kind: 'Scheduled' },
    ]
    const plan = planRetention(points, longTerm, START + 400 * DAY)
    assert.deepEqual(
      plan.keep.map((v) => [v.id, v.reasons.at(-1)]),
      [['latest', 'Latest']],
    )
    assert.equal(plan.expire.length, 1)
  })

  it('removes snapshots older than the instant-restore retention but never the latest', () => {
    const snaps = [{ time: START }, { time: START + DAY }, { time: START + 2 * DAY }]
    assert.deepEqual(expiredSnapshots(snaps, longTerm, START + 3 * DAY), [
      { time: START },
      { time: START + DAY },
    ])
    assert.deepEqual(expiredSnapshots(snaps, longTerm, START + 300 * DAY).length, 2)
  })

  it('matches monthly points by weekday of week, including the last week', () => {
    const p = validatePolicy({
      ...longTerm,
      retention: {
        daily: { days: 7 },
        monthly: { months: 6, on: { format: 'Weekly', weeks: ['Last'], weekdays: ['Friday'] } },
      },
    })
    const { points, now } = simulate(p, 180)
    const monthly = planRetention(points, p, now).keep.filter((v) => v.reasons.includes('Monthly'))
    assert.equal(monthly.length, 6)
    for (const v of monthly) {
      const d = new Date(v.time)
      assert.equal(d.getUTCDay(), 5)
      assert.ok(new Date(v.time + 7 * DAY).getUTCMonth() !== d.getUTCMonth())
    }
  })

  it('keeps at most 9999 points per item, dropping the oldest first and never the latest', () => {
    const points: RetentionPoint[] = Array.from({ length: 10_005 }, (_, i) => ({
      id: `p${i}`,
      time: START + i * 60_000,
      kind: 'OnDemand' as const,
      expiresAt: START + 400 * DAY,
    }))
    const plan = planRetention(points, longTerm, START + 10 * DAY)
    assert.equal(plan.keep.length, 9999)
    assert.deepEqual(
      plan.expire.map((v) => v.id),
      ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'],
    )
    assert.ok(plan.keep.some((v) => v.id === 'p10004'))
  })
})
