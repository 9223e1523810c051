import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { DEVELOPMENT_ACCOUNT } from '../src/server/index.js'
import { runner } from './_disk-cli.js'
import { api as call, type Json, request } from './_jobs.js'
import { type RunningService, startService } from './_service.js'

// Issue 12 findings 7, 8, 9, 12 and 13 against a real `cairn serve`: its management API, its blob API
// through the Azure SDK, and the `cairn` CLI.

const KiB = 1024
const ACCOUNT = DEVELOPMENT_ACCOUNT.name
const DISKS = `/api/v1/accounts/${ACCOUNT}/containers/disks/disks`
/** The one recovery-point id form: the vault's. */
const RP_ID = /^\d{8}T\d{9}Z-[0-9a-f]{4}$/

/** A 1 MiB disk whose first 64 KiB hold `fill`. */
async function makeDisk(url: string, name: string, fill: number): Promise<void> {
  const created = await call(url, 'PUT', `${DISKS}/${name}`, { size: '1MiB' })
  assert.equal(created.status, 201, JSON.stringify(created.body))
  await writeDisk(url, name, fill)
}

async function writeDisk(url: string, name: string, fill: number): Promise<void> {
  const res = await request(`${url}${DISKS}/${name}/pages?offset=0`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.alloc(64 * KiB, fill),
  })
  assert.equal(res.status, 200, await res.text())
}

async function firstByte(url: string, name: string): Promise<number> {
  const res = await request(`${url}${DISKS}/${name}/pages?offset=0&length=65536`)
  assert.equal(res.status, 200)
  const b = Buffer.from(await res.arrayBuffer())
  assert.ok(
    b.every((x) => x === b[0]),
    `disk ${name} holds one byte value throughout its first 64 KiB`,
  )
  return b[0]!
}

/**
 * Vault `vault`, policy daily in it, and VM `vm` (disks VM-os, and VM-data at LUN 0) protected: each
 * test names its own VM and vault, so the tests share one service without seeing each other's.
 */
async function protectedVm(service: RunningService, vm: string, vault: string) {
  const { run, ok } = runner(service.url)
  await makeDisk(service.url, `${vm}-os`, 0x11)
  await makeDisk(service.url, `${vm}-data`, 0x22)
  ok('vault', 'create', vault)
  ok('policy', 'create', 'daily', '--vault', vault, '--keep-days', '30')
  ok(
    'vm',
    'create',
    vm,
    '--os-disk',
    `${ACCOUNT}/disks/${vm}-os`,
    '--data-disk',
    `lun0=${ACCOUNT}/disks/${vm}-data`,
  )
  ok('protect', vm, '--vault', vault, '--policy', 'daily')
  return { run, ok }
}

/** The Azure SDK's client of the service's blob API, as the development account, without retries. */
const blobService = (service: RunningService) =>
  new BlobServiceClient(
    `${service.listeners.blob}/${ACCOUNT}`,
    new StorageSharedKeyCredential(ACCOUNT, DEVELOPMENT_ACCOUNT.key),
    { retryOptions: { maxTries: 1 } },
  )

const points = (ok: ReturnType<typeof runner>['ok'], vm: string) =>
  ok('rp', 'list', vm, '--json').json() as Json[]

