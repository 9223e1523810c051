import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CairnError } from '../util/index.js'
import { DEFAULT_VAULT_SETTINGS } from '../vault/index.js'
import { type BackupPolicy, validatePolicy } from './policy.js'
import { checkRetentionChange, retentionShortened } from './retention-change.js'

const policy = (retention: object, extra: Record<string, unknown> = {}): BackupPolicy =>
  validatePolicy({
    name: 'p',
    policyType: 'Standard',
    schedule: { frequency: 'Daily', time: '03:00' },
    retention,
    ...extra,
  })

const base = policy({
  daily: { days: 30 },
  weekly: { weeks: 12, daysOfWeek: ['Sunday', 'Wednesday'] },
  monthly: { months: 12, on: { format: 'Daily', days: [1] } },
})

describe('retentionShortened', () => {
  it('finds every way a policy change shortens retention', () => {
    assert.deepEqual(retentionShortened(base, base), [])
    assert.match(
      retentionShortened(base, policy({ ...base.retention, daily: { days: 29 } })).join(),
      /daily retention 30 → 29/,
    )
    const { weekly: _w, ...noWeekly } = base.retention
    assert.match(retentionShortened(base, policy(noWeekly)).join(), /weekly retention 12 → none/)
    assert.match(
      retentionShortened(
        base,
        policy({ ...base.retention, weekly: { weeks: 12, daysOfWeek: ['Sunday'] } }),
      ).join(),
      /fewer days of the week/,
    )
    assert.match(
      retentionShortened(
        base,
        policy({ ...base.retention, monthly: { months: 12, on: { format: 'Daily', days: [2] } } }),
      ).join(),
      /monthly retention keeps other days/,
    )
    assert.match(
      retentionShortened(base, policy(base.retention, { instantRpRetentionRangeInDays: 1 })).join(),
      /instant-restore retention 2 → 1/,
    )
  })

  it('a longer retention or a new rule shortens nothing', () => {
    assert.deepEqual(
      retentionShortened(
        base,
        policy({
          ...base.retention,
          daily: { days: 60 },
          yearly: { years: 2, monthsOfYear: ['January'], on: { format: 'Daily', days: [1] } },
        }),
      ),
      [],
    )
  })

  it('is refused only while the vault is immutable', () => {
    const shorter = policy({ daily: { days: 7 } })
    checkRetentionChange(DEFAULT_VAULT_SETTINGS, 'v', base, shorter, 'x')
    checkRetentionChange(undefined, 'v', base, shorter, 'x')
    for (const state of ['Enabled', 'Locked'] as const)
      assert.throws(
        () =>
          checkRetentionChange(
            { ...DEFAULT_VAULT_SETTINGS, immutability: { state } },
            'v',
            base,
            shorter,
            'x',
          ),
        (e: CairnError) => e.code === 'RetentionLocked' && /daily retention 30 → 7/.test(e.message),
      )
  })
})
