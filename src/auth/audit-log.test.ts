import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sql } from 'kysely'
import { CATALOG_DIALECTS, openCatalog } from '../catalog/index.js'
import { AuditLog } from './audit-log.js'

const entry = (n: number) => ({
  actor: `user${n}`,
  roles: ['Admin'],
  client: '127.0.0.1',
  action: 'POST /api/v1/accounts',
  target: `/api/v1/accounts/a${n}`,
  result: 'success' as const,
  status: 201,
})

for (const dialect of CATALOG_DIALECTS) {
  describe(`AuditLog (${dialect.name})`, () => {
    const withLog = async (fn: (log: AuditLog, run: (q: string) => Promise<unknown>) => Promise<void>) => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-audit-unit-'))
      const catalog = await openCatalog(dialect.url(dir))
      try {
        const log = new AuditLog(catalog)
        await Promise.all([1, 2, 3, 4, 5].map((n) => log.append(entry(n))))
        await fn(log, (q) => sql.raw(q).execute(catalog.db))
      } finally {
        await catalog.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }

    it('chains records appended at once in order, each with the hash of the one before', () =>
      withLog(async (log) => {
        const { items } = await log.list()
        assert.deepEqual(
          items.map((r) => r.seq),
          [5, 4, 3, 2, 1],
        )
        for (let i = 0; i < 4; i++) assert.equal(items[i]!.prevHash, items[i + 1]!.hash)
        assert.equal(items[4]!.prevHash, '0'.repeat(64))
        assert.deepEqual(await log.verify(), { ok: true, records: 5, problems: [] })
      }))

    it('verify names an edited record, a removed one, a removed last one and a forged link', async () => {
      await withLog(async (log, run) => {
        await run(`update audit_log set status = 200 where seq = 2`)
        assert.deepEqual(
          (await log.verify()).problems.map((p) => p.seq),
          [2],
        )
      })
      await withLog(async (log, run) => {
        await run(`delete from audit_log where seq = 3`)
        const r = await log.verify()
        assert.equal(r.ok, false)
        assert.match(r.problems[0]!.problem, /records 3 are missing/)
      })
      await withLog(async (log, run) => {
        await run(`delete from audit_log where seq = 5`)
        assert.match((await log.verify()).problems[0]!.problem, /records after it are missing/)
      })
      await withLog(async (log, run) => {
        // Rewriting a record together with its own hash still breaks the link of the next one.
        await run(`update audit_log set details_json = '{"x":1}', hash = '${'a'.repeat(64)}' where seq = 4`)
        const seqs = (await log.verify()).problems.map((p) => p.seq)
        assert.ok(seqs.includes(4) && seqs.includes(5))
      })
    })
  })
}

// Several processes (API workers) on one shared catalog append to one chain.
for (const dialect of CATALOG_DIALECTS.filter((d) => d.name === 'postgres')) {
  describe(`AuditLog shared by processes (${dialect.name})`, () => {
    it('two logs on separate connections append at once without a gap, a repeat or a broken link', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-audit-shared-'))
      const one = await openCatalog(dialect.url(dir))
      const two = await openCatalog(dialect.url(dir))
      try {
        const a = new AuditLog(one)
        const b = new AuditLog(two)
        await a.append(entry(0))
        await b.append(entry(1))
        // `a` learnt its head before `b` wrote: it must not reuse it.
        await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).append(entry(i + 2))))
        const report = await a.verify()
        assert.deepEqual(report, { ok: true, records: 22, problems: [] })
      } finally {
        await one.close()
        await two.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
