import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { addMonths, fromWall, toWall } from './_zoned-time.js'

describe('zoned time', () => {
  it('converts wall times in a zone both ways', () => {
    const t = fromWall(2026, 7, 1, 22, 30, 'Europe/Berlin')
    assert.equal(new Date(t).toISOString(), '2026-07-01T20:30:00.000Z')
    assert.deepEqual(toWall(t, 'Europe/Berlin'), {
      year: 2026,
      month: 7,
      day: 1,
      hour: 22,
      minute: 30,
      weekday: 3,
    })
    assert.equal(
      new Date(fromWall(2026, 1, 15, 9, 0, 'America/New_York')).toISOString(),
      '2026-01-15T14:00:00.000Z',
    )
  })

  it('moves a time skipped by daylight saving past the gap, and takes the first of a repeated time', () => {
    // Berlin springs from 02:00 to 03:00 on 2026-03-29 and falls back from 03:00 to 02:00 on 2026-10-25.
    assert.equal(
      new Date(fromWall(2026, 3, 29, 2, 30, 'Europe/Berlin')).toISOString(),
      '2026-03-29T01:30:00.000Z',
    )
    assert.equal(
      new Date(fromWall(2026, 10, 25, 2, 30, 'Europe/Berlin')).toISOString(),
      '2026-10-25T00:30:00.000Z',
    )
  })

  it('lets minutes overflow into the next day', () => {
    assert.equal(
      new Date(fromWall(2026, 12, 31, 0, 25 * 60, 'UTC')).toISOString(),
      '2027-01-01T01:00:00.000Z',
    )
  })

  it('adds months clamping to the end of shorter months', () => {
    assert.equal(new Date(addMonths(Date.UTC(2026, 0, 31), 1)).toISOString(), '2026-02-28T00:00:00.000Z')
    assert.equal(new Date(addMonths(Date.UTC(2026, 0, 31), 12 * 3)).toISOString(), '2029-01-31T00:00:00.000Z')
  })
})
