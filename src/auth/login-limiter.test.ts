import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LoginLimiter } from './login-limiter.js'

describe('LoginLimiter', () => {
  it('lets three failures pass, then doubles the delay from 250 ms up to 30 s', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 10, 50].map((n) => LoginLimiter.delayMs(n)),
      [0, 0, 0, 250, 500, 1000, 30_000, 30_000],
    )
    assert.equal(LoginLimiter.delayMs(4, 0.01), 5)
  })

  it('counts failures per client and per user: another user from the same client is slowed too, a success clears only the user', async () => {
    // The delays each attempt waits, recorded rather than waited: exact, however busy the machine.
    let waits: number[] = []
    const limiter = new LoginLimiter({ scale: 0.01, sleep: async (ms) => void waits.push(ms) })
    const fail = async () => ({ ok: false, value: undefined })
    for (let i = 0; i < 6; i++) await limiter.run({ client: '10.0.0.1', user: 'alice' }, fail)
    assert.deepEqual(waits, [2.5, 5, 10], 'three failures pass, then the delay doubles')
    const waited = async (client: string, user: string, ok: boolean) => {
      waits = []
      await limiter.run({ client, user }, async () => ({ ok, value: undefined }))
      return waits
    }
    // Six failures call for 250 ms × 2³ × 0.01 = 20 ms.
    assert.deepEqual(await waited('10.0.0.1', 'bob', true), [20], 'the client is slowed for every user')
    assert.deepEqual(await waited('10.0.0.2', 'alice', true), [20], 'the user is slowed from every client')
    assert.deepEqual(await waited('10.0.0.3', 'alice', true), [], 'a success cleared the user')
    assert.deepEqual(await waited('10.0.0.1', 'carol', true), [20], 'but not the client')
  })

  it('refuses at once when too many attempts wait on one key', async () => {
    const limiter = new LoginLimiter({ scale: 0.01 })
    for (let i = 0; i < 10; i++)
      await limiter.run({ client: 'c', user: 'u' }, async () => ({ ok: false, value: 0 }))
    const many = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        limiter.run({ client: 'c', user: 'u' }, async () => ({ ok: false, value: 0 })),
      ),
    )
    const refused = many.filter((r) => r.status === 'rejected')
    assert.ok(refused.length >= 3)
    assert.ok(refused.every((r) => (r as PromiseRejectedResult).reason.code === 'LoginThrottled'))
  })
})
