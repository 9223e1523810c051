import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ManualClock } from '../src/protection/index.js'
import type { CairnService } from '../src/server/index.js'
import { startServiceIn } from './_in-process.js'
import { api, D, ended, type Json } from './_jobs.js'
import { apiFetch, cairnAt } from './_service.js'

// Soft delete and immutable vaults through the real service (HTTP and the cairn CLI), with the
// service's test-only clock: every path that could remove backup data is tried and refused or kept,
// then time frees it. The library-level paths (direct Vault and VaultRegistry calls, deleteVaultFiles)
// are src/vault/vault-settings.test.ts.

const DAY = 86_400_000
const MiB = 1024 * 1024

describe('backups that survive a stolen admin: soft delete and immutability', () => {
  let dir: string
  let service: CairnService
  let url: string
  const clock = new ManualClock(Date.now())

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-guard-'))
    service = await startServiceIn(dir, {}, { clock })
    url = service.listeners.api!
  })
  after(async () => {
    await service.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** `cairn ARGS --json`: exit code, parsed stdout, stderr. */
  const cli = async (...args: string[]) => {
    const r = await cairnAt(url, args)
    let body: Json
    try {
      body = r.stdout ? JSON.parse(r.stdout) : undefined
    } catch {
      body = r.stdout
    }
    return { code: r.code, body, stderr: r.stderr }
  }
  const ok = async (...args: string[]) => {
    const r = await cli(...args)
    assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
    return r.body
  }
  const refused = async (exit: number, code: string, ...args: string[]) => {
    const r = await cli(...args)
    assert.equal(r.code, exit, `cairn ${args.join(' ')} should fail: ${JSON.stringify(r.body)}`)
    assert.match(r.stderr, new RegExp(code))
  }
  const disk = async (name: string): Promise<Buffer> => {
    const data = randomBytes(MiB)
    assert.equal((await api(url, 'PUT', `${D}/${name}`, { size: '1MiB' })).status, 201)
    const res = await apiFetch(`${url}${D}/${name}/pages?offset=0`, {
      method: 'PUT',
      body: new Uint8Array(data),
      headers: { 'content-type': 'application/octet-stream' },
    })
    assert.equal(res.status, 200, await res.text())
    return data
  }
  const read = async (name: string) =>
    Buffer.from(await (await apiFetch(`${url}${D}/${name}/pages?offset=0&length=${MiB}`)).arrayBuffer())
  /** Backs a disk up into a vault with an expiry `days` from the service's clock; answers the point id. */
  const backup = async (vault: string, name: string, days: number): Promise<string> => {
    const started = await api(url, 'POST', `/api/v1/vaults/${vault}/backups`, {
      disks: [{ account: 'devstoreaccount1', container: 'disks', disk: name }],
      expiresAt: new Date(clock.now() + days * DAY).toISOString(),
    })
    assert.equal(started.status, 202, JSON.stringify(started.body))
    const job = await ended(url, started.body.id)
    assert.equal(job.state, 'Completed', JSON.stringify(job))
    const { body } = await api(url, 'GET', `/api/v1/vaults/${vault}/recoveryPoints?item=${name}`)
    return body.items.at(-1).id
  }
  const gc = async (vault: string) => {
    const started = await api(url, 'POST', `/api/v1/vaults/${vault}/gc`)
    const job = await ended(url, started.body.id)
    assert.equal(job.state, 'Completed', JSON.stringify(job))
    return job.result
  }
  const points = async (vault: string) =>
    (await api(url, 'GET', `/api/v1/vaults/${vault}/recoveryPoints`)).body.items.map((p: Json) => p.id)

  it('a deleted point is soft-deleted, listed with its purge date, kept by GC and prune, undeleted whole, and purged only after 14 days', async () => {
    const data = await disk('sd-a')
    await ok('vault', 'create', 'soft')
    assert.deepEqual((await ok('vault', 'settings', 'soft')).softDelete, {
      state: 'Enabled',
      retentionDays: 14,
    })
    const rp = await backup('soft', 'sd-a', 365)
    const deleted = await ok('rp', 'delete', rp, '--vault', 'soft')
    assert.deepEqual(deleted, {
      deleted: rp,
      state: 'SoftDeleted',
      purgeAt: new Date(clock.now() + 14 * DAY).toISOString(),
    })
    assert.deepEqual(await points('soft'), [])
    const listed = await ok('rp', 'list', '--vault', 'soft', '--deleted')
    assert.deepEqual(
      listed.map((p: Json) => [p.id, p.state, p.purgeAt]),
      [[rp, 'SoftDeleted', deleted.purgeAt]],
    )
    // Nothing frees its data meanwhile, and the vault cannot go.
    assert.equal((await gc('soft')).packsDeleted, 0)
    const del = await api(url, 'DELETE', '/api/v1/vaults/soft?deleteData=true')
    assert.equal(del.status, 409)
    assert.equal(del.body.error.code, 'VaultNotEmpty')
    await refused(4, 'VaultNotEmpty', 'vault', 'delete', 'soft')
    await clock.advance(13 * DAY)
    assert.equal((await gc('soft')).packsDeleted, 0)
    await ok('rp', 'undelete', rp, '--vault', 'soft')
    assert.deepEqual(await points('soft'), [rp])
    const restore = await api(url, 'POST', `/api/v1/vaults/soft/recoveryPoints/${rp}/restore`, {
      target: { account: 'devstoreaccount1', container: 'disks', disk: 'sd-a-back' },
    })
    assert.equal((await ended(url, restore.body.id)).state, 'Completed')
    assert.ok((await read('sd-a-back')).equals(data), 'the undeleted point restores byte for byte')
    // Deleted again; once 14 days passed GC purges it and the vault may go.
    await ok('rp', 'delete', rp, '--vault', 'soft')
    await clock.advance(14 * DAY - 1)
    assert.equal((await gc('soft')).softDeletedPurged, 0)
    await clock.advance(1)
    const freed = await gc('soft')
    assert.equal(freed.softDeletedPurged, 1)
    assert.ok(freed.packsDeleted >= 1, JSON.stringify(freed))
    await refused(3, 'RecoveryPointNotFound', 'rp', 'undelete', rp, '--vault', 'soft')
    await ok('vault', 'delete', 'soft', '--delete-data')
  })

  it('soft delete keeps 14 to 180 days and AlwaysOn cannot be turned off again', async () => {
    await ok('vault', 'create', 'always')
    await refused(2, 'InvalidRequest', 'vault', 'settings', 'always', '--soft-delete-days', '13')
    await refused(2, 'InvalidRequest', 'vault', 'settings', 'always', '--soft-delete-days', '181')
    assert.equal(
      (await ok('vault', 'settings', 'always', '--soft-delete-days', '180')).softDelete.retentionDays,
      180,
    )
    await ok('vault', 'settings', 'always', '--soft-delete', 'AlwaysOn')
    await refused(4, 'SettingIrreversible', 'vault', 'settings', 'always', '--soft-delete', 'Disabled')
    const patch = await api(url, 'PATCH', '/api/v1/vaults/always/settings', {
      softDelete: { state: 'Enabled' },
    })
    assert.equal(patch.status, 409)
    assert.equal(patch.body.error.code, 'SettingIrreversible')
    assert.equal((await ok('vault', 'settings', 'always')).softDelete.state, 'AlwaysOn')
  })

  it("stop protection with delete-data soft-deletes the VM's points and protection undelete brings them back restorable", async () => {
    const data = await disk('web-os')
    await ok('vault', 'create', 'prot')
    await ok('vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os')
    await ok('policy', 'create', 'daily', '--vault', 'prot', '--time', '03:00', '--keep-days', '7')
    await ok('protect', 'web', '--vault', 'prot', '--policy', 'daily')
    await ok('backup', 'now', 'web', '--wait')
    const [point] = await ok('rp', 'list', 'web')
    assert.equal((await ok('protection', 'stop', 'web', '--delete-data')).state, 'NotProtected')
    const soft = await ok('rp', 'list', '--vault', 'prot', '--deleted')
    assert.deepEqual(
      soft.map((p: Json) => [p.id, p.source.name]),
      [[point.id, 'web']],
    )
    const back = await ok('protection', 'undelete', 'web', '--vault', 'prot')
    assert.equal(back.item.state, 'ProtectionStopped')
    assert.deepEqual(back.undeleted, [point.id])
    const again = await ok('rp', 'list', 'web')
    assert.deepEqual(
      again.map((p: Json) => [p.id, p.tier]),
      [[point.id, 'Vault']],
    )
    await ok('restore', 'vm', 'web', '--as', 'web-copy', '--wait')
    assert.ok((await read('web-copy-os')).equals(data), 'the undeleted point restores the VM')
  })

  it('an immutable vault refuses every path that would remove a point before its retention ends, and frees it afterwards', async () => {
    await disk('im-a')
    await disk('im-os')
    await ok('vault', 'create', 'imm')
    const rp = await backup('imm', 'im-a', 10)
    await ok('vm', 'create', 'db', '--os-disk', 'devstoreaccount1/disks/im-os')
    await ok('policy', 'create', 'keep30', '--vault', 'imm', '--time', '03:00', '--keep-days', '30')
    await ok('policy', 'create', 'keep7', '--vault', 'imm', '--time', '03:00', '--keep-days', '7')
    await ok('protect', 'db', '--vault', 'imm', '--policy', 'keep30')
    await ok('backup', 'now', 'db', '--wait')
    const vmPoints = await ok('rp', 'list', 'db')
    assert.equal(vmPoints.length, 1)
    assert.equal(
      (await ok('vault', 'settings', 'imm', '--immutability', 'Enabled')).immutability.state,
      'Enabled',
    )

    // Point delete: API and CLI.
    const del = await api(url, 'DELETE', `/api/v1/vaults/imm/recoveryPoints/${rp}`)
    assert.equal(del.status, 409)
    assert.equal(del.body.error.code, 'RetentionLocked')
    await refused(4, 'RetentionLocked', 'rp', 'delete', rp, '--vault', 'imm')
    // Prune, even of policy points.
    const prune = await api(url, 'POST', '/api/v1/vaults/imm/prune', {
      keepLast: 1,
      includePolicyPoints: true,
    })
    assert.equal(prune.status, 200, JSON.stringify(prune.body))
    assert.deepEqual(prune.body.removed, [])
    // Policy changes that shorten retention: the policy itself, and moving the item to a shorter one.
    const shorter = await api(url, 'PUT', '/api/v1/vaults/imm/backupPolicies/keep30', {
      policyType: 'Standard',
      schedule: { frequency: 'Daily', time: '03:00' },
      retention: { daily: { days: 10 } },
    })
    assert.equal(shorter.status, 409, JSON.stringify(shorter.body))
    assert.equal(shorter.body.error.code, 'RetentionLocked')
    await refused(4, 'RetentionLocked', 'protection', 'change', 'db', '--policy', 'keep7')
    const longer = await api(url, 'PUT', '/api/v1/vaults/imm/backupPolicies/keep30', {
      policyType: 'Standard',
      schedule: { frequency: 'Daily', time: '03:00' },
      retention: { daily: { days: 60 } },
    })
    assert.equal(longer.status, 200, JSON.stringify(longer.body))
    // Stop protection with delete: refused before anything changes.
    await refused(4, 'RetentionLocked', 'protection', 'stop', 'db', '--delete-data')
    assert.equal((await ok('protection', 'show', 'db')).state, 'Protected')
    assert.deepEqual(
      (await ok('rp', 'list', 'db')).map((p: Json) => p.id),
      vmPoints.map((p: Json) => p.id),
    )
    // Vault delete, with and without its data.
    for (const q of ['?deleteData=true', '']) {
      const r = await api(url, 'DELETE', `/api/v1/vaults/imm${q}`)
      assert.equal(r.status, 409, JSON.stringify(r.body))
    }
    assert.equal((await gc('imm')).packsDeleted, 0)
    assert.deepEqual((await points('imm')).length, 2)
    // Locked cannot be undone.
    await ok('vault', 'settings', 'imm', '--immutability', 'Locked')
    await refused(4, 'SettingIrreversible', 'vault', 'settings', 'imm', '--immutability', 'Disabled')
    const undo = await api(url, 'PATCH', '/api/v1/vaults/imm/settings', {
      immutability: { state: 'Enabled' },
    })
    assert.equal(undo.body.error.code, 'SettingIrreversible')
    // Time frees the disk point (stop scheduling the VM first, keeping its data).
    await ok('protection', 'stop', 'db')
    await clock.advance(10 * DAY - 1)
    await refused(4, 'RetentionLocked', 'rp', 'delete', rp, '--vault', 'imm')
    await clock.advance(1)
    assert.deepEqual(await ok('rp', 'delete', rp, '--vault', 'imm'), { deleted: rp, state: 'Deleted' })
    assert.deepEqual((await ok('rp', 'list', '--vault', 'imm', '--deleted')).length, 0)
  })
})
