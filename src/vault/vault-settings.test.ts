import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { openCatalog } from '../catalog/index.js'
import type { CairnError } from '../util/index.js'
import { bufferSink, bufferSource } from './_testing.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import type { RecoveryPoint } from './types.js'
import { type CreateVaultOptions, Vault } from './vault.js'
import type { VaultBackend } from './vault-backend.js'
import { deleteVaultFiles } from './vault-location.js'
import { VaultRegistry } from './vault-registry.js'

// Soft delete and immutability as the vault library enforces them, whoever calls it: every way the
// library offers to remove a point is tried with a test clock, refused or kept, then freed by time.

const DAY = 86_400_000
const KiB = 1024

/** A test clock the vault judges retention by. */
function testClock(start = Date.now()) {
  const c = {
    t: start,
    now: () => c.t,
    advance: (ms: number) => {
      c.t += ms
    },
  }
  return c
}

const code = (expected: string, pattern?: RegExp) => (e: CairnError) => {
  assert.equal(e.code, expected, e.message)
  if (pattern) assert.match(e.message, pattern)
  return true
}

async function withVault(
  fn: (v: Vault, clock: ReturnType<typeof testClock>, backend: VaultBackend) => Promise<void>,
  options: CreateVaultOptions = {},
): Promise<void> {
  const clock = testClock()
  const backend = new MemoryVaultBackend(`settings-${randomUUID()}`)
  const v = await Vault.create(backend, { workers: 1, now: clock.now, ...options })
  try {
    await fn(v, clock, backend)
  } finally {
    await v.close()
  }
}

const item = { kind: 'disks', name: 'web' }

async function point(v: Vault, data: Buffer, retainDays?: number | null): Promise<RecoveryPoint> {
  return v.backup({
    item,
    sources: [bufferSource('os', data)],
    reference: null,
    ...(retainDays === undefined
      ? {}
      : { expiresAt: retainDays === null ? null : new Date(v.now() + retainDays * DAY) }),
  })
}

async function restores(v: Vault, id: string, data: Buffer): Promise<boolean> {
  const sink = bufferSink(data.length)
  await v.restore(id, 'os', sink)
  return sink.data.equals(data)
}

