import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import type { CairnError } from '../util/index.js'
import { MIGRATIONS } from './migrations.js'
import { CATALOG_DIALECTS, openCatalog } from './open-catalog.js'
import { SqliteCatalog } from './sqlite-catalog.js'

const execFileAsync = promisify(execFile)

// One suite for every catalog dialect (CATALOG_DIALECTS): SQLite and PostgreSQL on a scratch cluster.
for (const d of CATALOG_DIALECTS) {
  const dialect = { name: d.name, open: (dir: string) => openCatalog(d.url(dir)) }
  describe(`catalog (${dialect.name})`, () => {
    it('migrate() brings an empty catalog to the newest version, once', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-catalog-'))
      try {
        const c = await dialect.open(dir)
        assert.equal(c.dialect, dialect.name)
        assert.equal(await c.schemaVersion(), MIGRATIONS.at(-1)!.version)
        assert.deepEqual(await c.migrate(), [])
        await c.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('settings survive a reopen', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-catalog-'))
      try {
        const c = await dialect.open(dir)
        await c.setSetting('a', '1')
        await c.setSetting('a', '2')
        await c.close()
        const d = await dialect.open(dir)
        assert.equal(await d.getSetting('a'), '2')
        assert.equal(await d.getSetting('missing'), undefined)
        await d.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('five processes opening a new catalog at once migrate it once, the others waiting', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-catalog-'))
      const url = d.url(dir)
      try {
        // Separate processes, as when several workers start together: each runs openCatalog(url).
        const script = `import('${new URL('./index.js', import.meta.url).href}').then(async (m) => {
          const c = await m.openCatalog(process.argv[1]); console.log(await c.schemaVersion()); await c.close() })`
        const runs = await Promise.all(
          Array.from({ length: 5 }, () => execFileAsync(process.execPath, ['-e', script, url])),
        )
        for (const r of runs) assert.equal(Number(r.stdout.trim()), MIGRATIONS.at(-1)!.version)
        const c = await openCatalog(url)
        const applied = await sql<{ version: number; n: number }>`select version, count(*) as n
          from schema_migrations group by version order by version`.execute(c.db)
        assert.deepEqual(
          applied.rows.map((r) => [Number(r.version), Number(r.n)]),
          MIGRATIONS.map((m) => [m.version, 1]),
        )
        assert.ok(await c.getSetting('created_at'))
        await c.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}

describe('catalog migrations', () => {
  it('a failing migration is rolled back and reported with its version', async () => {
    const c = new SqliteCatalog(':memory:', [
      ...MIGRATIONS,
      {
        version: 99,
        name: 'broken',
        async up(db) {
          await sql`create table half_done (x integer)`.execute(db)
          await sql`this is not sql`.execute(db)
        },
      },
    ])
    await assert.rejects(c.migrate(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CatalogMigrationFailed')
      assert.match(err.message, /version 99 \(broken\)/)
      return true
    })
    assert.equal(await c.schemaVersion(), MIGRATIONS.at(-1)!.version)
    const t = await sql`select name from sqlite_master where name = 'half_done'`.execute(c.db)
    assert.equal(t.rows.length, 0)
    await c.close()
  })

  it('a catalog newer than this code is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-catalog-'))
    try {
      const file = join(dir, 'catalog.db')
      const future = new SqliteCatalog(file, [...MIGRATIONS, { version: 50, name: 'future', async up() {} }])
      await future.migrate()
      await future.close()
      const old = new SqliteCatalog(file)
      await assert.rejects(old.migrate(), /schema version 50 is newer/)
      await old.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('openCatalog', () => {
  it('opens sqlite:PATH, sqlite:///PATH and sqlite::memory: migrated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-catalog-'))
    try {
      for (const url of [`sqlite:${join(dir, 'a.db')}`, `sqlite://${join(dir, 'a.db')}`, 'sqlite::memory:']) {
        const c = await openCatalog(url)
        assert.equal(c.dialect, 'sqlite')
        assert.equal(await c.schemaVersion(), MIGRATIONS.at(-1)!.version, url)
        await c.setSetting('opened', url)
        await c.close()
      }
      const again = await openCatalog(`sqlite:${join(dir, 'a.db')}`)
      assert.equal(
        await again.getSetting('opened'),
        `sqlite://${join(dir, 'a.db')}`,
        'both spellings are one file',
      )
      await again.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses URLs of other databases and PostgreSQL URLs without a database, without repeating a password', async () => {
    const refused = async (url: string, pattern: RegExp) =>
      assert.rejects(openCatalog(url), (e: CairnError) => {
        assert.equal(e.code, 'UnsupportedCatalogUrl', e.message)
        assert.match(e.message, pattern)
        assert.ok(!e.message.includes('s3cret'), e.message)
        return true
      })
    await refused(
      'postgres://cairn:s3cret@db.example:5432',
      /postgres:\/\/…@db\.example:5432.*names no database/,
    )
    await refused('postgresql://db/', /names no database/)
    await refused('mysql://db/cairn', /no catalog dialect for "mysql:"/)
    await refused('/var/lib/cairn/catalog.db', /give sqlite:PATH, sqlite::memory: or postgres:/)
    await refused('sqlite:', /names no file/)
  })

  it('answers CatalogUnavailable, without the password, when no PostgreSQL server listens', async () => {
    await assert.rejects(openCatalog('postgres://cairn:s3cret@127.0.0.1:1/cairn'), (e: CairnError) => {
      assert.equal(e.code, 'CatalogUnavailable', e.message)
      assert.match(e.message, /postgres:\/\/…@127\.0\.0\.1:1\/cairn/)
      assert.ok(!e.message.includes('s3cret'), e.message)
      return true
    })
  })
})
