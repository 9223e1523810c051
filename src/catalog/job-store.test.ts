import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sql } from 'kysely'
import type { CairnError } from '../util/index.js'
import type { Catalog } from './catalog.js'
import { JobStore } from './job-store.js'
import { MIGRATIONS } from './migrations.js'
import { CATALOG_DIALECTS, openCatalog } from './open-catalog.js'
import { openSqliteCatalog, SqliteCatalog } from './sqlite-catalog.js'

/** Runs `body` with a way to open (and reopen) one new catalog of `dialect`. */
async function withCatalog(
  dialect: (typeof CATALOG_DIALECTS)[number],
  body: (open: () => Promise<Catalog>) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-jobstore-'))
  const opened: Catalog[] = []
  try {
    await body(async () => {
      const c = await openCatalog(dialect.url(dir))
      opened.push(c)
      return c
    })
  } finally {
    for (const c of opened) await c.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

for (const dialect of CATALOG_DIALECTS)
  describe(`JobStore (${dialect.name})`, () => {
    it('takes a job from Queued to Running to Completed with its progress and result, then never changes it', async () => {
      await withCatalog(dialect, async (open) => {
        let now = 1_000_000
        const store = new JobStore(await open(), { now: () => now })
        const job = await store.create({ kind: 'backup', resource: 'vms/web', vm: 'web', vault: 'v1' })
        assert.equal(job.state, 'Queued')
        assert.equal(job.startedBy, 'local')
        assert.equal(job.startedAt, undefined)
        now += 10
        assert.equal((await store.markRunning(job.id)).state, 'Running')
        now += 1000
        await store.update(job.id, { phase: 'TransferToVault', bytesDone: 250, bytesTotal: 1000 })
        const mid = await store.get(job.id)
        assert.equal(mid.progress.percent, 25)
        assert.equal(mid.progress.phase, 'TransferToVault')
        assert.equal(mid.progress.etaSeconds, 3)
        const done = await store.finish(job.id, { state: 'Completed', result: { recoveryPoint: 'rp1' } })
        assert.equal(done.state, 'Completed')
        assert.deepEqual(done.result, { recoveryPoint: 'rp1' })
        assert.equal(done.durationMs, 1000)
        const again = await store.finish(job.id, {
          state: 'Failed',
          error: { code: 'Internal', message: 'x' },
        })
        assert.equal(again.state, 'Completed', 'a finished job never changes')
        await store.update(job.id, { bytesDone: 1 })
        assert.equal((await store.get(job.id)).progress.bytesDone, 250)
        await assert.rejects(store.get('nope'), (e: CairnError) => e.code === 'JobNotFound')
      })
    })

    it('filters by state, kind, VM and vault, and pages newest first without losing or repeating a job', async () => {
      await withCatalog(dialect, async (open) => {
        let now = 5_000
        const store = new JobStore(await open(), { now: () => now++ })
        const ids: string[] = []
        for (let i = 0; i < 7; i++) {
          const j = await store.create({
            kind: i % 2 === 0 ? 'backup' : 'verify',
            resource: `r${i}`,
            ...(i % 2 === 0 ? { vm: `vm${i % 4}` } : {}),
            vault: i < 4 ? 'a' : 'b',
          })
          ids.push(j.id)
          if (i % 3 === 0)
            await store.finish(j.id, { state: 'Failed', error: { code: 'Internal', message: 'x' } })
        }
        const seen: string[] = []
        let cursor: string | undefined
        do {
          const page = await store.list({ limit: 3, ...(cursor ? { cursor } : {}) })
          assert.ok(page.items.length <= 3)
          seen.push(...page.items.map((j) => j.id))
          cursor = page.nextCursor
        } while (cursor)
        assert.deepEqual(seen, [...ids].reverse())
        const failed = await store.list({ state: 'Failed' })
        assert.deepEqual(
          failed.items.map((j) => j.id),
          [ids[6], ids[3], ids[0]],
        )
        assert.equal((await store.list({ state: ['Failed', 'Queued'] })).items.length, 7)
        assert.equal((await store.list({ kind: 'verify' })).items.length, 3)
        assert.deepEqual(
          (await store.list({ vm: 'vm0' })).items.map((j) => j.id),
          [ids[4], ids[0]],
        )
        assert.equal((await store.list({ vault: 'b', kind: 'backup' })).items.length, 2)
        await assert.rejects(
          store.list({ cursor: 'garbage' }),
          (e: CairnError) => e.code === 'InvalidRequest',
        )
      })
    })

    it('marks the jobs a dead service left Queued or Running as Interrupted at the next open, and only those', async () => {
      await withCatalog(dialect, async (open) => {
        const first = new JobStore(await open())
        const queued = await first.create({ kind: 'gc', resource: 'vaults/a', vault: 'a' })
        const running = await first.create({ kind: 'restore', resource: 'vaults/a/recoveryPoints/x' })
        await first.markRunning(running.id)
        await first.update(running.id, { details: { createdDisks: ['d1'] } })
        const done = await first.create({ kind: 'verify', resource: 'vaults/a' })
        await first.finish(done.id, { state: 'Completed', result: { ok: true } })
        const second = new JobStore(await open())
        const cut = await second.interruptUnfinished('the service died')
        assert.deepEqual(cut.map((j) => j.id).sort(), [queued.id, running.id].sort())
        for (const j of cut) {
          assert.equal(j.state, 'Interrupted')
          assert.deepEqual(j.error, { code: 'JobInterrupted', message: 'the service died' })
        }
        assert.deepEqual(cut.find((j) => j.id === running.id)?.details, { createdDisks: ['d1'] })
        assert.equal((await second.get(done.id)).state, 'Completed')
        assert.deepEqual(await second.interruptUnfinished('again'), [])
      })
    })
  })

describe('JobStore on SQLite', () => {
  it('brings the jobs of the version-10 schema into the new model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-jobstore-'))
    try {
      const file = join(dir, 'catalog.db')
      const old = new SqliteCatalog(
        file,
        MIGRATIONS.filter((m) => m.version <= 10),
      )
      await old.migrate()
      const row = (id: string, type: string, status: string, ended: number | null) =>
        sql`insert into jobs (id, type, status, phase, entity, item_id, vault, bytes_done, bytes_total,
          started_at, ended_at, error_code, error_message, details_json)
          values (${id}, ${type}, ${status}, 'x', 'web', 'item1', 'v1', 0, 0, 1000, ${ended}, null, null, '{}')`.execute(
          old.db,
        )
      await row('a', 'Backup', 'CompletedWithWarnings', 2000)
      await row('b', 'Restore', 'InProgress', null)
      await old.close()
      const current = await openSqliteCatalog(file)
      try {
        const store = new JobStore(current)
        const a = await store.get('a')
        assert.equal(a.kind, 'backup')
        assert.equal(a.state, 'Completed')
        assert.equal(a.vm, 'web')
        assert.equal(a.startedBy, 'local')
        assert.equal((await store.get('b')).state, 'Running')
        const cut = await store.interruptUnfinished('gone')
        assert.deepEqual(
          cut.map((j) => [j.id, j.kind, j.state]),
          [['b', 'restore', 'Interrupted']],
        )
      } finally {
        await current.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
