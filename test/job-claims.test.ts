import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CATALOG_DIALECTS } from '../src/catalog/index.js'
import { claimRace } from './_claims.js'

// Workers are separate processes sharing one catalog: on PostgreSQL each claim is an UPDATE of rows
// picked FOR UPDATE SKIP LOCKED. SQLite catalogs belong to one process, so this runs on PostgreSQL only.
for (const dialect of CATALOG_DIALECTS.filter((d) => d.name === 'postgres'))
  describe(`job claims by three worker processes (${dialect.name})`, () => {
    it('every queued job is claimed exactly once, by workers claiming side by side', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-claims-'))
      try {
        const race = await claimRace(dialect.url(dir), 600, 3)
        assert.deepEqual(race.doubles, [], 'no job claimed twice')
        assert.deepEqual(race.missed, [], 'no job left unclaimed')
        assert.equal(
          race.perWorker.reduce((a, b) => a + b, 0),
          600,
        )
        // Claims from more than one process prove the race was real. Not every worker: on a loaded
        // machine the OS may not run a third process before the others have emptied the queue (a CI
        // run saw 598, 0 and 2).
        assert.ok(
          race.perWorker.filter((n) => n > 0).length >= 2,
          `workers claimed side by side (${race.perWorker})`,
        )
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
