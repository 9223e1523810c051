import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import { validatePolicy } from './policy.js'

const daily = {
  name: 'daily-30',
  schedule: { frequency: 'Daily', time: '22:30' },
  retention: { daily: { days: 30 } },
}

function problems(input: unknown): string {
  try {
    validatePolicy(input)
  } catch (err) {
    assert.ok(isCairnError(err))
    assert.equal(err.code, 'PolicyInvalid')
    return err.message
  }
  assert.fail('the policy was accepted')
}

describe('validatePolicy', () => {
  it('fills the defaults: UTC, Standard, two days of instant restore (seven for Enhanced)', () => {
    const p = validatePolicy(daily)
    assert.equal(p.timeZone, 'UTC')
    assert.equal(p.policyType, 'Standard')
    assert.equal(p.instantRpRetentionRangeInDays, 2)
    const e = validatePolicy({
      ...daily,
      policyType: 'Enhanced',
      schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '08:00', windowDurationHours: 12 },
    })
    assert.equal(e.instantRpRetentionRangeInDays, 7)
  })

  it('accepts the reference bounds at both ends', () => {
    for (const [days, weeks, months, years] of [
      [7, 1, 1, 1],
      [9999, 5163, 1188, 99],
    ]) {
      validatePolicy({
        ...daily,
        timeZone: 'Europe/Berlin',
        instantRpRetentionRangeInDays: 5,
        retention: {
          daily: { days },
          weekly: { weeks, daysOfWeek: ['Sunday'] },
          monthly: { months, on: { format: 'Daily', days: [1, 'Last'] } },
          yearly: {
            years,
            monthsOfYear: ['January'],
            on: { format: 'Weekly', weeks: ['First'], weekdays: ['Monday'] },
          },
        },
      })
    }
  })

  it('rejects retention outside the bounds, naming each field', () => {
    const m = problems({
      ...daily,
      retention: {
        daily: { days: 6 },
        weekly: { weeks: 5164, daysOfWeek: ['Sunday'] },
        monthly: { months: 1189, on: { days: [1] } },
        yearly: { years: 100, monthsOfYear: ['March'], on: { days: [29] } },
      },
    })
    assert.match(m, /retention\.daily\.days" must be 7–9999 days, not 6/)
    assert.match(m, /retention\.weekly\.weeks" must be 1–5163/)
    assert.match(m, /retention\.monthly\.months" must be 1–1188/)
    assert.match(m, /retention\.yearly\.years" must be 1–99/)
    assert.match(m, /days 1–28 or "Last"/)
  })

  it('bounds instant-restore retention by policy type: 1–5 days Standard, 1–30 Enhanced', () => {
    assert.match(problems({ ...daily, instantRpRetentionRangeInDays: 6 }), /1–5 days for a Standard/)
    assert.match(problems({ ...daily, instantRpRetentionRangeInDays: 0 }), /1–5 days/)
    validatePolicy({ ...daily, policyType: 'Enhanced', instantRpRetentionRangeInDays: 30 })
    assert.match(
      problems({ ...daily, policyType: 'Enhanced', instantRpRetentionRangeInDays: 31 }),
      /1–30 days/,
    )
  })

  it('allows hourly schedules only in Enhanced policies, every 4, 6, 8, 12 or 24 hours', () => {
    const hourly = { frequency: 'Hourly', intervalHours: 6, windowStart: '00:00', windowDurationHours: 24 }
    assert.match(problems({ ...daily, schedule: hourly }), /needs an Enhanced policy/)
    validatePolicy({ ...daily, policyType: 'Enhanced', schedule: hourly })
    assert.match(
      problems({ ...daily, policyType: 'Enhanced', schedule: { ...hourly, intervalHours: 5 } }),
      /one of 4, 6, 8, 12, 24/,
    )
    assert.match(
      problems({ ...daily, policyType: 'Enhanced', schedule: { ...hourly, windowDurationHours: 3 } }),
      /windowDurationHours/,
    )
  })

  it('asks weekly schedules for weekly retention on scheduled days only', () => {
    const weekly = { frequency: 'Weekly', days: ['Saturday'], time: '02:00' }
    assert.match(
      problems({ ...daily, schedule: weekly }),
      /keeps weekly points: give "retention.weekly" \(--keep-weeks\), not "retention.daily"/,
    )
    assert.match(
      problems({ ...daily, schedule: weekly, retention: { weekly: { weeks: 4, daysOfWeek: ['Sunday'] } } }),
      /takes no backup/,
    )
    const ok = validatePolicy({ ...daily, schedule: weekly, retention: { weekly: { weeks: 4 } } })
    assert.deepEqual(ok.retention.weekly?.daysOfWeek, ['Saturday'])
  })

  it('rejects unknown time zones, bad times and bad names', () => {
    assert.match(problems({ ...daily, timeZone: 'Mars/Olympus' }), /not a time zone/)
    assert.match(problems({ ...daily, schedule: { frequency: 'Daily', time: '25:00' } }), /HH:MM/)
    assert.match(problems({ ...daily, name: '' }), /"name"/)
    assert.match(problems({ ...daily, schedule: { frequency: 'Monthly' } }), /Daily, Weekly or Hourly/)
  })

  it('accepts a copy to another vault with retention of its own, and names what is wrong in one', () => {
    const monthly = { monthly: { months: 12, on: { format: 'Daily', days: [1] } } }
    assert.deepEqual(validatePolicy({ ...daily, copy: { vault: 'offsite', retention: monthly } }).copy, {
      vault: 'offsite',
      retention: monthly,
    })
    assert.deepEqual(validatePolicy({ ...daily, copy: { vault: 'offsite' } }).copy, { vault: 'offsite' })
    assert.equal(validatePolicy(daily).copy, undefined)
    assert.match(problems({ ...daily, copy: 'offsite' }), /"copy" must be an object/)
    assert.match(problems({ ...daily, copy: { vault: 'Off Site' } }), /"copy.vault" must name a vault/)
    assert.match(problems({ ...daily, copy: { vault: 'o', retention: {} } }), /at least one rule/)
    assert.match(
      problems({ ...daily, copy: { vault: 'o', retention: { daily: { days: 3 } } } }),
      /"copy.retention.daily.days" must be 7–9999/,
    )
    assert.match(problems({ ...daily, copy: { vault: 'o', keep: 1 } }), /"copy.keep" is not a policy field/)
    assert.match(
      problems({ ...daily, copy: { vault: 'o', retention: { hourly: {} } } }),
      /"copy.retention.hourly" is not a policy field/,
    )
  })
})
