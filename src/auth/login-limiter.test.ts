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
    const limiter = new LoginLimiter({ scale: 0.01 })
    const fail = async () => ({ ok: false, value: undefined })
    for (let i = 0; i < 6; i++) await limiter.run({ client: '10.0.0.1', user: 'alice' }, fail)
    const timed = async (client: string, user: string, ok: boolean) => {
      const t = performance.now()
      await limiter.run({ client, user }, async () => ({ ok, value: undefined }))
      return performance.now() - t
    }
    assert.ok((await timed('10.0.0.1', 'bob', true)) >= 7, 'the client is slowed for every user')
    assert.ok((await timed('10.0.0.2', 'alice', true)) >= 7, 'the user is slowed from every client')
    assert.ok((await timed('10.0.0.3', 'alice', true)) < 5, 'a success cleared the user')
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
