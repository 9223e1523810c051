import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CATALOG_DIALECTS, openCatalog } from '../src/catalog/index.js'
import { api, D, ended, type Json, randomDisk, request, waitJob } from './_jobs.js'
import { signIn, startService } from './_service.js'

const MiB = 1024 * 1024
const SIZE = 64 * MiB
const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'big' }]

async function diskHash(url: string, disk: string): Promise<string> {
  const h = createHash('sha256')
  for (let o = 0; o < SIZE; o += 4 * MiB) {
    const res = await request(`${url}${D}/${disk}/pages?offset=${o}&length=${4 * MiB}`)
    assert.equal(res.status, 200)
    h.update(Buffer.from(await res.arrayBuffer()))
  }
  return h.digest('hex')
}

const committed = (j: Json) =>
  j.details.checkpoint ? Object.values(j.details.checkpoint.disks as Record<string, Json[]>).flat().length : 0

// Two `cairn serve` processes, each with its own data folder (disk store), on one PostgreSQL catalog.
for (const dialect of CATALOG_DIALECTS.filter((d) => d.name === 'postgres'))
  describe(`two workers on one catalog (${dialect.name})`, () => {
    it('share the records; a backup whose worker is killed -9 is not claimed by the other worker (it needs the disks of its host), and resumes there to one byte-exact point', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-scale-out-'))
      const catalogUrl = dialect.url(dir)
      const dataA = join(dir, 'a')
      const dataB = join(dir, 'b')
      // A short lease (3 s): B sees A's job expire within seconds.
      const lease = ['--job-lease', '3']
      const asA = ['--catalog', catalogUrl, '--role', 'all', ...lease]
      let a = await startService(asA, { data: dataA })
      // B finds the admin A made in the shared catalog (no password file of its own): A's password signs in.
      // B's start failing must not leave A (and its catalog) running.
      const b = await startService(['--catalog', catalogUrl, '--role', 'worker', ...lease], {
        data: dataB,
        signIn: false,
      }).catch(async (err) => {
        await a.dispose()
        rmSync(dir, { recursive: true, force: true })
        throw err
      })
      try {
        await signIn(b.url, dataA)
        await randomDisk(a.url, 'big', SIZE / MiB)
        assert.equal((await api(a.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
        const seenByB = (await api(b.url, 'GET', '/api/v1/vaults')).body.items as Json[]
        assert.deepEqual(
          seenByB.map((v) => v.name),
          ['v1'],
          'the other process reads the same catalog',
        )
        for (const s of [a, b]) assert.equal((await fetch(`${s.url}/readyz`)).status, 200)

        const started = await api(a.url, 'POST', '/api/v1/vaults/v1/backups', { disks, item: 'big' })
        assert.equal(started.status, 202, JSON.stringify(started.body))
        const id = started.body.id as string
        const mid = await waitJob(a.url, id, (j) => committed(j) > 0, 'a checkpoint')
        assert.equal(mid.state, 'Running')
        const host = mid.details.host as string
        assert.match(host, /:.*\/a$/, 'the job names the host (owner) whose disk store it reads')
        await a.stop('SIGKILL')

        // Past A's lease and several takeover passes of B (every second): B does not claim a job bound to
        // A's disks; it stays A's, Running, for A to take at its start.
        const catalog = await openCatalog(catalogUrl)
        try {
          const row = () =>
            catalog.db
              .selectFrom('jobs')
              .select(['owner', 'lease_until', 'status', 'host'])
              .where('id', '=', id)
              .executeTakeFirstOrThrow()
          const deadline = Date.now() + 60_000
          while (Number((await row()).lease_until) >= Date.now()) {
            assert.ok(Date.now() < deadline, "A's lease never ran out")
            await new Promise((r) => setTimeout(r, 250))
          }
          await new Promise((r) => setTimeout(r, 3000))
          const r = await row()
          assert.equal(r.status, 'Running', 'nobody ended it')
          assert.equal(r.owner, host, 'B left it to the host of its disks')
          assert.equal(r.host, host)
        } finally {
          await catalog.close()
        }
        const viaB = (await api(b.url, 'GET', `/api/v1/jobs/${id}`)).body
        assert.equal(viaB.state, 'Running', 'B did not end or resume a job it cannot reach the disks of')

        // A comes back on its data folder: it takes its own job at once and resumes it from its checkpoint.
        a = await startService(asA, { data: dataA })
        const done = await ended(a.url, id)
        assert.equal(done.state, 'Completed', JSON.stringify(done))
        assert.equal(done.details.resumed.length, 1)
        const points = (await api(b.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items as Json[]
        assert.deepEqual(
          points.map((p) => p.id),
          [done.result.id],
          'one point, seen by both',
        )
        const restore = await api(
          a.url,
          'POST',
          `/api/v1/vaults/v1/recoveryPoints/${done.result.id}/restore`,
          {
            target: { account: 'devstoreaccount1', container: 'disks', disk: 'copy' },
          },
        )
        assert.equal(restore.status, 202, JSON.stringify(restore.body))
        assert.equal((await ended(a.url, restore.body.id)).state, 'Completed')
        assert.equal(await diskHash(a.url, 'copy'), await diskHash(a.url, 'big'))
      } finally {
        await a.dispose()
        await b.dispose()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
