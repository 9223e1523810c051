import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { startServiceIn } from './_in-process.js'
import { cairnAt } from './_service.js'

const MiB = 1024 * 1024

const cairn = (url: string, args: string[]) => cairnAt(url, args)

describe('full backups and vault usage through the CLI', () => {
  it('backup --full of unchanged data stores about nothing; usage shows logical, stored and new bytes; verify --read-data passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-usage-cli-'))
    const service = await startServiceIn(dir, { importRoots: [dir] })
    try {
      const url = service.listeners.api!
      const ok = async (args: string[]) => {
        const r = await cairn(url, args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      await ok(['vault', 'create', 'main'])
      const img = join(dir, 'web.raw')
      writeFileSync(img, randomBytes(6 * MiB))
      const first = await ok(['backup', 'file', img, '--vault', 'main'])
      assert.ok(first.bytesAdded >= 6 * MiB)
      const full = await ok(['backup', 'file', img, '--vault', 'main', '--full'])
      assert.equal(full.disks[0].mode, 'full')
      assert.ok(
        full.bytesAdded < 256 * 1024,
        `a --full backup of unchanged data added ${full.bytesAdded} bytes`,
      )

      // Disk-store disks: a --full backup of an unchanged disk adds about nothing either.
      await service.diskStore.createDisk(
        { account: 'devstoreaccount1', container: 'disks', disk: 'os' },
        { size: 8 * MiB },
      )
      await service.diskStore.writePages(
        { account: 'devstoreaccount1', container: 'disks', disk: 'os' },
        0,
        randomBytes(4 * MiB),
      )
      const d1 = await ok(['backup', 'disk', 'os', '--vault', 'main'])
      const d2 = await ok(['backup', 'disk', 'os', '--vault', 'main', '--full'])
      assert.ok(d1.bytesAdded >= 4 * MiB)
      assert.ok(d2.bytesAdded < 256 * 1024, `disk --full added ${d2.bytesAdded}`)

      const u = await ok(['vault', 'usage', 'main'])
      assert.equal(u.recoveryPoints, 4)
      assert.equal(u.logicalBytes, 2 * 6 * MiB + 2 * 4 * MiB)
      assert.ok(u.dataBytes < 10 * MiB + 512 * 1024, `data held ${u.dataBytes}`)
      assert.ok(u.deduplicationRatio > 1.9, `deduplication ${u.deduplicationRatio}`)
      assert.equal(u.deduplicationRatio, u.logicalBytes / u.dataBytes)
      assert.equal(u.overallRatio, u.logicalBytes / u.storedBytes)
      assert.deepEqual(
        u.perRecoveryPoint.map((p: { bytesAdded: number }) => p.bytesAdded),
        [first.bytesAdded, full.bytesAdded, d1.bytesAdded, d2.bytesAdded],
      )
      const text = await cairn(url.replace(/\/$/, ''), ['vault', 'usage', 'main'])
      assert.equal(text.code, 0)

      const verify = await ok(['vault', 'verify', 'main', '--read-data'])
      assert.deepEqual(verify.problems, [])
      assert.deepEqual(verify.unrestorable, [])
      assert.ok(verify.bytesRestored >= 10 * MiB, `restored ${verify.bytesRestored}`)
    } finally {
      await service.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
