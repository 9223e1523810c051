import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openCatalog } from '../catalog/index.js'
import { type CairnError, requestActor, runAsActor } from '../util/index.js'
import { ResourceGuard } from './resource-guard.js'

// The resource guard on its own, with a test clock and identities given as the request's actor (the
// API's sign-in sets it; test/multi-user-authorization.test.ts drives the service with real users).

const HOUR = 3_600_000

const code = (expected: string, pattern?: RegExp) => (e: CairnError) => {
  assert.equal(e.code, expected, e.message)
  if (pattern) assert.match(e.message, pattern)
  return true
}

async function withGuard(fn: (guard: ResourceGuard, clock: { t: number }) => Promise<void>): Promise<void> {
  const catalog = await openCatalog('sqlite::memory:')
  const clock = { t: Date.now() }
  try {
    await fn(new ResourceGuard(catalog, { actor: () => undefined, now: () => clock.t }), clock)
  } finally {
    await catalog.close()
  }
}

/** A guard whose actor is whoever `as` runs as (the service passes requestActor). */
async function withActors(fn: (guard: ResourceGuard, clock: { t: number }) => Promise<void>): Promise<void> {
  const catalog = await openCatalog('sqlite::memory:')
  const clock = { t: Date.now() }
  try {
    await fn(new ResourceGuard(catalog, { actor: requestActor, now: () => clock.t }), clock)
  } finally {
    await catalog.close()
  }
}

const as = <T>(who: string, fn: () => T) => runAsActor(who, fn)

describe('ResourceGuard', () => {
  it('an unguarded vault needs no approval; a guarded one refuses without it', async () => {
    await withActors(async (guard) => {
      await as('alice', () => guard.authorize('v', 'deleteVault', 'Cannot delete vault "v"'))
      await as('alice', () => guard.setEnabled('v', true))
      await assert.rejects(
        as('alice', () => guard.authorize('v', 'deleteVault', 'Cannot delete vault "v"')),
        code('ApprovalRequired', /cairn guard request --vault v --operation deleteVault/),
      )
    })
  })

  it('request, approval by another identity, then the operation runs once', async () => {
    await withActors(async (guard, clock) => {
      await as('alice', () => guard.setEnabled('v', true))
      const r = await as('alice', () => guard.request('v', 'deleteVault', { reason: 'decommission' }))
      assert.equal(r.state, 'Pending')
      assert.equal(r.requestedBy, 'alice')
      await assert.rejects(
        as('alice', () => guard.approve(r.id)),
        code('SelfApprovalNotAllowed'),
      )
      await assert.rejects(
        as('alice', () => guard.deny(r.id)),
        code('SelfApprovalNotAllowed'),
      )
      const approved = await as('bob', () => guard.approve(r.id))
      assert.equal(approved.state, 'Approved')
      assert.equal(approved.decidedBy, 'bob')
      assert.equal(approved.validUntil, new Date(clock.t + 12 * HOUR).toISOString())
      // Another identity cannot use alice's approval, nor does it cover another operation or vault.
      await assert.rejects(
        as('mallory', () => guard.authorize('v', 'deleteVault', 'x')),
        code('ApprovalRequired'),
      )
      await assert.rejects(
        as('alice', () => guard.authorize('v', 'changeGuard', 'x')),
        code('ApprovalRequired'),
      )
      await as('alice', () => guard.setEnabled('w', true))
      await assert.rejects(
        as('alice', () => guard.authorize('w', 'deleteVault', 'x')),
        code('ApprovalRequired'),
      )
      await as('alice', () => guard.authorize('v', 'deleteVault', 'x'))
      assert.equal((await guard.get(r.id)).state, 'Used')
      await assert.rejects(
        as('alice', () => guard.authorize('v', 'deleteVault', 'x')),
        code('ApprovalRequired'),
      )
      await assert.rejects(
        as('carol', () => guard.approve(r.id)),
        code('GuardRequestNotPending'),
      )
    })
  })

  it('an approval expires after its validity (12 hours by default)', async () => {
    await withActors(async (guard, clock) => {
      await as('alice', () => guard.setEnabled('v', true))
      const a = await as('alice', () => guard.request('v', 'reduceSoftDelete'))
      await as('bob', () => guard.approve(a.id))
      clock.t += 12 * HOUR
      assert.equal((await guard.get(a.id)).state, 'Expired')
      await assert.rejects(
        as('alice', () => guard.authorize('v', 'reduceSoftDelete', 'x')),
        code('ApprovalRequired'),
      )
      const b = await as('alice', () => guard.request('v', 'reduceSoftDelete'))
      await as('bob', () => guard.approve(b.id, { validHours: 1 }))
      clock.t += HOUR - 1
      await as('alice', () => guard.authorize('v', 'reduceSoftDelete', 'x'))
    })
  })

  it('a denied request is listed and never lets the operation run', async () => {
    await withActors(async (guard) => {
      await as('alice', () => guard.setEnabled('v', true))
      const r = await as('alice', () => guard.request('v', 'disableImmutability'))
      const denied = await as('bob', () => guard.deny(r.id, { reason: 'not today' }))
      assert.equal(denied.state, 'Denied')
      assert.equal(denied.decisionReason, 'not today')
      await assert.rejects(
        as('alice', () => guard.authorize('v', 'disableImmutability', 'x')),
        code('ApprovalRequired'),
      )
      assert.deepEqual(
        (await guard.list({ vault: 'v' })).map((x) => [x.operation, x.state]),
        [['disableImmutability', 'Denied']],
      )
      assert.deepEqual(await guard.list({ vault: 'v', state: 'Pending' }), [])
    })
  })

  it('turning the guard off is itself a critical operation; turning it on is not', async () => {
    await withActors(async (guard) => {
      await as('alice', () => guard.setEnabled('v', true))
      await assert.rejects(
        as('alice', () => guard.setEnabled('v', false)),
        code('ApprovalRequired'),
      )
      const r = await as('alice', () => guard.request('v', 'changeGuard'))
      await as('bob', () => guard.approve(r.id))
      assert.equal((await as('alice', () => guard.setEnabled('v', false))).enabled, false)
    })
  })

  it('requests and decisions need an identity, and only known operations can be requested', async () => {
    await withGuard(async (guard) => {
      await assert.rejects(guard.request('v', 'deleteVault'), code('Unauthorized'))
    })
    await withActors(async (guard) => {
      await assert.rejects(
        as('alice', () => guard.request('v', 'formatDisk')),
        code('InvalidRequest'),
      )
      await assert.rejects(
        as('bob', () => guard.approve('nope')),
        code('GuardRequestNotFound'),
      )
    })
  })
})
