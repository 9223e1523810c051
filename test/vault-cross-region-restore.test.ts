import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { EXIT } from '../src/util/index.js'
import { diskHash, MiB, pointIds, protectWebInGeo, twoSites, until } from './_geo.js'
import { api, type Json, randomDisk } from './_jobs.js'
import { gptExt4Disk, pseudoRandom, sha256, uploadDisk } from './_recovery-images.js'
import { apiFetch, cairnAt, type RunningService } from './_service.js'

// Cross-region restore (docs/replication.md): a protected VM with two disks backs up into a GRS vault
// on one site; the primary is killed and its data folder deleted; on the paired site, without any
// failover, the CLI lists the VM from the replica's points, restores it as a new VM (both disks
// byte-exact, the VM registered there) and takes a single file back through file recovery.

const OS_MIB = 24
const DATA_MIB = 4

describe('cross-region restore from the replica of a GRS vault', () => {
  it('restores the VM as a new VM and a single file on the secondary with the primary gone, read-only, no failover', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-crr-'))
    const { east, west } = await twoSites()
    const sites: RunningService[] = [east, west]
    const ok = async (svc: RunningService, args: string[]): Promise<Json> => {
      const r = await cairnAt(svc.url, [...args, '--json'])
      assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
      return r.stdout.trim() ? JSON.parse(r.stdout) : undefined
    }
    try {
      // The primary: a VM whose OS disk holds an ext4 file system and whose data disk is random.
      const tree = join(dir, 'tree')
      mkdirSync(join(tree, 'srv/app'), { recursive: true })
      const payload = pseudoRandom(700_000, 17)
      writeFileSync(join(tree, 'srv/app/data.bin'), payload)
      writeFileSync(join(tree, 'srv/app/readme.txt'), 'cross-region\n')
      const image = gptExt4Disk(dir, tree, OS_MIB, OS_MIB - 4)
      await uploadDisk((p, i) => apiFetch(`${east.url}${p}`, i), 'web-os', image)
      await randomDisk(east.url, 'web-data', DATA_MIB)
      // Set up through the API (the CLI is what the restore side is tested with).
      const point = await protectWebInGeo(east.url)
      const wantOs = await diskHash(east.url, 'web-os', OS_MIB * MiB)
      const wantData = await diskHash(east.url, 'web-data', DATA_MIB * MiB)
      await until('the replica holds the point', async () =>
        (await pointIds(west.url, 'geo')).includes(point),
      )

      // The primary's site is lost.
      await east.stop('SIGKILL')
      rmSync(east.data, { recursive: true, force: true })

      // The secondary knows the VM from the replica's points alone: listed, its points, its configuration.
      const items = (await ok(west, ['protection', 'list', '--vault', 'geo'])) as Json[]
      assert.deepEqual(
        items.map((i) => [i.vmName, i.state, i.policyName]),
        [['web', 'Replica', 'daily']],
      )
      const points = (await ok(west, ['rp', 'list', 'web', '--vault', 'geo'])) as Json[]
      assert.deepEqual(
        points.map((p) => [p.id, p.tier]),
        [[point, 'Vault']],
      )
      const shown = await api(
        west.url,
        'GET',
        `/api/v1/vaults/geo/protectedItems/web/recoveryPoints/${point}`,
      )
      assert.equal(shown.status, 200, JSON.stringify(shown.body))
      assert.equal(shown.body.vm.vmSize, 'Standard_D2s_v3')
      assert.deepEqual(
        shown.body.disks.map((d: Json) => d.name),
        ['os', 'lun0'],
      )

      // Restore as a new VM on this site, from the CLI: both disks byte-exact, the VM registered.
      const job = await ok(west, [
        'restore',
        'vm',
        'web',
        '--vault',
        'geo',
        '--rp',
        point,
        '--as',
        'web-dr',
        '--wait',
      ])
      assert.equal(job.state, 'Completed', JSON.stringify(job))
      const vm = await ok(west, ['vm', 'show', 'web-dr'])
      assert.equal(vm.osDisk.disk, 'web-dr-os')
      assert.deepEqual(
        vm.dataDisks.map((d: Json) => [d.lun, d.disk.disk]),
        [[0, 'web-dr-lun0']],
      )
      assert.equal(vm.vmSize, 'Standard_D2s_v3')
      assert.equal(vm.configuration.restoredFrom.recoveryPoint, point)
      assert.equal(await diskHash(west.url, 'web-dr-os', OS_MIB * MiB), wantOs, 'the OS disk is byte-exact')
      assert.equal(
        await diskHash(west.url, 'web-dr-lun0', DATA_MIB * MiB),
        wantData,
        'the data disk is byte-exact',
      )

      // Disks only, into an account and container of this site.
      const account = await api(west.url, 'POST', '/api/v1/accounts', { name: 'drsite' })
      assert.equal(account.status, 201, JSON.stringify(account.body))
      const container = await api(west.url, 'POST', '/api/v1/accounts/drsite/containers', {
        name: 'restored',
      })
      assert.equal(container.status, 201, JSON.stringify(container.body))
      const disks = await ok(west, [
        'restore',
        'disks',
        'web',
        '--vault',
        'geo',
        '--rp',
        point,
        '--disks',
        'lun0',
        '--prefix',
        'web',
        '--target-account',
        'drsite',
        '--target-container',
        'restored',
        '--wait',
      ])
      assert.equal(disks.state, 'Completed', JSON.stringify(disks))
      assert.equal(await diskHash(west.url, 'drsite/restored/web-lun0', DATA_MIB * MiB), wantData)

      // Over the original VM is refused: it is on the lost site.
      const replace = await cairnAt(west.url, [
        'restore',
        'vm',
        'web',
        '--vault',
        'geo',
        '--rp',
        point,
        '--replace',
      ])
      assert.equal(replace.code, EXIT.usage, replace.stderr)
      assert.match(replace.stderr, /InvalidRequest.*replica/)

      // A single file: browse the point's file system and download a file, SHA-256 as the source.
      const files = (await ok(west, [
        'rp',
        'files',
        'web',
        '/srv/app',
        '--vault',
        'geo',
        '--rp',
        point,
      ])) as Json[]
      assert.deepEqual(files.map((f) => f.name).sort(), ['data.bin', 'readme.txt'])
      const out = join(dir, 'out')
      await ok(west, [
        'rp',
        'download',
        'web',
        '/srv/app/data.bin',
        '--vault',
        'geo',
        '--rp',
        point,
        '--to',
        out,
      ])
      assert.equal(sha256(readFileSync(join(out, 'data.bin'))), sha256(payload))
      const history = await api(
        west.url,
        'GET',
        `/api/v1/vaults/geo/protectedItems/web/fileHistory?path=${encodeURIComponent('/srv/app/readme.txt')}`,
      )
      assert.equal(history.status, 200, JSON.stringify(history.body))

      // Nothing was promoted: the vault is still the read-only replica.
      const vault = await api(west.url, 'GET', '/api/v1/vaults/geo')
      assert.equal(vault.body.replication.role, 'Secondary')
      const backup = await api(west.url, 'POST', '/api/v1/vaults/geo/protectedItems/web/backup', {})
      assert.notEqual(backup.status, 202, JSON.stringify(backup.body))
      const protect = await api(west.url, 'POST', '/api/v1/vaults/geo/protectedItems', {
        vm: 'web-dr',
        policy: 'daily',
      })
      assert.equal(protect.body.error?.code, 'VaultIsReplica', JSON.stringify(protect.body))
    } finally {
      await Promise.all(sites.map((s) => s.dispose()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