describe('soft delete in the vault library', () => {
  it('a new vault has soft delete Enabled for 14 days and immutability Disabled', async () => {
    await withVault(async (v) => {
      const s = await v.settings()
      assert.deepEqual(
        { softDelete: s.softDelete, immutability: s.immutability },
        { softDelete: { state: 'Enabled', retentionDays: 14 }, immutability: { state: 'Disabled' } },
      )
    })
  })

  it('a deleted point is soft-deleted, listed with its purge date, kept by gc, and undelete brings it back whole', async () => {
    await withVault(async (v, clock) => {
      const data = randomBytes(256 * KiB)
      const a = await point(v, data, 30)
      const removal = await v.deleteRecoveryPoint(a.id)
      assert.equal(removal.state, 'SoftDeleted')
      assert.equal(removal.purgeAt, new Date(clock.t + 14 * DAY).toISOString())
      assert.deepEqual(await v.listRecoveryPoints(), [])
      const listed = await v.listSoftDeleted()
      assert.deepEqual(
        listed.map((p) => [p.id, p.state, p.purgeAt]),
        [[a.id, 'SoftDeleted', removal.purgeAt]],
      )
      clock.advance(13 * DAY)
      const gc = await v.gc()
      assert.equal(gc.packsDeleted, 0)
      assert.equal(gc.softDeletedPurged, 0)
      await v.undeleteRecoveryPoint(a.id)
      assert.deepEqual(await v.listSoftDeleted(), [])
      assert.deepEqual(
        (await v.listRecoveryPoints()).map((p) => p.id),
        [a.id],
      )
      assert.ok(await restores(v, a.id, data))
      assert.equal((await v.verify()).problems.length, 0)
    })
  })

  it('soft-deleted data is purged and collected only once its time has come', async () => {
    await withVault(async (v, clock) => {
      const a = await point(v, randomBytes(256 * KiB), 100)
      await v.deleteRecoveryPoint(a.id)
      clock.advance(14 * DAY - 1)
      assert.deepEqual(await v.purgeSoftDeleted(), [])
      assert.equal((await v.gc()).bytesReclaimed, 0)
      clock.advance(1)
      const gc = await v.gc()
      assert.equal(gc.softDeletedPurged, 1)
      assert.ok(gc.bytesReclaimed >= 256 * KiB, `reclaimed ${gc.bytesReclaimed}`)
      await assert.rejects(v.undeleteRecoveryPoint(a.id), code('RecoveryPointNotFound'))
    })
  })

  it('prune soft-deletes the points its count rules drop and deletes those whose retention ended', async () => {
    await withVault(async (v, clock) => {
      const old = await point(v, randomBytes(64 * KiB), 1)
      const mid = await point(v, randomBytes(64 * KiB), 365)
      const last = await point(v, randomBytes(64 * KiB), 365)
      clock.advance(2 * DAY)
      const report = await v.prune({ policy: { keepLast: 1 } })
      assert.deepEqual(report.removed, [old.id, mid.id].sort())
      assert.deepEqual(report.kept, [last.id])
      // The expired one is gone for good; the one removed early is soft-deleted.
      assert.deepEqual(
        (await v.listSoftDeleted()).map((p) => p.id),
        [mid.id],
      )
    })
  })

  it('a point whose retention ended is deleted at once, not soft-deleted', async () => {
    await withVault(async (v, clock) => {
      const a = await point(v, randomBytes(64 * KiB), 1)
      clock.advance(DAY)
      assert.equal((await v.deleteRecoveryPoint(a.id)).state, 'Deleted')
      assert.deepEqual(await v.listSoftDeleted(), [])
    })
  })

  it('with soft delete Disabled a delete is final', async () => {
    await withVault(
      async (v) => {
        const a = await point(v, randomBytes(64 * KiB), 30)
        assert.equal((await v.deleteRecoveryPoint(a.id)).state, 'Deleted')
        assert.deepEqual(await v.listSoftDeleted(), [])
      },
      { settings: { softDelete: { state: 'Disabled' } } },
    )
  })

  it('the soft-delete retention is 14 to 180 days and AlwaysOn cannot be turned off again', async () => {
    await withVault(async (v, clock) => {
      await assert.rejects(v.updateSettings({ softDelete: { retentionDays: 13 } }), code('InvalidRequest'))
      await assert.rejects(v.updateSettings({ softDelete: { retentionDays: 181 } }), code('InvalidRequest'))
      await v.updateSettings({ softDelete: { retentionDays: 180 } })
      const a = await point(v, randomBytes(64 * KiB), 365)
      assert.equal((await v.deleteRecoveryPoint(a.id)).purgeAt, new Date(clock.t + 180 * DAY).toISOString())
      await v.updateSettings({ softDelete: { state: 'Disabled' } })
      await v.updateSettings({ softDelete: { state: 'AlwaysOn' } })
      for (const state of ['Disabled', 'Enabled'] as const)
        await assert.rejects(
          v.updateSettings({ softDelete: { state } }),
          code('SettingIrreversible', /AlwaysOn/),
        )
      assert.equal((await v.settings()).softDelete.state, 'AlwaysOn')
    })
  })

  it('a vault made before settings existed opens with the defaults', async () => {
    await withVault(async (v, clock, backend) => {
      const a = await point(v, randomBytes(64 * KiB), 30)
      await backend.delete('settings')
      const again = await Vault.open(backend, undefined, { workers: 1, now: clock.now })
      try {
        assert.equal((await again.settings()).softDelete.state, 'Enabled')
        assert.deepEqual(
          (await again.listRecoveryPoints()).map((p) => p.id),
          [a.id],
        )
        assert.equal((await again.deleteRecoveryPoint(a.id)).state, 'SoftDeleted')
      } finally {
        await again.close()
      }
    })
  })
})

