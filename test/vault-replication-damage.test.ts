import assert from 'node:assert/strict'
import { closeSync, openSync, readdirSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { backupGeo, MiB, pointIds, restart, twoSites, until, writeOs } from './_geo.js'
import { api, randomDisk } from './_jobs.js'
import type { RunningService } from './_service.js'

// Verified on arrival (docs/replication.md, "How a point travels"): the secondary fetches chunks from
// the primary in batches and checks every blob of a batch against its id. A byte flipped in a pack on
// the primary fails the sync with VaultCorrupt and the point is never committed on the replica.

function packsOf(data: string): Map<string, number> {
  const root = join(data, 'vaults', 'geo', 'packs')
  const out = new Map<string, number>()
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else out.set(p, statSync(p).size)
    }
  }
  walk(root)
  return out
}

describe('a damaged chunk on the primary of a GRS vault', () => {
  it('fails the sync with VaultCorrupt and never commits the point on the replica', async () => {
    let { east, west } = await twoSites()
    const sites = (): RunningService[] => [east, west]
    try {
      const r = await api(east.url, 'POST', '/api/v1/vaults', {
        name: 'geo',
        redundancy: 'GRS',
        pair: 'west',
      })
      assert.equal(r.status, 201, JSON.stringify(r.body))
      await randomDisk(east.url, 'os', 8)
      const first = await backupGeo(east.url)
      await until('the first point replicated', async () => (await pointIds(west.url, 'geo')).includes(first))
      await west.stop()

      const before = packsOf(east.data)
      await writeOs(east.url, 0, 4 * MiB)
      const second = await backupGeo(east.url)
      const added = [...packsOf(east.data)].filter(([p]) => !before.has(p)).sort((a, b) => b[1] - a[1])
      assert.ok(added.length > 0, 'the second backup wrote a pack')
      // One byte inside the first blob of the biggest new pack (past the pack and blob headers).
      const fd = openSync(added[0]![0], 'r+')
      try {
        writeSync(fd, Buffer.from([0xff]), 0, 1, 16 + 4096)
      } finally {
        closeSync(fd)
      }

      west = await restart(west)
      await until(
        'the secondary reports the damage',
        async () => {
          const v = await api(west.url, 'GET', '/api/v1/vaults/geo')
          return /VaultCorrupt/.test(String(v.body.replication?.lastError ?? ''))
        },
        60_000,
      )
      const v = await api(west.url, 'GET', '/api/v1/vaults/geo')
      assert.match(v.body.replication.lastError, /damaged|does not hash|CRC|authentication/)
      const held = await pointIds(west.url, 'geo')
      assert.ok(held.includes(first), 'the earlier point stays')
      assert.ok(!held.includes(second), 'the point with a damaged chunk is never committed')

      // The batched read the secondary uses names vault objects only: nothing else of the host.
      for (const name of ['../../../etc/passwd', 'packs/../../../../etc/passwd', '/etc/passwd', 'cairn.db']) {
        const bad = await api(east.url, 'POST', '/api/v1/replication/vaults/geo/ranges', {
          ranges: [{ name, offset: 0, length: 16 }],
        })
        assert.equal(bad.status, 400, `${name}: ${JSON.stringify(bad.body)}`)
        assert.equal(bad.body.error?.code, 'InvalidRequest', JSON.stringify(bad.body))
      }
    } finally {
      await Promise.all(sites().map((s) => s.dispose()))
    }
  })
})
