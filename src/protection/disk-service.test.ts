import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type Job, JobStore, openCatalog } from '../catalog/index.js'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { HostPaths, isCairnError } from '../util/index.js'
import { DiskService } from './disk-service.js'
import { JobService } from './job-service.js'

const ref = (disk: string): DiskRef => ({ account: 'acct', container: 'vms', disk })
const code = (c: string) => (e: unknown) => isCairnError(e) && e.code === c

describe('DiskService (real disk store, catalog and jobs; no HTTP)', () => {
  it('imports a file under an import root into a new disk and exports it back under an export root, each as a recorded job', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-disk-service-'))
    const catalog = await openCatalog('sqlite::memory:')
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    const jobs = new JobService({ store: new JobStore(catalog) })
    try {
      for (const d of ['in', 'out']) mkdirSync(join(dir, d))
      const hostPaths = new HostPaths({
        importRoots: [join(dir, 'in')],
        exportRoots: [join(dir, 'out')],
        dataDir: join(dir, 'data'),
        vaultFolders: async () => [],
      })
      const service = new DiskService({ diskStore: disks, jobs, hostPaths })
      await disks.createAccount('acct')
      await disks.createContainer('acct', 'vms')
      const image = Buffer.alloc(64 * 1024)
      image.fill(5, 512, 9000)
      writeFileSync(join(dir, 'in', 'a.raw'), image)
      writeFileSync(join(dir, 'a.raw'), image)

      const seen: Job[] = []
      const onJob = (j: Job) => {
        seen.push(j)
      }
      const info = await service.importFile(ref('a'), join(dir, 'in', 'a.raw'), { onJob })
      assert.equal(info.size, image.length)
      const out = join(dir, 'out', 'a.raw')
      assert.deepEqual(await service.exportFile(ref('a'), { path: out }, { onJob }), {
        path: out,
        size: image.length,
      })
      assert.deepEqual(readFileSync(out), image)
      assert.deepEqual(
        seen.map((j) => [j.kind, j.resource]),
        [
          ['import', 'accounts/acct/containers/vms/disks/a'],
          ['export', 'accounts/acct/containers/vms/disks/a'],
        ],
      )
      for (const j of seen) assert.equal((await jobs.get(j.id)).state, 'Completed')

      // Refusals come before any job: a file outside the roots, an existing file without overwrite.
      await assert.rejects(service.importFile(ref('b'), join(dir, 'a.raw')), code('PathNotAllowed'))
      await assert.rejects(service.exportFile(ref('a'), { path: out }), (e) => isCairnError(e))
      assert.equal((await jobs.list({})).items.length, 2)
      await service.exportFile(ref('a'), { path: out, overwrite: true })
      // Without host-path roots every host file is refused.
      await assert.rejects(
        new DiskService({ diskStore: disks }).importFile(ref('c'), join(dir, 'in', 'a.raw')),
        code('PathNotAllowed'),
      )
    } finally {
      await jobs.close()
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
