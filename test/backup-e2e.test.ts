import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { AgentServer } from '../src/agent/index.js'
import { type Catalog, type Job, JobStore, openSqliteCatalog } from '../src/catalog/index.js'
import { type DiskRef, LogDiskStore } from '../src/diskstore/index.js'
import {
  JobService,
  ProtectionService,
  ProtectionStore,
  RegistryVaultTransfer,
} from '../src/protection/index.js'
import { isCairnError } from '../src/util/index.js'
import { VaultRegistry } from '../src/vault/index.js'
import { CAIRN_BIN } from './_service.js'

const TOKEN = 'backup-e2e-agent-token'
const MiB = 1024 * 1024
const ACCOUNT = 'acct'
const CONTAINER = 'vms'
const ref = (disk: string): DiskRef => ({ account: ACCOUNT, container: CONTAINER, disk })
/** A backup that completed with warnings (an unreachable agent, a failed script). */
const warned = (j: Job) => j.state === 'Completed' && (j.details.warnings as string[]).length > 0

/** Starts `cairn agent` as a real process with scripts that log their order. */
async function startAgent(dir: string): Promise<{ child: ChildProcess; url: string; log: string }> {
  const log = join(dir, 'agent-order.log')
  const script = (name: string, word: string) => {
    const p = join(dir, name)
    writeFileSync(p, `#!/bin/sh\necho ${word} >> ${log}\n`)
    chmodSync(p, 0o700)
    return p
  }
  const config = join(dir, 'agent.json')
  writeFileSync(
    config,
    JSON.stringify({
      preScriptLocation: script('pre.sh', 'pre'),
      postScriptLocation: script('post.sh', 'post'),
      timeoutInSeconds: 60,
    }),
  )
  chmodSync(config, 0o600)
  const child = spawn(
    process.execPath,
    [CAIRN_BIN, 'agent', '--config', config, '--port', '0', '--log-level', 'warn'],
    {
      env: { ...process.env, CAIRN_AGENT_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      const m = /listening on (\S+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', (code) => reject(new Error(`agent exited ${code}`)))
  })
  return { child, url, log }
}

async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** A counter in the first page of a disk. */
function page(n: number): Buffer {
  const b = Buffer.alloc(512)
  b.writeUInt32LE(n, 0)
  return b
}

describe('backups and restores end to end (real disk store, real agent process)', () => {
  it('takes consistent backups of two disks under a live workload, records consistency truthfully, and restores them', async (t) => {
    if (process.getuid!() !== 0) return t.skip('the agent wants root-owned scripts; run the tests as root')
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-e2e-'))
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined
    let catalog: Catalog | undefined
    let disks: LogDiskStore | undefined
    try {
      agent = await startAgent(dir)
      catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
      disks = await LogDiskStore.open(join(dir, 'disks'))
      await disks.createAccount(ACCOUNT)
      await disks.createContainer(ACCOUNT, CONTAINER)
      for (const d of ['app-os', 'app-data', 'app-log', 'app-temp'])
        await disks.createDisk(ref(d), { size: 4 * MiB })
      const store = new ProtectionStore(catalog)
      const service = new ProtectionService({
        store,
        disks,
        jobs: new JobService({ store: new JobStore(catalog!) }),
        onDemandPerDay: 10,
      })
      await service.registerVm({
        name: 'app',
        osDisk: ref('app-os'),
        dataDisks: [
          { lun: 0, disk: ref('app-data') },
          { lun: 1, disk: ref('app-log') },
        ],
        tempDisk: ref('app-temp'),
        configuration: { cpus: 2 },
        agent: { url: agent.url, token: TOKEN },
      })
      await service.createPolicy('v1', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      await service.protect('app', { vault: 'v1', policy: 'daily' })

      // The workload: counter n written to the data disk, then to the log disk. At any one instant
      // data == log or data == log + 1; a snapshot of the two at different instants breaks that.
      let n = 0
      let stop = false
      const writer = (async () => {
        while (!stop) {
          n++
          await disks!.writePages(ref('app-data'), 0, page(n))
          await disks!.writePages(ref('app-log'), 0, page(n))
          if (n % 8 === 0) await new Promise((r) => setImmediate(r))
        }
      })()
      const jobs = []
      for (let i = 0; i < 4; i++) {
        jobs.push(await service.backup('app'))
        await new Promise((r) => setTimeout(r, 20))
      }
      const busy = service.startBackup('app')
      await assert.rejects(
        service.startBackup('app'),
        (e) => isCairnError(e) && e.code === 'BackupInProgress',
      )
      await busy
      await service.idle()
      stop = true
      await writer

      for (const j of jobs) assert.equal(j.state, 'Completed', JSON.stringify(j))
      const points = await store.listRecoveryPoints('app')
      assert.equal(points.length, 5)
      for (const p of points) {
        assert.equal(p.consistency, 'AppConsistent')
        assert.equal(p.tier, 'Snapshot')
        assert.deepEqual(
          p.disks.map((d) => d.name),
          ['os', 'lun0', 'lun1'],
          'the temporary disk is never backed up',
        )
      }
      assert.deepEqual(
        readFileSync(agent.log, 'utf8').trim().split('\n'),
        Array(5).fill(['pre', 'post']).flat(),
      )

      // Every point restored: the two disks agree on one instant.
      let progressed = 0
      for (const [i, p] of points.entries()) {
        const r = await (await service.restoreDisks(p.id, { prefix: `check${i}` })).done
        assert.equal(r.state, 'Completed', JSON.stringify(r))
        assert.equal((r.details.disks as { from: string }[])[0]!.from, 'Snapshot')
        const data = (await disks.read(ref(`check${i}-lun0`), 0, 512)).readUInt32LE(0)
        const log = (await disks.read(ref(`check${i}-lun1`), 0, 512)).readUInt32LE(0)
        assert.ok(data === log || data === log + 1, `point ${i}: data ${data}, log ${log}`)
        if (data > 0) progressed++
      }
      assert.ok(progressed >= 3, 'the workload was running during the backups')

      // A new VM from the latest point: new disks, the saved configuration, no agent.
      const latest = points.at(-1)!
      const made = await (await service.restoreVm(latest.id, { as: 'app-copy' })).done
      assert.equal(made.state, 'Completed', JSON.stringify(made))
      const copy = await store.getVm('app-copy')
      assert.equal(copy.dataDisks.length, 2)
      assert.equal(copy.agent, undefined)
      assert.deepEqual(copy.configuration.restoredFrom, {
        vm: 'app',
        recoveryPoint: latest.id,
        time: latest.time,
      })

      // Replace the disks of the VM itself: its current disks are snapshotted and kept first.
      await disks.writePages(ref('app-data'), 0, page(999_999))
      const before = disks.listSnapshots(ref('app-data')).length
      const replaced = await (await service.replaceDisks('app', latest.id)).done
      assert.equal(replaced.state, 'Completed', JSON.stringify(replaced))
      const expected = (await disks.read(ref('app-copy-lun0'), 0, 512)).readUInt32LE(0)
      assert.equal((await disks.read(ref('app-data'), 0, 512)).readUInt32LE(0), expected)
      assert.equal(
        disks.listSnapshots(ref('app-data')).length,
        before + 1,
        'the pre-restore snapshot is kept',
      )
      await assert.rejects(
        service.restoreDisks(latest.id, { prefix: 'x', disks: [7] }),
        (e) => isCairnError(e) && e.code === 'RecoveryPointDiskNotFound',
      )
    } finally {
      if (agent && agent.child.exitCode === null) {
        const exited = new Promise((r) => agent!.child.once('exit', r))
        agent.child.kill('SIGTERM')
        await exited
      }
      await disks?.close()
      await catalog?.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('goes on crash-consistent and says so when the agent cannot be reached; refuses a stopped item and an unknown VM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-e2e-'))
    const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    try {
      await disks.createAccount(ACCOUNT)
      await disks.createContainer(ACCOUNT, CONTAINER)
      await disks.createDisk(ref('lonely-os'), { size: MiB })
      const store = new ProtectionStore(catalog)
      const service = new ProtectionService({
        store,
        disks,
        jobs: new JobService({ store: new JobStore(catalog!) }),
      })
      await service.registerVm({
        name: 'lonely',
        osDisk: ref('lonely-os'),
        configuration: {},
        agent: { url: `http://127.0.0.1:${await closedPort()}`, token: TOKEN },
      })
      await service.createPolicy('v1', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      await service.protect('lonely', { vault: 'v1', policy: 'daily' })
      const job = await service.backup('lonely')
      assert.ok(warned(job), JSON.stringify(job))
      // Three on-demand backups a day, as the reference; a scheduled one still runs.
      await service.backup('lonely')
      await service.backup('lonely')
      await assert.rejects(
        service.backup('lonely'),
        (e) =>
          isCairnError(e) && e.code === 'OnDemandBackupLimit' && /3 on-demand backups today/.test(e.message),
      )
      assert.ok(warned(await service.backup('lonely', { kind: 'Scheduled' })))
      assert.match(String((job.details.warnings as string[])[0]), /Cannot reach the agent.*crash-consistent/)
      const points = await store.listRecoveryPoints('lonely')
      assert.equal(points.length, 4)
      for (const p of points) assert.equal(p.consistency, 'CrashConsistent')
      const onDemand = points.filter((r) => r.kind === 'OnDemand')
      assert.equal(onDemand.length, 3)
      for (const p of onDemand) assert.equal(Date.parse(p.expiresAt!) - Date.parse(p.time), 30 * 86_400_000)

      await service.stopProtection('lonely', { deleteData: false })
      await assert.rejects(service.backup('lonely'), (e) => isCairnError(e) && e.code === 'ProtectionStopped')
      await assert.rejects(service.backup('ghost'), (e) => isCairnError(e) && e.code === 'VmNotFound')
      await assert.rejects(
        service.restoreVm('no-such-point', { as: 'x' }),
        (e) => isCairnError(e) && e.code === 'RecoveryPointNotFound',
      )
    } finally {
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('transfers only the diff to the vault, drops snapshots past the instant-restore retention, and restores from the vault', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-vault-'))
    const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    const vaults = new VaultRegistry(catalog, { dataDir: dir })
    try {
      await vaults.create('v1')
      await disks.createAccount(ACCOUNT)
      await disks.createContainer(ACCOUNT, CONTAINER)
      const size = 16 * MiB
      for (const d of ['db-os', 'db-data']) await disks.createDisk(ref(d), { size })
      // 8 MiB of varied data on the data disk, 1 MiB on the OS disk.
      const fill = (seed: number, n: number) => {
        const b = Buffer.alloc(n)
        for (let i = 0; i < n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i)
        return b
      }
      for (let o = 0; o < 8 * MiB; o += 4 * MiB) await disks.writePages(ref('db-data'), o, fill(o, 4 * MiB))
      await disks.writePages(ref('db-os'), 0, fill(7, MiB))
      let now = Date.UTC(2026, 5, 1, 12)
      const store = new ProtectionStore(catalog, { now: () => now })
      const service = new ProtectionService({
        store,
        disks,
        jobs: new JobService({ store: new JobStore(catalog, { now: () => now }) }),
        vault: new RegistryVaultTransfer(vaults, disks),
        now: () => now,
      })
      await service.registerVm({
        name: 'db',
        osDisk: ref('db-os'),
        dataDisks: [{ lun: 0, disk: ref('db-data') }],
        configuration: {},
      })
      await service.createPolicy('v1', {
        name: 'daily',
        instantRpRetentionRangeInDays: 1,
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      await service.protect('db', { vault: 'v1', policy: 'daily' })

      const first = await service.backup('db', { kind: 'Scheduled' })
      assert.equal(first.state, 'Completed', JSON.stringify(first))
      assert.equal(first.details.incremental, false)
      // 1% churn: 160 KiB in 40 scattered 4 KiB writes.
      for (let i = 0; i < 40; i++)
        await disks.writePages(ref('db-data'), i * 200 * 1024, fill(1000 + i, 4096))
      now += 2 * 86_400_000
      const second = await service.backup('db', { kind: 'Scheduled' })
      assert.equal(second.state, 'Completed', JSON.stringify(second))
      assert.equal(second.details.incremental, true)
      assert.ok(
        (second.details.bytesAdded as number) < (first.details.bytesAdded as number) / 5,
        `${second.details.bytesAdded} vs ${first.details.bytesAdded}`,
      )

      const points = await store.listRecoveryPoints('db')
      assert.deepEqual(
        points.map((p) => p.tier),
        ['Vault', 'SnapshotAndVault'],
        'the older snapshot is gone, the latest always stays',
      )
      assert.equal(disks.listSnapshots(ref('db-data')).length, 1)

      const fromVault = await (await service.restoreDisks(points[0]!.id, { prefix: 'old' })).done
      assert.equal(fromVault.state, 'Completed', JSON.stringify(fromVault))
      assert.deepEqual(
        (fromVault.details.disks as { from: string }[]).map((d) => d.from),
        ['Vault', 'Vault'],
      )
      const restored = await disks.read(ref('old-lun0'), 0, 8 * MiB)
      const expected = Buffer.concat([fill(0, 4 * MiB), fill(4 * MiB, 4 * MiB)])
      assert.ok(restored.equals(expected), 'the vault copy holds the first backup, before the churn')

      // Retention: past 7 days the older point goes; the latest stays whatever its age.
      now += 10 * 86_400_000
      assert.deepEqual(await service.applyRetention(), { pruned: 1, vaults: ['v1'] })
      assert.equal((await store.listRecoveryPoints('db')).length, 1)
      // The service then runs a GC of each vault that lost points; what the kept point needs survives it.
      const v1 = await vaults.open('v1')
      await v1.gc()
      const check = await v1.verify()
      assert.deepEqual(check.problems, [])
      assert.equal(check.recoveryPoints, 1)
    } finally {
      await vaults.close()
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('sends only the last scheduled backup of the day to the vault under an hourly policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-hourly-'))
    const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    const vaults = new VaultRegistry(catalog, { dataDir: dir })
    try {
      await vaults.create('v1')
      await disks.createAccount(ACCOUNT)
      await disks.createContainer(ACCOUNT, CONTAINER)
      await disks.createDisk(ref('h-os'), { size: MiB })
      let now = Date.UTC(2026, 5, 1, 12, 10)
      const store = new ProtectionStore(catalog, { now: () => now })
      const service = new ProtectionService({
        store,
        disks,
        jobs: new JobService({ store: new JobStore(catalog, { now: () => now }) }),
        vault: new RegistryVaultTransfer(vaults, disks),
        now: () => now,
      })
      await service.registerVm({ name: 'h', osDisk: ref('h-os'), configuration: {} })
      await service.createPolicy('v1', {
        name: 'every-4h',
        policyType: 'Enhanced',
        schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '00:00', windowDurationHours: 24 },
        retention: { daily: { days: 7 } },
      })
      await service.protect('h', { vault: 'v1', policy: 'every-4h' })
      const noon = await service.backup('h', { kind: 'Scheduled' })
      assert.match(String(noon.details.vault), /skipped/)
      now = Date.UTC(2026, 5, 1, 20, 10)
      const evening = await service.backup('h', { kind: 'Scheduled' })
      assert.equal(evening.details.vault, undefined)
      const onDemand = await service.backup('h')
      assert.equal(onDemand.details.vault, undefined, 'an on-demand backup always goes to the vault')
      assert.deepEqual(
        (await store.listRecoveryPoints('h')).map((p) => p.tier),
        ['Snapshot', 'SnapshotAndVault', 'SnapshotAndVault'],
      )
    } finally {
      await vaults.close()
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cancels a backup held in the quiesce phase: the job ends Cancelled, no point is written, the VM is free again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-cancel-'))
    const catalog = await openSqliteCatalog(join(dir, 'catalog.db'))
    const disks = await LogDiskStore.open(join(dir, 'disks'))
    const pre = join(dir, 'slow-pre.sh')
    writeFileSync(pre, '#!/bin/sh\nsleep 2\n')
    chmodSync(pre, 0o700)
    const config = join(dir, 'agent.json')
    writeFileSync(config, JSON.stringify({ preScriptLocation: pre, timeoutInSeconds: 30 }))
    chmodSync(config, 0o600)
    const agent = new AgentServer({
      configPath: config,
      token: TOKEN,
      ownership: { ownerUid: process.getuid!() },
    })
    try {
      const { url } = await agent.start({ port: 0 })
      await disks.createAccount(ACCOUNT)
      await disks.createContainer(ACCOUNT, CONTAINER)
      await disks.createDisk(ref('c-os'), { size: MiB })
      const store = new ProtectionStore(catalog)
      const jobs = new JobService({ store: new JobStore(catalog) })
      const service = new ProtectionService({ store, disks, jobs })
      await service.registerVm({
        name: 'c',
        osDisk: ref('c-os'),
        configuration: {},
        agent: { url, token: TOKEN },
      })
      await service.createPolicy('v1', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      await service.protect('c', { vault: 'v1', policy: 'daily' })
      const { job } = await service.startBackup('c')
      for (let i = 0; i < 200 && (await jobs.get(job.id)).progress.phase !== 'Quiesce'; i++)
        await new Promise((r) => setTimeout(r, 10))
      const cancelled = await service.cancel(job.id)
      assert.equal(cancelled.state, 'Cancelled')
      assert.equal((await store.listRecoveryPoints('c')).length, 0)
      await assert.rejects(service.cancel(job.id), (e) => isCairnError(e) && e.code === 'JobNotRunning')
      // The agent finishes its quiesce and its watchdog would thaw; here the agent is stopped (it thaws).
      await new Promise((r) => setTimeout(r, 2200))
      await agent.stop()
      const next = await service.backup('c')
      assert.ok(warned(next), 'the agent is gone: crash-consistent, and said so')
    } finally {
      await agent.stop()
      await disks.close()
      await catalog.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
