import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ManualClock } from '../src/protection/index.js'
import type { CairnService } from '../src/server/index.js'
import { startServiceIn } from './_in-process.js'
import { ended, type Json } from './_jobs.js'
import { cairnAt, tokenOf } from './_service.js'

// Multi-user authorization through the real service: real users and tokens (an Admin who asks, a
// Guard who approves, a second Admin), the cairn CLI and HTTP, and the service's test clock for the
// approvals' expiry. Each critical operation is tried without approval, with the requester's own
// approval, with an expired one and with a used one.

const HOUR = 3_600_000
const MiB = 1024 * 1024

describe('multi-user authorization (resource guard)', () => {
  let dir: string
  let service: CairnService
  let url: string
  const clock = new ManualClock(Date.now())
  const tokens: Record<string, string> = {}

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-mua-'))
    service = await startServiceIn(dir, {}, { clock })
    url = service.listeners.api!
    tokens.admin = tokenOf(url)!
    // Guard identities are made by Guards (the first by an administrator): grace is a Security Admin
    // and the first Guard, and makes gus, the second Guard. ada is a second Admin.
    const user = async (by: string, name: string, role: string) => {
      const made = await call(by, 'POST', '/api/v1/users', { name, password: `${name}-pw-0123456789`, role })
      assert.equal(made.status, 201, JSON.stringify(made.body))
      const login = await fetch(`${url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: name, password: `${name}-pw-0123456789` }),
      })
      assert.equal(login.status, 200)
      tokens[name] = ((await login.json()) as { token: string }).token
    }
    await user('admin', 'grace', 'Security Admin')
    const guard = await call('admin', 'POST', '/api/v1/roleAssignments', { user: 'grace', role: 'Guard' })
    assert.equal(guard.status, 201, JSON.stringify(guard.body))
    await user('grace', 'gus', 'Guard')
    await user('admin', 'ada', 'Admin')
  })
  after(async () => {
    await service.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** One JSON call of the management API as `who`. */
  async function call(
    who: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Json }> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${tokens[who]}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
  /** `cairn ARGS --json` as `who`. */
  const cli = async (who: string, ...args: string[]) => {
    const r = await cairnAt(url, args, { env: { CAIRN_TOKEN: tokens[who]! } })
    let body: Json
    try {
      body = r.stdout ? JSON.parse(r.stdout) : undefined
    } catch {
      body = r.stdout
    }
    return { code: r.code, body, stderr: r.stderr }
  }
  const ok = async (who: string, ...args: string[]) => {
    const r = await cli(who, ...args)
    assert.equal(r.code, 0, `${who}: cairn ${args.join(' ')}: ${r.stderr}`)
    return r.body
  }
  const refused = async (who: string, exit: number, code: string, ...args: string[]) => {
    const r = await cli(who, ...args)
    assert.equal(
      r.code,
      exit,
      `${who}: cairn ${args.join(' ')} should fail with ${code}: ${JSON.stringify(r.body)}`,
    )
    assert.match(r.stderr, new RegExp(code))
  }
  /** A request by `who`, approved by `approver`; answers its id. */
  const approved = async (
    who: string,
    approver: string,
    vault: string,
    operation: string,
    ...extra: string[]
  ) => {
    const r = await ok(
      who,
      'guard',
      'request',
      '--vault',
      vault,
      '--operation',
      operation,
      '--reason',
      'test',
    )
    await ok(approver, 'guard', 'approve', r.id, ...extra)
    return r.id as string
  }

  it('a critical operation runs after another identity with the Guard role approves it, once, and never on self-approval', async () => {
    await ok('admin', 'vault', 'create', 'mua')
    // Unguarded: no approval needed. Guarded: refused, naming the request to make.
    await ok('admin', 'vault', 'settings', 'mua', '--soft-delete-days', '30')
    await ok('admin', 'guard', 'enable', 'mua')
    assert.equal((await ok('grace', 'guard', 'status', 'mua')).enabled, true)
    await refused('admin', 7, 'ApprovalRequired', 'vault', 'settings', 'mua', '--soft-delete', 'Disabled')
    await refused('admin', 7, 'ApprovalRequired', 'vault', 'settings', 'mua', '--soft-delete-days', '14')
    // Making soft delete stronger needs nothing.
    await ok('admin', 'vault', 'settings', 'mua', '--soft-delete-days', '60')

    const req = await ok('admin', 'guard', 'request', '--vault', 'mua', '--operation', 'reduceSoftDelete')
    assert.equal(req.state, 'Pending')
    assert.equal(req.requestedBy, 'admin')
    // Another Admin cannot approve (Admin lacks the Guard role), nor can the requester.
    await refused('ada', 7, 'Forbidden', 'guard', 'approve', req.id)
    await refused('admin', 7, 'Forbidden', 'guard', 'approve', req.id)
    // A Guard cannot approve a request of its own.
    const own = await ok('grace', 'guard', 'request', '--vault', 'mua', '--operation', 'deleteVault')
    await refused('grace', 7, 'SelfApprovalNotAllowed', 'guard', 'approve', own.id)
    await ok('gus', 'guard', 'deny', own.id, '--reason', 'no')

    const decision = await ok('grace', 'guard', 'approve', req.id)
    assert.equal(decision.state, 'Approved')
    assert.equal(decision.validUntil, new Date(clock.now() + 12 * HOUR).toISOString())
    // The approval is the requester's: another Admin still cannot.
    await refused('ada', 7, 'ApprovalRequired', 'vault', 'settings', 'mua', '--soft-delete', 'Disabled')
    assert.equal(
      (await ok('admin', 'vault', 'settings', 'mua', '--soft-delete', 'Disabled')).softDelete.state,
      'Disabled',
    )
    await ok('admin', 'vault', 'settings', 'mua', '--soft-delete', 'Enabled')
    await refused('admin', 7, 'ApprovalRequired', 'vault', 'settings', 'mua', '--soft-delete', 'Disabled')
    const listed = await ok('grace', 'guard', 'list', '--vault', 'mua')
    assert.deepEqual(
      // (The test clock stands still: both were asked at the same instant, so sort them by operation.)
      listed.map((r: Json) => [r.operation, r.state, r.requestedBy, r.decidedBy]).sort(),
      [
        ['deleteVault', 'Denied', 'grace', 'gus'],
        ['reduceSoftDelete', 'Used', 'admin', 'grace'],
      ],
    )
  })

  it('an approval expires after 12 hours', async () => {
    await ok('admin', 'vault', 'create', 'expiring')
    await ok('admin', 'guard', 'enable', 'expiring')
    await approved('admin', 'grace', 'expiring', 'deleteVault')
    await clock.advance(12 * HOUR)
    await refused('admin', 7, 'ApprovalRequired', 'vault', 'delete', 'expiring')
    assert.deepEqual(
      (await ok('admin', 'guard', 'list', '--vault', 'expiring')).map((r: Json) => r.state),
      ['Expired'],
    )
    // A shorter validity, used in time, lets the vault go.
    await approved('admin', 'grace', 'expiring', 'deleteVault', '--valid-hours', '1')
    await clock.advance(HOUR - 1000)
    await ok('admin', 'vault', 'delete', 'expiring')
  })

  it('stop protection with delete, a shorter retention, disabling immutability and turning the guard off each need their approval', async () => {
    await ok('admin', 'vault', 'create', 'prod')
    const put = await fetch(`${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/db-os`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ size: '1MiB' }),
    })
    assert.equal(put.status, 201, await put.text())
    const page = await fetch(
      `${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/db-os/pages?offset=0`,
      {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(randomBytes(MiB)),
      },
    )
    assert.equal(page.status, 200, await page.text())
    await ok('admin', 'vm', 'create', 'db', '--os-disk', 'devstoreaccount1/disks/db-os')
    await ok('admin', 'policy', 'create', 'keep30', '--vault', 'prod', '--time', '03:00', '--keep-days', '30')
    await ok('admin', 'protect', 'db', '--vault', 'prod', '--policy', 'keep30')
    const started = await call('admin', 'POST', '/api/v1/vaults/prod/protectedItems/db/backup', {})
    assert.equal(started.status, 202, JSON.stringify(started.body))
    assert.equal((await ended(url, started.body.id)).state, 'Completed')
    await ok('admin', 'vault', 'settings', 'prod', '--immutability', 'Enabled')
    await ok('admin', 'guard', 'enable', 'prod')

    // A shorter retention: the immutable vault refuses it outright; once immutability is disabled (its
    // own approval) the guard still wants an approval for the shorter retention.
    const shorter = {
      policyType: 'Standard',
      schedule: { frequency: 'Daily', time: '03:00' },
      retention: { daily: { days: 20 } },
    }
    const locked = await call('admin', 'PUT', '/api/v1/vaults/prod/backupPolicies/keep30', shorter)
    assert.equal(locked.status, 409, JSON.stringify(locked.body))
    assert.equal(locked.body.error.code, 'RetentionLocked')
    await refused('admin', 7, 'ApprovalRequired', 'vault', 'settings', 'prod', '--immutability', 'Disabled')
    await approved('admin', 'grace', 'prod', 'disableImmutability')
    await ok('admin', 'vault', 'settings', 'prod', '--immutability', 'Disabled')
    const first = await call('admin', 'PUT', '/api/v1/vaults/prod/backupPolicies/keep30', shorter)
    assert.equal(first.status, 403, JSON.stringify(first.body))
    assert.equal(first.body.error.code, 'ApprovalRequired')
    await approved('admin', 'grace', 'prod', 'reduceRetention')
    const second = await call('admin', 'PUT', '/api/v1/vaults/prod/backupPolicies/keep30', shorter)
    assert.equal(second.status, 200, JSON.stringify(second.body))
    const longer = await call('admin', 'PUT', '/api/v1/vaults/prod/backupPolicies/keep30', {
      ...shorter,
      retention: { daily: { days: 40 } },
    })
    assert.equal(longer.status, 200, JSON.stringify(longer.body))

    // Stop protection with delete: refused without approval, nothing changed; then it runs.
    await refused('admin', 7, 'ApprovalRequired', 'protection', 'stop', 'db', '--delete-data')
    assert.equal((await ok('admin', 'protection', 'show', 'db')).state, 'Protected')
    assert.equal((await ok('admin', 'rp', 'list', 'db')).length, 1)
    await approved('admin', 'grace', 'prod', 'stopProtectionDeleteData')
    assert.equal((await ok('admin', 'protection', 'stop', 'db', '--delete-data')).state, 'NotProtected')

    // Turning the guard off is itself guarded.
    await refused('admin', 7, 'ApprovalRequired', 'guard', 'disable', 'prod')
    await approved('admin', 'gus', 'prod', 'changeGuard')
    assert.equal((await ok('admin', 'guard', 'disable', 'prod')).enabled, false)
  })

  it('requests, approvals and denials are in the audit log with who did them', async () => {
    const audit = await call('admin', 'GET', '/api/v1/audit?limit=1000')
    assert.equal(audit.status, 200, JSON.stringify(audit.body))
    const records = audit.body.items as Json[]
    const actions = (action: string) =>
      records.filter((r) => r.action === action && r.result === 'success').map((r) => r.actor)
    assert.ok(actions('POST /api/v1/guard/requests').includes('admin'))
    assert.ok(actions('POST /api/v1/guard/requests/{id}/approve').includes('grace'))
    assert.ok(actions('POST /api/v1/guard/requests/{id}/deny').includes('gus'))
    assert.ok(
      records.some(
        (r) =>
          r.action === 'POST /api/v1/guard/requests/{id}/approve' &&
          r.actor === 'grace' &&
          r.result === 'denied',
      ),
      'the refused self-approval is audited',
    )
  })
})