describe('protection keeps backups restorable and VMs manageable (real cairn serve, CLI, Azure SDK)', () => {
  // One service for every test: each names its own VM, disks and vault.
  let service: RunningService
  before(async () => {
    service = await startService()
  })
  after(() => service?.dispose())

  it('restores from the vault when the snapshot behind a point was deleted, and rp list shows the Vault tier', async () => {
    const { run, ok } = await protectedVm(service, 'web1', 'v1')
    ok('backup', 'now', 'web1', '--wait')
    const [point] = points(ok, 'web1')
    assert.equal(point.tier, 'SnapshotAndVault')
    const data = point.disks.find((d: Json) => d.name === 'lun0')
    assert.ok(data.snapshot)

    // The snapshot is held by the point: refused everywhere unless forced, naming the point.
    const snapPath = `${DISKS}/web1-data/snapshots/${encodeURIComponent(data.snapshot)}`
    const api = await call(service.url, 'DELETE', snapPath)
    assert.equal(api.status, 409)
    assert.equal(api.body.error.code, 'SnapshotInUse')
    assert.ok(api.body.error.message.includes(point.id), api.body.error.message)
    const cli = run('disk', 'snapshot-delete', `web1-data@${data.snapshot}`)
    assert.equal(cli.status, 4, cli.stderr)
    assert.match(cli.stderr, /SnapshotInUse/)
    assert.match(cli.stderr, /VM "web1"/)
    const blob = blobService(service).getContainerClient('disks').getBlobClient('web1-data')
    await assert.rejects(blob.withSnapshot(data.snapshot).delete(), (e: Json) => {
      assert.equal(e.statusCode, 409)
      assert.equal(e.details?.errorCode ?? e.code, 'SnapshotInUse')
      return true
    })
    assert.equal(points(ok, 'web1')[0].tier, 'SnapshotAndVault', 'nothing was deleted')

    ok('disk', 'snapshot-delete', `web1-data@${data.snapshot}`, '--force')
    const [after] = points(ok, 'web1')
    assert.equal(after.id, point.id)
    assert.equal(after.tier, 'Vault', 'rp list shows the true tier')

    // The live disks change; the restores must bring back the backed-up content, from the vault.
    await writeDisk(service.url, 'web1-os', 0x33)
    await writeDisk(service.url, 'web1-data', 0x44)
    ok('restore', 'vm', 'web1', '--as', 'copy', '--wait')
    assert.equal(await firstByte(service.url, 'copy-os'), 0x11)
    assert.equal(await firstByte(service.url, 'copy-lun0'), 0x22)
    ok('restore', 'disks', 'web1', '--disks', 'lun0', '--prefix', 'only', '--wait')
    assert.equal(await firstByte(service.url, 'only-lun0'), 0x22)
    const jobs = (await call(service.url, 'GET', '/api/v1/jobs?kind=restore')).body.items as Json[]
    const restoreVm = jobs.find((j) => j.resource === 'vms/copy')
    assert.deepEqual(
      restoreVm.details.disks.map((d: Json) => `${d.name}:${d.from}`),
      ['os:Snapshot', 'lun0:Vault'],
      'each disk from its snapshot while it exists, from the vault otherwise',
    )
  })

  it('names recovery points and disks one way in the API, the CLI and the vault, and still reads the older forms', async () => {
    const { ok, run } = await protectedVm(service, 'web2', 'v2')
    ok('backup', 'now', 'web2', '--wait')
    const cli = points(ok, 'web2')
    const api = (await call(service.url, 'GET', '/api/v1/vaults/v2/protectedItems/web2/recoveryPoints')).body
      .items
    assert.equal(cli.length, 1)
    assert.match(cli[0].id, RP_ID)
    assert.equal(api[0].id, cli[0].id)
    assert.deepEqual(
      api[0].disks.map((d: Json) => [d.name, d.lun]),
      [
        ['os', undefined],
        ['lun0', 0],
      ],
    )
    // The vault point of the recovery point has the same id and the same disk names.
    const vaultPoints = ok('rp', 'list', '--vault', 'v2', '--json').json() as Json[]
    assert.deepEqual(
      vaultPoints.map((p) => p.id),
      [cli[0].id],
    )
    assert.deepEqual(
      vaultPoints[0].disks.map((d: Json) => d.name),
      ['os', 'lun0'],
    )
    const table = ok('rp', 'list', 'web2').stdout
    assert.match(table, new RegExp(`${cli[0].id}.*SnapshotAndVault\\s+os,lun0`))
    assert.match(ok('protection', 'show', 'web2').stdout, /disks:\s+all/)
    // The older forms of a disk label are still read: LUN numbers on the CLI and in the API.
    ok('restore', 'disks', 'web2', '--luns', '0', '--prefix', 'old', '--wait')
    assert.equal(await firstByte(service.url, 'old-lun0'), 0x22)
    const byNumber = await call(
      service.url,
      'POST',
      `/api/v1/vaults/v2/protectedItems/web2/recoveryPoints/${cli[0].id}/restore`,
      { recoveryType: 'RestoreDisks', diskPrefix: 'num', luns: [0] },
    )
    assert.equal(byNumber.status, 202, JSON.stringify(byNumber.body))
    const bad = run('restore', 'disks', 'web2', '--disks', 'lun9', '--wait')
    assert.equal(bad.status, 3, bad.stderr)
    assert.match(bad.stderr, /holds os, lun0/)
  })

  it('refuses to delete a disk behind a protected VM or a recovery point unless forced', async () => {
    const { run, ok } = await protectedVm(service, 'web3', 'v3')
    const refused = run('disk', 'delete', 'web3-data')
    assert.equal(refused.status, 4, refused.stderr)
    assert.match(refused.stderr, /DiskInUse/)
    assert.match(refused.stderr, /protected VM "web3"/)
    const container = await call(service.url, 'DELETE', `/api/v1/accounts/${ACCOUNT}/containers/disks`)
    assert.equal(container.status, 409)
    assert.equal(container.body.error.code, 'DiskInUse')
    assert.equal(
      (await call(service.url, 'DELETE', `/api/v1/accounts/${ACCOUNT}`)).body.error.code,
      'DiskInUse',
    )
    const blob = blobService(service)
    await assert.rejects(
      blob.getContainerClient('disks').getBlobClient('web3-data').delete({ deleteSnapshots: 'include' }),
      (e: Json) => e.statusCode === 409 && (e.details?.errorCode ?? e.code) === 'DiskInUse',
    )
    await assert.rejects(
      blob.getContainerClient('disks').delete(),
      (e: Json) => e.statusCode === 409 && (e.details?.errorCode ?? e.code) === 'DiskInUse',
    )
    // A disk nothing depends on goes as before.
    await makeDisk(service.url, 'scratch', 1)
    ok('disk', 'delete', 'scratch')

    ok('backup', 'now', 'web3', '--wait')
    const only = run('disk', 'delete', 'web3-data', '--snapshots', 'only')
    assert.equal(only.status, 4)
    assert.match(only.stderr, /SnapshotInUse/)
    // Forced, the delete of the disk itself is still refused: the VM uses it (DiskAttached); its
    // snapshots can be forced away.
    const attached = run('disk', 'delete', 'web3-data', '--snapshots', 'include', '--force')
    assert.equal(attached.status, 4, attached.stderr)
    assert.match(attached.stderr, /DiskAttached: .*VM "web3"/)
    ok('disk', 'delete', 'web3-data', '--snapshots', 'only', '--force')
    const [point] = points(ok, 'web3')
    assert.equal(point.tier, 'Vault', 'the point lost its snapshot of the deleted disk')
    ok('restore', 'disks', 'web3', '--disks', 'lun0', '--prefix', 'back', '--wait')
    assert.equal(await firstByte(service.url, 'back-lun0'), 0x22)
  })

  it('refuses to delete a disk a VM uses with DiskAttached naming the VM, forced or not, until the VM lets go of it', async () => {
    const { run, ok } = runner(service.url)
    await makeDisk(service.url, 'db-os', 0x33)
    await makeDisk(service.url, 'db-data', 0x44)
    ok(
      'vm',
      'create',
      'db',
      '--os-disk',
      `${ACCOUNT}/disks/db-os`,
      '--data-disk',
      `lun0=${ACCOUNT}/disks/db-data`,
    )
    ok('disk', 'snapshot', 'db-data')
    for (const extra of [[], ['--force']]) {
      const r = run('disk', 'delete', 'db-data', '--snapshots', 'include', ...extra)
      assert.equal(r.status, 4, r.stderr)
      assert.match(r.stderr, /^cairn: DiskAttached: Cannot delete disk .*db-data.* to VM "db"/)
    }
    const api = await call(service.url, 'DELETE', `${DISKS}/db-os?force=true`)
    assert.equal(api.status, 409)
    assert.equal(api.body.error.code, 'DiskAttached')
    assert.match(
      api.body.error.message,
      /disk devstoreaccount1\/disks\/db-os: it is attached: devstoreaccount1\/disks\/db-os to VM "db"/,
    )
    const container = await call(
      service.url,
      'DELETE',
      `/api/v1/accounts/${ACCOUNT}/containers/disks?force=true`,
    )
    assert.equal(container.body.error.code, 'DiskAttached')
    const blob = blobService(service)
    await assert.rejects(
      blob.getContainerClient('disks').getBlobClient('db-os').delete({ deleteSnapshots: 'include' }),
      (e: Json) => e.statusCode === 409 && (e.details?.errorCode ?? e.code) === 'DiskAttached',
    )
    // Its snapshots are not the VM's disk: they may go.
    ok('disk', 'delete', 'db-data', '--snapshots', 'only')
    assert.equal(await firstByte(service.url, 'db-data'), 0x44, 'the disk is still there')
    // Once the VM is gone its disks are ordinary disks.
    ok('vm', 'delete', 'db')
    ok('disk', 'delete', 'db-data')
    ok('disk', 'delete', 'db-os')
    assert.equal(run('disk', 'show', 'db-os').status, 3)
  })

  it('vault prune leaves the points of protected VMs to their policy unless asked', async () => {
    const { ok } = await protectedVm(service, 'web5', 'v5')
    ok('backup', 'now', 'web5', '--wait')
    ok('backup', 'now', 'web5', '--wait')
    await makeDisk(service.url, 'files', 7)
    ok('backup', 'disk', 'files', '--vault', 'v5')
    ok('backup', 'disk', 'files', '--vault', 'v5')
    const vmPoints = points(ok, 'web5').map((p) => p.id)
    const pruned = ok('vault', 'prune', 'v5', '--keep-last', '1', '--json').json()
    assert.equal(pruned.removed.length, 1, 'the older disk backup goes')
    assert.deepEqual(pruned.skipped, vmPoints)
    assert.match(
      ok('vault', 'prune', 'v5', '--keep-last', '1').stdout,
      /2 of protected VMs left to their backup policy/,
    )
    assert.deepEqual(
      points(ok, 'web5').map((p) => p.tier),
      ['SnapshotAndVault', 'SnapshotAndVault'],
    )
    const all = ok('vault', 'prune', 'v5', '--keep-last', '1', '--include-policy-points', '--json').json()
    assert.deepEqual(all.removed, [vmPoints[0]])
    assert.deepEqual(
      points(ok, 'web5').map((p) => `${p.id} ${p.tier}`),
      [`${vmPoints[0]} Snapshot`, `${vmPoints[1]} SnapshotAndVault`],
      'the pruned point keeps only its snapshot tier',
    )
  })

  it('a vault deleted and recreated strands nothing: backup, re-protect, stop with data deletion and vm delete all work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-safety-vault-'))
    try {
      const { run, ok } = await protectedVm(service, 'web6', 'v6')
      ok('backup', 'now', 'web6', '--wait')
      const [first] = points(ok, 'web6')
      ok('vault', 'delete', 'v6')
      ok('vault', 'create', 'v6', '--location', join(dir, 'v1-again'))
      const [lost] = points(ok, 'web6')
      assert.equal(lost.id, first.id)
      assert.equal(lost.tier, 'Snapshot', 'the new vault does not hold the point')
      const backup = ok('backup', 'now', 'web6', '--wait', '--json').json()
      assert.equal(backup.state, 'Completed', JSON.stringify(backup))
      assert.deepEqual(
        points(ok, 'web6').map((p) => p.tier),
        ['Snapshot', 'SnapshotAndVault'],
      )
      ok('protect', 'web6', '--vault', 'v6', '--policy', 'daily')
      const stopped = ok('protection', 'stop', 'web6', '--delete-data')
      assert.match(stopped.stdout, /NotProtected \(2 recovery point\(s\) deleted\)/)
      assert.match(ok('protection', 'stop', 'web6', '--delete-data').stdout, /NotProtected/, 'idempotent')
      assert.deepEqual(
        (await call(service.url, 'GET', `${DISKS}/web6-os/snapshots`)).body.items,
        [],
        'the points took their snapshots with them',
      )
      ok('vm', 'delete', 'web6')
      assert.equal(run('vm', 'show', 'web6').status, 3)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('an item stranded in a vault that is gone can be protected into another vault and backed up', async () => {
    const { run, ok } = await protectedVm(service, 'web7', 'v7')
    ok('backup', 'now', 'web7', '--wait')
    ok('vault', 'delete', 'v7')
    const failed = run('backup', 'now', 'web7', '--wait')
    assert.equal(failed.status, 3, 'a backup into a vault that is gone fails with its code (not found)')
    assert.match(failed.stdout + failed.stderr, /VaultNotFound/)
    ok('vault', 'create', 'v7b')
    ok('policy', 'create', 'daily', '--vault', 'v7b', '--keep-days', '30')
    const moved = ok('protect', 'web7', '--vault', 'v7b', '--policy', 'daily', '--json').json()
    assert.equal(moved.vault, 'v7b')
    ok('backup', 'now', 'web7', '--wait')
    const tiers = points(ok, 'web7').map((p) => p.tier)
    assert.equal(tiers.at(-1), 'SnapshotAndVault')
    assert.ok(!tiers.slice(0, -1).includes('SnapshotAndVault'), 'points of the lost vault no longer claim it')
  })

  it('checks policies: the vault must exist, flags that would be dropped are refused, every value is in bounds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-safety-policy-'))
    try {
      const { run, ok } = runner(service.url)
      const missing = run('policy', 'create', 'p', '--vault', 'missing')
      assert.equal(missing.status, 3, missing.stderr)
      assert.match(missing.stderr, /VaultNotFound/)
      ok('vault', 'create', 'v8')
      const policy = (...args: string[]) => run('policy', 'create', 'p', '--vault', 'v8', ...args)
      const weekly = policy('--frequency', 'weekly', '--days', 'Sun', '--keep-days', '30')
      assert.equal(weekly.status, 2)
      assert.match(weekly.stderr, /weekly schedule .*--keep-weeks/)
      const cases: [string[], RegExp][] = [
        [['--keep-days', '6'], /daily\.days" must be 7–9999 days/],
        [['--keep-days', '10000'], /7–9999 days/],
        [['--keep-weeks', '0'], /1–5163 weeks/],
        [['--keep-weeks', '5164'], /1–5163 weeks/],
        [['--keep-months', '1189'], /1–1188 months/],
        [['--keep-years', '100'], /1–99 years/],
        [['--instant-days', '6'], /1–5 days for a Standard policy/],
        [
          ['--enhanced', '--frequency', 'hourly', '--instant-days', '31'],
          /1–30 days for a Enhanced policy|1–30 days/,
        ],
        [['--enhanced', '--frequency', 'hourly', '--interval', '5'], /4, 6, 8, 12, 24/],
        [['--frequency', 'hourly', '--interval', '4'], /needs an Enhanced policy/],
        [['--time', '25:00'], /HH:MM/],
        [['--time-zone', 'Mars/Base'], /not a time zone/],
        [['--interval', '4'], /hourly schedule/],
        [['--days', 'Sun'], /only a weekly schedule/],
        [['--keep-monthly-on', '1'], /needs --keep-months/],
      ]
      for (const [args, message] of cases) {
        const r = policy(...args)
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
        assert.match(r.stderr, message, args.join(' '))
      }
      const file = join(dir, 'p.json')
      writeFileSync(
        file,
        JSON.stringify({
          schedule: { frequency: 'Daily', time: '22:00' },
          retention: { daily: { days: 30 }, dayly: { days: 9 } },
        }),
      )
      const typo = run('policy', 'create', 'p', '--vault', 'v8', '--file', file)
      assert.equal(typo.status, 2)
      assert.match(typo.stderr, /"retention\.dayly" is not a policy field/)
      const both = run('policy', 'create', 'p', '--vault', 'v8', '--file', file, '--keep-days', '9')
      assert.equal(both.status, 2)
      assert.match(both.stderr, /--file holds the whole policy/)
      ok(
        'policy',
        'create',
        'p',
        '--vault',
        'v8',
        '--frequency',
        'weekly',
        '--days',
        'Sat,Sun',
        '--keep-weeks',
        '12',
      )
      assert.deepEqual(ok('policy', 'show', 'p', '--vault', 'v8').json().retention.weekly.weeks, 12)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
