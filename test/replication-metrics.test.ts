import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pair, REPLICATE, until } from './_geo.js'
import { api } from './_jobs.js'
import { apiFetch, cairnAt, type RunningService, startService } from './_service.js'

// Issue 19's replication lag in /metrics, fed by the vault replication (a GRS vault's secondary last
// holding every point) and the disk geo-replication (a geo-replicated account's LastSyncTime).

/** Every sample `name{labels} value` of a metric in a Prometheus text document, labels as a string. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(name.length, at), Number(line.slice(at + 1)))
  }
  return out
}

async function scrape(svc: RunningService): Promise<string> {
  const res = await apiFetch(`${svc.url}/metrics`)
  assert.equal(res.status, 200)
  return res.text()
}

const ok = async (svc: RunningService, args: string[]) => {
  const r = await cairnAt(svc.url, args)
  assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
}

describe('replication lag in /metrics', () => {
  it("reports each GRS vault's and geo-replicated account's seconds since their last sync on the primary, and it grows while the paired site is down", async () => {
    const args = [...REPLICATE, '--geo-interval', '1']
    const [east, west] = await Promise.all([startService(args), startService(args)])
    try {
      await Promise.all([pair(east, west, 'west'), pair(west, east, 'east')])
      await ok(east, ['vault', 'create', 'geo', '--redundancy', 'GRS', '--pair', 'west'])
      await ok(east, ['vault', 'create', 'local'])
      await ok(east, ['account', 'create', 'geoacct', '--redundancy', 'RA-GRS', '--pair', 'west'])
      await until('both replicas have synced once', async () => {
        const vault = (await api(east.url, 'GET', '/api/v1/vaults/geo')).body.replication
        const account = (await api(east.url, 'GET', '/api/v1/accounts/geoacct/replication')).body
        return vault.lastSyncAt !== undefined && account.lastSyncTime !== undefined
      })

      const first = await scrape(east)
      const lag = samples(first, 'cairn_replication_lag_seconds')
      assert.deepEqual(
        [...lag.keys()].sort(),
        ['{type="account",name="geoacct"}', '{type="vault",name="geo"}'],
        'the primary reports its GRS vault and its geo-replicated account, not the LRS vault',
      )
      for (const [labels, seconds] of lag)
        assert.ok(seconds >= 0 && seconds < 30, `${labels} synced moments ago: ${seconds}`)
      assert.deepEqual([...samples(first, 'cairn_replication_points_behind')], [['{vault="geo"}', 0]])
      // The secondary reports no lag of its own replicas (the primary's metric is the one to alert on).
      assert.equal(samples(await scrape(west), 'cairn_replication_lag_seconds').size, 0)

      // The paired site goes away: nothing syncs, the lag grows with the clock.
      await west.stop('SIGKILL')
      // A status report the secondary sent just before it died may still be handled: let it land.
      await new Promise((r) => setTimeout(r, 1500))
      const before = samples(await scrape(east), 'cairn_replication_lag_seconds')
      await new Promise((r) => setTimeout(r, 3000))
      const after = samples(await scrape(east), 'cairn_replication_lag_seconds')
      for (const [labels, seconds] of before)
        assert.ok(
          (after.get(labels) ?? 0) >= seconds + 2.5,
          `${labels}: ${seconds} s, then ${after.get(labels)} s`,
        )
    } finally {
      await Promise.all([east.dispose(), west.dispose()])
    }
  })
})
