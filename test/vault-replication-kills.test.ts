import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { describe, it } from 'node:test'
import { backupGeo, diskHash, MiB, pointIds, restart, twoSites, until } from './_geo.js'
import { api, D, ended, randomDisk } from './_jobs.js'
import { apiFetch, type RunningService } from './_service.js'

// kill -9 of the primary while its replica pulls, CAIRN_GEO_KILLS times (3 in npm test, more in
// npm run soak): after each kill every point the replica holds verifies (no partial point is ever
// visible), and at the end the replica holds every point and restores the last one byte-exact.

const KILLS = Number(process.env.CAIRN_GEO_KILLS ?? 3)
const SIZE = 8 * MiB

async function verifyAll(url: string): Promise<void> {
  const v = await api(url, 'POST', '/api/v1/vaults/geo/verify', { readData: true })
  assert.equal(v.status, 202, JSON.stringify(v.body))
  const done = await ended(url, v.body.id)
  assert.deepEqual(done.result.problems, [], JSON.stringify(done.result))
}

describe('kill -9 of the primary during replication', () => {
  it(`leaves only complete, verifying points on the replica (${KILLS} kills) and it catches up byte-exact`, async () => {
    let { east, west } = await twoSites()
    const sites: RunningService[] = [east, west]
    try {
      assert.equal(
        (await api(east.url, 'POST', '/api/v1/vaults', { name: 'geo', redundancy: 'GRS', pair: 'west' }))
          .status,
        201,
      )
      await randomDisk(east.url, 'os', SIZE / MiB)
      const points = [await backupGeo(east.url)]
      for (let round = 0; round < KILLS; round++) {
        const res = await apiFetch(`${east.url}${D}/os/pages?offset=${randomInt(0, SIZE / MiB - 2) * MiB}`, {
          method: 'PUT',
          body: randomBytes(2 * MiB),
          headers: { 'content-type': 'application/octet-stream' },
        })
        assert.equal(res.status, 200)
        points.push(await backupGeo(east.url))
        // The replica looks every second: the kill lands before, during or after its pull.
        await new Promise((r) => setTimeout(r, randomInt(0, 1500)))
        await east.stop('SIGKILL')
        const held = await pointIds(west.url, 'geo')
        assert.ok(
          held.every((p) => points.includes(p)),
          `the replica holds only committed points: ${held}`,
        )
        await verifyAll(west.url)
        east = await restart(east)
        sites[0] = east
      }
      await until('the replica holds every point', async () => {
        const held = await pointIds(west.url, 'geo')
        return points.every((p) => held.includes(p))
      })
      await verifyAll(west.url)
      const want = await diskHash(east.url, 'os', SIZE)
      const restore = await api(
        west.url,
        'POST',
        `/api/v1/vaults/geo/recoveryPoints/${points.at(-1)}/restore`,
        {
          target: { account: 'devstoreaccount1', container: 'disks', disk: 'back' },
        },
      )
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      assert.equal((await ended(west.url, restore.body.id)).state, 'Completed')
      assert.equal(await diskHash(west.url, 'back', SIZE), want)
    } finally {
      await Promise.all(sites.map((s) => s.dispose()))
      await Promise.all([east.dispose(), west.dispose()])
    }
  })
})
