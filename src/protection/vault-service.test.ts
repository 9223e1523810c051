import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type Catalog, type Job, JobStore, openCatalog } from '../catalog/index.js'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { HostPaths, isCairnError } from '../util/index.js'
import type { GcReport, PruneReport, RecoveryPoint, VerifyReport } from '../vault/index.js'
import { fileSource, VaultRegistry } from '../vault/index.js'
import { JobService } from './job-service.js'
import { VaultService } from './vault-service.js'

const MiB = 1024 * 1024
const ref = (disk: string): DiskRef => ({ account: 'acct', container: 'vms', disk })
const code = (c: string) => (e: unknown) => isCairnError(e) && e.code === c

interface World {
  service: VaultService
  jobs: JobService
  disks: LogDiskStore
  vaults: VaultRegistry
  catalog: Catalog
  dir: string
  importRoot: string
  exportRoot: string
  reconciled: string[]
}

/** A VaultService over a real disk store, an in-memory catalog, a vault registry and a job service. */
async function withService(
  fn: (w: World) => Promise<void>,
  options: { hostPaths?: boolean } = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-vault-service-'))
  const catalog = await openCatalog('sqlite::memory:')
  const disks = await LogDiskStore.open(join(dir, 'disks'))
  const vaults = new VaultRegistry(catalog, { dataDir: join(dir, 'data') })
  const jobs = new JobService({ store: new JobStore(catalog), progressIntervalMs: 20 })
  const importRoot = join(dir, 'in')
  const exportRoot = join(dir, 'out')
  mkdirSync(importRoot)
  mkdirSync(exportRoot)
  const reconciled: string[] = []
  const hostPaths = new HostPaths({
    importRoots: [importRoot],
    exportRoots: [exportRoot],
    dataDir: join(dir, 'data'),
    vaultFolders: async () => (await vaults.list()).map((v) => v.location),
  })
  const service = new VaultService({
    vaults,
    jobs,
    diskStore: disks,
    ...(options.hostPaths === false ? {} : { hostPaths }),
    reconcileVault: async (vault) => void reconciled.push(vault),
  })
  try {
    await vaults.create('v1')
    await disks.createAccount('acct')
    await disks.createContainer('acct', 'vms')
    for (const [d, fill] of [
      ['os', 1],
      ['data', 2],
    ] as const) {
      await disks.createDisk(ref(d), { size: MiB })
      await disks.writePages(ref(d), 0, Buffer.alloc(8192, fill))
    }
    await fn({ service, jobs, disks, vaults, catalog, dir, importRoot, exportRoot, reconciled })
  } finally {
    await jobs.close()
    await vaults.close()
    await disks.close()
    await catalog.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Waits for a job and checks that it completed; answers it. */
async function completed(jobs: JobService, job: Job): Promise<Job> {
  const end = await jobs.wait(job.id)
  assert.equal(end.state, 'Completed', JSON.stringify(end.error))
  return end
}

const jobCount = async (jobs: JobService) => (await jobs.list({})).items.length

describe('VaultService (real disk store, catalog, vaults and jobs; no HTTP)', () => {
  it('backs up two disks as one recovery point in a job, and restores one of them into a new disk with the same bytes', async () => {
    await withService(async ({ service, jobs, disks }) => {
      const backup = await service.backupDisks('v1', {
        disks: [
          { ...ref('os'), name: 'os' },
          { ...ref('data'), name: 'lun0', lun: 0 },
        ],
        item: 'app',
      })
      assert.equal(backup.kind, 'backup')
      assert.equal(backup.vault, 'v1')
      const point = (await completed(jobs, backup)).result as RecoveryPoint
      assert.deepEqual(point.disks.map((d) => d.name).sort(), ['lun0', 'os'])
      assert.equal(point.source.name, 'app')

      const restore = await service.restoreToDisk('v1', point.id, { disk: 'lun0', target: ref('copy') })
      assert.equal(restore.resource, `vaults/v1/recoveryPoints/${point.id}`)
      await completed(jobs, restore)
      const back = await disks.read(ref('copy'), 0, 8192)
      assert.deepEqual(Buffer.from(back), Buffer.alloc(8192, 2))
    })
  })

  it('backs up incrementally from the latest point unless base is none', async () => {
    await withService(async ({ service, jobs, disks }) => {
      const first = (await completed(jobs, await service.backupDisks('v1', { disks: [ref('os')] })))
        .result as RecoveryPoint
      await disks.writePages(ref('os'), 0, Buffer.alloc(4096, 9))
      const second = (await completed(jobs, await service.backupDisks('v1', { disks: [ref('os')] })))
        .result as RecoveryPoint
      assert.equal(second.parent, first.id)
      const full = (
        await completed(jobs, await service.backupDisks('v1', { disks: [ref('os')], base: 'none' }))
      ).result as RecoveryPoint
      assert.equal(full.parent, null)
    })
  })

  it('refuses a backup of no disks or of a missing disk, and a restore of a disk the point lacks, before any job starts', async () => {
    await withService(async ({ service, jobs }) => {
      await assert.rejects(service.backupDisks('v1', { disks: [] }), code('InvalidRequest'))
      await assert.rejects(service.backupDisks('v1', { disks: [ref('nope')] }), code('DiskNotFound'))
      await assert.rejects(service.backupDisks('nope', { disks: [ref('os')] }), code('VaultNotFound'))
      const point = (await completed(jobs, await service.backupDisks('v1', { disks: [ref('os')] })))
        .result as RecoveryPoint
      const before = await jobCount(jobs)
      await assert.rejects(
        service.restoreToDisk('v1', point.id, { disk: 'lun7', target: ref('x') }),
        code('RecoveryPointDiskNotFound'),
      )
      assert.equal(await jobCount(jobs), before)
    })
  })

  it('fails a restore onto an existing disk without overwrite and replaces it with overwrite', async () => {
    await withService(async ({ service, jobs, disks }) => {
      const point = (await completed(jobs, await service.backupDisks('v1', { disks: [ref('data')] })))
        .result as RecoveryPoint
      const refused = await jobs.wait((await service.restoreToDisk('v1', point.id, { target: ref('os') })).id)
      assert.equal(refused.state, 'Failed')
      assert.equal(refused.error?.code, 'DiskAlreadyExists')
      assert.deepEqual(await disks.read(ref('os'), 0, 4096), Buffer.alloc(4096, 1))
      await completed(
        jobs,
        await service.restoreToDisk('v1', point.id, { target: ref('os'), overwrite: true }),
      )
      assert.deepEqual(await disks.read(ref('os'), 0, 4096), Buffer.alloc(4096, 2))
    })
  })

  it('backs up a file under an import root and restores it into a file under an export root, byte for byte', async () => {
    await withService(async ({ service, jobs, importRoot, exportRoot }) => {
      const image = Buffer.alloc(256 * 1024)
      image.fill(7, 4096, 12288)
      writeFileSync(join(importRoot, 'img.raw'), image)
      const point = (
        await completed(jobs, await service.backupFile('v1', { path: join(importRoot, 'img.raw') }))
      ).result as RecoveryPoint
      assert.equal(point.source.kind, 'file')
      assert.equal(point.source.name, 'img.raw')
      const out = join(exportRoot, 'back.raw')
      await completed(jobs, await service.restoreToFile('v1', point.id, { path: out }))
      assert.deepEqual(readFileSync(out), image)
      // The file exists now: a second restore is refused up front unless it may overwrite.
      await assert.rejects(service.restoreToFile('v1', point.id, { path: out }), (e) => isCairnError(e))
      await completed(jobs, await service.restoreToFile('v1', point.id, { path: out, overwrite: true }))
    })
  })

  it('refuses host files outside the roots, and any host file without host-path roots, before a job starts', async () => {
    await withService(async ({ service, jobs, dir }) => {
      writeFileSync(join(dir, 'outside.raw'), Buffer.alloc(4096))
      const before = await jobCount(jobs)
      await assert.rejects(
        service.backupFile('v1', { path: join(dir, 'outside.raw') }),
        code('PathNotAllowed'),
      )
      assert.equal(await jobCount(jobs), before)
    })
    await withService(
      async ({ service, importRoot }) => {
        writeFileSync(join(importRoot, 'a.raw'), Buffer.alloc(4096))
        await assert.rejects(
          service.backupFile('v1', { path: join(importRoot, 'a.raw') }),
          code('PathNotAllowed'),
        )
      },
      { hostPaths: false },
    )
  })

  it('verifies every point in a job, reading all data with readData', async () => {
    await withService(async ({ service, jobs }) => {
      await completed(jobs, await service.backupDisks('v1', { disks: [ref('os'), ref('data')] }))
      const report = (await completed(jobs, await service.verify('v1', { readData: true })))
        .result as VerifyReport
      assert.equal(report.recoveryPoints, 1)
      assert.ok(report.bytesRestored >= 2 * MiB, `restored ${report.bytesRestored}`)
      assert.deepEqual(report.unrestorable, [])
    })
  })

  it('prunes as a recorded job: leaves VM points alone unless asked, and reconciles the vault when VM points go', async () => {
    await withService(async ({ service, jobs, vaults, importRoot, reconciled }) => {
      const v = await vaults.open('v1')
      writeFileSync(join(importRoot, 'vm.raw'), Buffer.alloc(8192, 3))
      const ids: string[] = []
      for (let i = 0; i < 3; i++) {
        const source = await fileSource(join(importRoot, 'vm.raw'), { name: 'os' })
        try {
          ids.push((await v.backup({ item: { kind: 'vm', name: 'app' }, sources: [source] })).id)
        } finally {
          await source.close?.()
        }
      }
      let seen: Job | undefined
      const left: PruneReport = await service.prune(
        'v1',
        { policy: { keepLast: 1 } },
        {
          onJob: (job) => {
            seen = job
          },
        },
      )
      assert.deepEqual(left.removed, [])
      assert.deepEqual(left.skipped.sort(), [...ids].sort())
      assert.equal(seen?.kind, 'prune')
      assert.equal((await jobs.get(seen!.id)).state, 'Completed')
      assert.deepEqual(reconciled, [])

      const dry = await service.prune('v1', {
        policy: { keepLast: 1 },
        includePolicyPoints: true,
        dryRun: true,
      })
      assert.equal(dry.removed.length, 2)
      assert.equal((await v.listRecoveryPoints()).length, 3)
      assert.deepEqual(reconciled, [])

      const gone = await service.prune('v1', { policy: { keepLast: 1 }, includePolicyPoints: true })
      assert.deepEqual(gone.removed.sort(), ids.slice(0, 2).sort())
      assert.deepEqual(gone.kept, [ids[2]])
      assert.deepEqual(reconciled, ['v1'])
    })
  })

  it('runs a GC job that frees the packs of deleted points (soft delete off)', async () => {
    await withService(async ({ service, jobs, vaults }) => {
      await service.updateSettings('v1', { softDelete: { state: 'Disabled' } })
      const point = (
        await completed(jobs, await service.backupDisks('v1', { disks: [ref('os'), ref('data')] }))
      ).result as RecoveryPoint
      await (await vaults.open('v1')).deleteRecoveryPoint(point.id)
      const job = await service.gc('v1', { startedBy: 'scheduler', staleLockMs: 0 })
      assert.equal(job.startedBy, 'scheduler')
      const report = (await completed(jobs, job)).result as GcReport
      assert.ok(report.packsDeleted > 0, JSON.stringify(report))
      assert.ok(report.bytesReclaimed > 0)
    })
  })

  it('backup() takes disks or a path and restore() a target or a path: both or neither is refused before a job starts', async () => {
    await withService(async ({ service, jobs, importRoot, exportRoot, disks }) => {
      writeFileSync(join(importRoot, 'a.raw'), Buffer.alloc(8192, 5))
      const path = join(importRoot, 'a.raw')
      await assert.rejects(service.backup('v1', { disks: [ref('os')], path }), code('InvalidRequest'))
      await assert.rejects(service.backup('v1', {}), code('InvalidRequest'))
      assert.equal(await jobCount(jobs), 0)
      const fromDisks = (await completed(jobs, await service.backup('v1', { disks: [ref('os')] })))
        .result as RecoveryPoint
      assert.equal(fromDisks.source.kind, 'disks')
      const fromFile = (await completed(jobs, await service.backup('v1', { path }))).result as RecoveryPoint
      assert.equal(fromFile.source.kind, 'file')
      const out = join(exportRoot, 'back.raw')
      await assert.rejects(
        service.restore('v1', fromFile.id, { target: ref('x'), path: out }),
        code('InvalidRequest'),
      )
      await assert.rejects(service.restore('v1', fromFile.id, {}), code('InvalidRequest'))
      assert.equal(await jobCount(jobs), 2)
      await completed(jobs, await service.restore('v1', fromFile.id, { path: out }))
      assert.deepEqual(readFileSync(out), Buffer.alloc(8192, 5))
      await completed(jobs, await service.restore('v1', fromDisks.id, { target: ref('os-copy') }))
      assert.deepEqual(await disks.read(ref('os-copy'), 0, 8192), Buffer.alloc(8192, 1))
    })
  })

  it('manages vaults and their points: delete a point reconciles the VMs of its vault, a key is needed to unlock, remove says what it left', async () => {
    await withService(async ({ service, jobs, reconciled }) => {
      assert.deepEqual(
        (await service.list()).map((v) => v.name),
        ['v1'],
      )
      await service.create('v2')
      assert.equal((await service.get('v2')).encrypted, false)
      const point = (await completed(jobs, await service.backup('v1', { disks: [ref('os')] })))
        .result as RecoveryPoint
      assert.equal((await service.getRecoveryPoint('v1', point.id)).id, point.id)
      assert.equal((await service.usage('v1')).recoveryPoints, 1)
      assert.deepEqual(reconciled, [])
      await service.deletePoint('v1', point.id)
      assert.deepEqual(reconciled, ['v1'], 'the VM points of the vault follow at once')
      assert.deepEqual(await service.listRecoveryPoints('v1'), [])
      await assert.rejects(service.getRecoveryPoint('v1', point.id), code('RecoveryPointNotFound'))
      await assert.rejects(service.unlock('v1', undefined), code('InvalidRequest'))
      await assert.rejects(service.changeKey('v1', undefined), code('InvalidRequest'))
      assert.deepEqual(await service.remove('v2', { deleteData: true }), {
        name: 'v2',
        dataDeleted: true,
        left: [],
      })
      await assert.rejects(service.get('v2'), code('VaultNotFound'))
    })
  })
})