describe('immutability in the vault library', () => {
  it('no call of the library removes a point before its retention ends; afterwards it goes', async () => {
    await withVault(async (v, clock) => {
      const data = randomBytes(128 * KiB)
      const a = await point(v, data, 10)
      const b = await point(v, randomBytes(64 * KiB), 10)
      await v.updateSettings({ immutability: { state: 'Enabled' } })
      await assert.rejects(v.deleteRecoveryPoint(a.id), code('RetentionLocked', /retained until/))
      await assert.rejects(v.checkDeletable(a.id), code('RetentionLocked'))
      const pruned = await v.prune({ policy: { keepLast: 1 } })
      assert.deepEqual(pruned.removed, [])
      assert.deepEqual(pruned.kept, [a.id, b.id].sort())
      await v.gc()
      assert.ok(await restores(v, a.id, data))
      clock.advance(10 * DAY)
      await v.checkDeletable(a.id)
      assert.equal((await v.deleteRecoveryPoint(a.id)).state, 'Deleted')
      // b's retention ended too: prune may now take it.
      assert.deepEqual((await v.prune({ policy: { keepLast: 1 } })).removed, [b.id])
    })
  })

  it('a point without an expiry is never removed while the vault is immutable', async () => {
    await withVault(async (v, clock) => {
      const a = await point(v, randomBytes(64 * KiB), null)
      await v.updateSettings({ immutability: { state: 'Locked' } })
      clock.advance(10_000 * DAY)
      await assert.rejects(v.deleteRecoveryPoint(a.id), code('RetentionLocked', /no expiry/))
    })
  })

  it('a retention recorded at backup holds the point beyond its own expiry', async () => {
    await withVault(async (v, clock) => {
      const a = await v.backup({
        item,
        sources: [bufferSource('os', randomBytes(64 * KiB))],
        expiresAt: null,
        retainUntil: new Date(clock.t + 30 * DAY),
      })
      await v.updateSettings({ immutability: { state: 'Enabled' } })
      clock.advance(29 * DAY)
      await assert.rejects(v.deleteRecoveryPoint(a.id), code('RetentionLocked'))
      clock.advance(DAY)
      assert.equal((await v.deleteRecoveryPoint(a.id)).state, 'Deleted')
    })
  })

  it('Enabled can be disabled, Locked cannot be undone', async () => {
    await withVault(async (v) => {
      await v.updateSettings({ immutability: { state: 'Enabled' } })
      await v.updateSettings({ immutability: { state: 'Disabled' } })
      await v.updateSettings({ immutability: { state: 'Locked' } })
      for (const state of ['Disabled', 'Enabled'] as const)
        await assert.rejects(
          v.updateSettings({ immutability: { state } }),
          code('SettingIrreversible', /Locked/),
        )
      assert.equal((await v.settings()).immutability.state, 'Locked')
    })
  })

  it('a soft-deleted point an immutable vault still retains is not purged', async () => {
    await withVault(async (v, clock) => {
      const a = await point(v, randomBytes(64 * KiB), 60)
      await v.deleteRecoveryPoint(a.id)
      await v.updateSettings({ immutability: { state: 'Locked' } })
      clock.advance(30 * DAY)
      assert.deepEqual(await v.purgeSoftDeleted(), [])
      clock.advance(30 * DAY)
      assert.deepEqual(await v.purgeSoftDeleted(), [a.id])
    })
  })
})

describe('deleting a vault that keeps data', () => {
  it('deleteVaultFiles and VaultRegistry.remove refuse a vault with soft-deleted or retained points', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-settings-'))
    const data = join(dir, 'data')
    await mkdir(data)
    const catalog = await openCatalog(`sqlite:${join(data, 'catalog.db')}`)
    const clock = testClock()
    const registry = new VaultRegistry(catalog, { dataDir: data, workers: 1, now: clock.now })
    try {
      const info = await registry.create('keep')
      const v = await registry.open('keep')
      const a = await point(v, randomBytes(64 * KiB), 30)
      await v.deleteRecoveryPoint(a.id)
      await assert.rejects(deleteVaultFiles(info.location), code('VaultNotEmpty', /1 soft-deleted/))
      for (const deleteData of [true, false])
        await assert.rejects(registry.remove('keep', { deleteData }), code('VaultNotEmpty', /soft-deleted/))
      await v.undeleteRecoveryPoint(a.id)
      await v.updateSettings({ immutability: { state: 'Enabled' } })
      await assert.rejects(registry.remove('keep'), code('RetentionLocked', /immutable/))
      await assert.rejects(deleteVaultFiles(info.location), code('VaultNotEmpty', /1 recovery points/))
      // Once the retention ended the point can go, and then the vault.
      clock.advance(30 * DAY)
      await v.deleteRecoveryPoint(a.id)
      await registry.remove('keep', { deleteData: true })
      assert.deepEqual(await registry.list(), [])
      assert.equal(existsSync(info.location), false)
    } finally {
      await registry.close()
      await catalog.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a vault whose soft-deleted points were purged can be deleted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-settings-'))
    const data = join(dir, 'data')
    await mkdir(data)
    const catalog = await openCatalog(`sqlite:${join(data, 'catalog.db')}`)
    const clock = testClock()
    const registry = new VaultRegistry(catalog, { dataDir: data, workers: 1, now: clock.now })
    try {
      await registry.create('gone')
      const v = await registry.open('gone')
      const a = await point(v, randomBytes(64 * KiB), 30)
      await v.deleteRecoveryPoint(a.id)
      clock.advance(14 * DAY)
      await registry.remove('gone', { deleteData: true })
      assert.deepEqual(await registry.list(), [])
    } finally {
      await registry.close()
      await catalog.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
