import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { JobLeases } from './job-leases.js'
import { JobStore } from './job-store.js'
import { LeaderLease } from './leader-lease.js'
import { CATALOG_DIALECTS, openCatalog } from './open-catalog.js'

for (const dialect of CATALOG_DIALECTS)
  describe(`JobLeases and LeaderLease (${dialect.name})`, () => {
    it('claims each queued job once across claimers on separate connections, oldest first, only the kinds asked', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-leases-'))
      const url = dialect.url(dir)
      // Opened one after another: in one process, a SQLite open waiting on another's migration would block it.
      const catalogs = [await openCatalog(url), await openCatalog(url), await openCatalog(url)]
      try {
        let now = 1_000
        const store = new JobStore(catalogs[0]!, { now: () => now++ })
        const ids: string[] = []
        for (let i = 0; i < 60; i++)
          ids.push((await store.create({ kind: 'backup', resource: `vms/${i}` })).id)
        const gc = await store.create({ kind: 'gc', resource: 'vaults/a' })
        const claimers = catalogs.map((c, i) => ({ owner: `w${i}`, leases: new JobLeases(c) }))
        const got = new Map<string, string>()
        await Promise.all(
          claimers.map(async ({ owner, leases }) => {
            for (;;) {
              const jobs = await leases.claimQueued(owner, { limit: 2, leaseMs: 60_000, kinds: ['backup'] })
              if (jobs.length === 0) return
              for (const j of jobs) {
                assert.ok(!got.has(j.id), `${j.id} claimed by ${got.get(j.id)} and by ${owner}`)
                assert.equal(j.kind, 'backup')
                got.set(j.id, owner)
              }
            }
          }),
        )
        assert.deepEqual([...got.keys()].sort(), [...ids].sort())
        assert.equal(got.has(gc.id), false, 'a kind not asked for stays queued')
        const first = await new JobLeases(catalogs[0]!).claimQueued('late', { limit: 5, leaseMs: 1 })
        assert.deepEqual(
          first.map((j) => j.id),
          [gc.id],
        )
      } finally {
        for (const c of catalogs) await c.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('renews only the leases an owner holds, and hands over only jobs whose lease expired and that have not ended', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-leases-'))
      const catalog = await openCatalog(dialect.url(dir))
      try {
        let now = 10_000
        const clock = { now: () => now }
        const store = new JobStore(catalog, clock)
        const leases = new JobLeases(catalog, clock)
        const a = await store.create({ kind: 'backup', resource: 'vms/a' })
        const b = await store.create({ kind: 'backup', resource: 'vms/b' })
        const c = await store.create({ kind: 'backup', resource: 'vms/c' })
        assert.equal(await leases.hold(a.id, 'w1', 1_000), true)
        assert.equal(await leases.hold(b.id, 'w1', 1_000), true)
        assert.equal(await leases.hold(c.id, 'w2', 1_000), true)
        assert.equal(await leases.hold(a.id, 'w2', 1_000), false, 'a held lease is not taken')
        now += 500
        assert.deepEqual(await leases.renew('w1', [a.id, c.id], 1_000), [c.id], 'w1 never held c')
        await store.finish(c.id, { state: 'Completed' })
        now += 800
        // b (w1, not renewed) expired at 11 000; a was renewed to 11 500; c ended.
        assert.deepEqual(
          (await leases.claimExpired('w3', { limit: 10, leaseMs: 1_000 })).map((j) => j.id),
          [b.id],
        )
        assert.deepEqual(await leases.renew('w1', [a.id, b.id], 1_000), [b.id], 'w1 lost b to w3')
        assert.deepEqual(await leases.claimExpired('w4', { limit: 10, leaseMs: 1_000 }), [])
        await leases.release(a.id, 'w1')
        assert.equal(await leases.hold(a.id, 'w4', 1_000), true, 'a released lease is free')
      } finally {
        await catalog.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('a job bound to a host is claimed only by that host, queued or with its lease expired, and a live owner never claims its own', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-leases-'))
      const catalog = await openCatalog(dialect.url(dir))
      try {
        let now = 10_000
        const clock = { now: () => now }
        const store = new JobStore(catalog, clock)
        const leases = new JobLeases(catalog, clock)
        const routed = await store.create({ kind: 'backup', resource: 'vms/a', host: 'h1' })
        const free = await store.create({ kind: 'copy', resource: 'vaults/v' })
        const running = await store.create({
          kind: 'backup',
          resource: 'vms/b',
          host: 'h2',
          lease: { owner: 'h2', until: now + 1_000 },
        })
        assert.deepEqual(await leases.claimQueued('h2', { limit: 10, leaseMs: 1_000, host: 'h2' }), [])
        assert.deepEqual(
          (await leases.claimQueued('h3', { limit: 10, leaseMs: 1_000 })).map((j) => j.id),
          [free.id],
          'without a host: only the jobs bound to none',
        )
        assert.deepEqual(
          (await leases.claimQueued('h1', { limit: 10, leaseMs: 1_000, host: 'h1' })).map((j) => j.id),
          [routed.id],
        )
        assert.deepEqual(
          await leases.claimQueued('h1', { limit: 10, leaseMs: 1_000, host: 'h1' }),
          [],
          'once',
        )
        now += 5_000
        // Every lease ran out: h3 (alive) does not take back its own copy, nor the jobs bound to h1 and h2;
        // h4 takes the unbound copy; h2, starting again, its own backup.
        assert.deepEqual(await leases.claimExpired('h3', { limit: 10, leaseMs: 1_000 }), [])
        assert.deepEqual(
          (await leases.claimExpired('h4', { limit: 10, leaseMs: 1_000 })).map((j) => j.id),
          [free.id],
        )
        assert.deepEqual(
          (await leases.claimExpired('h2', { limit: 10, leaseMs: 1_000, includeOwn: true })).map((j) => j.id),
          [running.id],
        )
      } finally {
        await catalog.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('a leader lease has one holder at a time, renews for it, and passes on only once expired or released', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-leases-'))
      const url = dialect.url(dir)
      const c1 = await openCatalog(url)
      const c2 = await openCatalog(url)
      try {
        let now = 50_000
        const l1 = new LeaderLease(c1, 'scheduler', { now: () => now })
        const l2 = new LeaderLease(c2, 'scheduler', { now: () => now })
        const [r1, r2] = await Promise.all([l1.acquire('a', 1_000), l2.acquire('b', 1_000)])
        assert.equal([r1, r2].filter((r) => r.leader).length, 1, 'exactly one leads')
        const [leader, other, otherName] = r1.leader ? [l1, l2, 'b'] : [l2, l1, 'a']
        const leaderName = otherName === 'a' ? 'b' : 'a'
        now += 900
        assert.equal((await leader.acquire(leaderName, 1_000)).leader, true)
        now += 900
        assert.equal((await other.acquire(otherName, 1_000)).leader, false, 'renewed: not expired')
        now += 1_200
        const taken = await other.acquire(otherName, 1_000)
        assert.equal(taken.leader, true, 'expired: taken over')
        assert.equal(taken.term, 2)
        await other.release(otherName)
        assert.equal((await leader.acquire(leaderName, 1_000)).leader, true, 'released: free at once')
      } finally {
        await c1.close()
        await c2.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
