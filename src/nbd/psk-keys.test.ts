import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PskKeys } from './psk-keys.js'

const KEY_A = 'a'.repeat(64)
const KEY_B = '0123456789abcdef'.repeat(2)

describe('PskKeys', () => {
  it('reads psktool lines, skipping blank and # lines, with the exports each identity may open', () => {
    const keys = PskKeys.parse(
      `# NBD keys\nalice:${KEY_A} acct/vms/os acct/web/*\n\nbob:${KEY_B}\n`,
      'keys.psk',
    )
    assert.deepEqual(keys.identities, ['alice', 'bob'])
    assert.deepEqual(keys.key('alice'), Buffer.from(KEY_A, 'hex'))
    assert.equal(keys.key('carol'), undefined)
    // A named disk opens with its snapshots; a prefix ending in * opens what starts with it.
    assert.equal(keys.allows('alice', 'acct/vms/os'), true)
    assert.equal(keys.allows('alice', 'acct/vms/os@2026-01-01T00:00:00.0000000Z'), true)
    assert.equal(keys.allows('alice', 'acct/vms/os2'), false)
    assert.equal(keys.allows('alice', 'acct/vms/data'), false)
    assert.equal(keys.allows('alice', 'acct/web/front'), true)
    // A line without exports opens every export; an unknown identity none.
    assert.equal(keys.allows('bob', 'acct/vms/data'), true)
    assert.equal(keys.allows('carol', 'acct/vms/os'), false)
  })

  it('refuses a malformed line, a short or odd key, a repeated identity and an empty file, naming the line', () => {
    const cases: [string, RegExp][] = [
      ['alice', /line 1: expected identity:hexkey/],
      [`alice:${KEY_A}\nbob:abcd`, /line 2: the key is not 16 to 64 bytes/],
      [`alice:${KEY_A}z`, /line 1: the key is not/],
      [`alice:${KEY_A}\nalice:${KEY_B}`, /line 2: the identity "alice" is given twice/],
      [`al ice:${KEY_A}`, /line 1: expected identity:hexkey/],
      [`a/b:${KEY_A}`, /line 1: the identity "a\/b" is not/],
      ['# nothing\n', /it holds no key/],
    ]
    for (const [text, why] of cases) {
      assert.throws(
        () => PskKeys.parse(text, 'keys.psk'),
        (err: Error & { code?: string }) => err.code === 'ConfigInvalid' && why.test(err.message),
        text,
      )
    }
  })
})
