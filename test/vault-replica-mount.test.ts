import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { diskHash, MiB, pointIds, protectWebInGeo, twoSites, until } from './_geo.js'
import { api, type Json, randomDisk } from './_jobs.js'
import { cairnAt, type RunningService } from './_service.js'

// `rp mount` on the secondary of a GRS vault (docs/replication.md, "Cross-region restore"): with the
// primary killed, a VM known only from the replica's points mounts there; its disks are served
// read-only over the secondary's NBD listener straight from the replica vault, and real NBD clients
// (nbdinfo, nbdcopy) read them byte for byte as the source; writes are refused; unmount ends it.

const OS_MIB = 12
const DATA_MIB = 4

const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 })

describe('rp mount of a replica point', () => {
  it('serves every disk of the point read-only over NBD on the secondary, byte-exact, with the primary gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-replica-mount-'))
    const { east, west } = await twoSites()
    const sites: RunningService[] = [east, west]
    const ok = async (args: string[]): Promise<Json> => {
      const r = await cairnAt(west.url, [...args, '--json'])
      assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
      return r.stdout.trim() ? JSON.parse(r.stdout) : undefined
    }
    try {
      await randomDisk(east.url, 'web-os', OS_MIB)
      await randomDisk(east.url, 'web-data', DATA_MIB)
      const point = await protectWebInGeo(east.url)
      const want = {
        os: await diskHash(east.url, 'web-os', OS_MIB * MiB),
        lun0: await diskHash(east.url, 'web-data', DATA_MIB * MiB),
      }
      await until('the replica holds the point', async () =>
        (await pointIds(west.url, 'geo')).includes(point),
      )
      await east.stop('SIGKILL')

      // Without --vault the secondary does not know the VM (it is not in its catalog).
      const bare = await cairnAt(west.url, ['rp', 'mount', 'web', '--rp', point])
      assert.notEqual(bare.code, 0, bare.stdout)
      const m = await ok(['rp', 'mount', 'web', '--rp', point, '--vault', 'geo', '--hours', '1'])
      assert.equal(m.vault, 'geo')
      assert.equal(m.point, point)
      assert.deepEqual(
        m.disks.map((d: Json) => [d.name, d.from, d.size]),
        [
          ['os', 'Vault', OS_MIB * MiB],
          ['lun0', 'Vault', DATA_MIB * MiB],
        ],
      )
      for (const d of m.disks as Json[]) {
        const size = tool('nbdinfo', ['--size', d.uri])
        assert.equal(size.status, 0, size.stderr)
        assert.equal(Number(size.stdout.trim()), d.size)
        const out = join(dir, `${d.name}.img`)
        const copy = tool('nbdcopy', [d.uri, out])
        assert.equal(copy.status, 0, copy.stderr)
        const sha = createHash('sha256').update(readFileSync(out)).digest('hex')
        assert.equal(sha, want[d.name as 'os' | 'lun0'], `disk ${d.name} read over NBD equals the source`)
      }
      // Read-only: a write through the export is refused, and the bytes stay.
      const junk = join(dir, 'junk.img')
      writeFileSync(junk, Buffer.alloc(OS_MIB * MiB, 0x5a))
      const write = tool('nbdcopy', [junk, m.disks[0].uri])
      assert.notEqual(write.status, 0, 'a write to the mount must fail')
      const again = tool('nbdcopy', [m.disks[0].uri, join(dir, 'again.img')])
      assert.equal(again.status, 0, again.stderr)
      assert.equal(
        createHash('sha256')
          .update(readFileSync(join(dir, 'again.img')))
          .digest('hex'),
        want.os,
      )

      const listed = (await ok(['rp', 'mounts', 'web', '--vault', 'geo'])) as Json[]
      assert.deepEqual(
        listed.map((x) => x.id),
        [m.id],
      )
      await ok(['rp', 'unmount', 'web', m.id, '--vault', 'geo'])
      assert.notEqual(tool('nbdinfo', ['--size', m.disks[0].uri]).status, 0, 'the export is gone')
      // Still the read-only replica: the mount promoted nothing.
      const vault = await api(west.url, 'GET', '/api/v1/vaults/geo')
      assert.equal(vault.body.replication.role, 'Secondary')
    } finally {
      await Promise.all(sites.map((s) => s.dispose()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
