import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LogDiskStore } from '../src/diskstore/index.js'
import { api, cli, D, ended, type Json, randomDisk, request, waitJob } from './_jobs.js'
import { type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024
const SIZE = 128 * MiB
const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'big' }]

/** Bytes the process read through system calls so far (/proc/PID/io `rchar`). */
function bytesRead(service: RunningService): number {
  const io = readFileSync(`/proc/${service.child.pid}/io`, 'utf8')
  return Number(/^rchar: (\d+)$/m.exec(io)![1])
}

/** SHA-256 of a disk's bytes, read through the API. */
async function diskHash(url: string, disk: string, size: number): Promise<string> {
  const h = createHash('sha256')
  for (let o = 0; o < size; o += 4 * MiB) {
    const res = await request(`${url}${D}/${disk}/pages?offset=${o}&length=${4 * MiB}`)
    assert.equal(res.status, 200)
    h.update(Buffer.from(await res.arrayBuffer()))
  }
  return h.digest('hex')
}

const committed = (j: Json) =>
  j.details.checkpoint ? Object.values(j.details.checkpoint.disks as Record<string, Json[]>).flat().length : 0

/**
 * Starts a backup of disk `big` into v1 and kills the service once a checkpoint holds committed work
 * (the first one by default: on a quiet machine a 128 MiB backup can end between two polls after its
 * half, before a later checkpoint is seen).
 */
async function killMidBackup(service: RunningService, fraction = 0): Promise<Json> {
  const started = await api(service.url, 'POST', '/api/v1/vaults/v1/backups', { disks, item: 'big' })
  assert.equal(started.status, 202, JSON.stringify(started.body))
  const mid = await waitJob(
    service.url,
    started.body.id,
    (j) => j.progress.bytesDone >= SIZE * fraction && committed(j) > 0,
    `${fraction} of its bytes and a checkpoint`,
  )
  assert.equal(mid.state, 'Running')
  await service.stop('SIGKILL')
  return mid
}

async function snapshotsOf(url: string, disk: string): Promise<Json[]> {
  return (await api(url, 'GET', `${D}/${disk}/snapshots`)).body.items
}

async function vaultFiles(url: string, folder: string): Promise<string[]> {
  const location = (await api(url, 'GET', '/api/v1/vaults/v1')).body.location as string
  const dir = join(location, folder)
  return existsSync(dir) ? readdirSync(dir) : []
}

/** Names in a folder of a vault in the service's data folder (its default location), while it is down. */
function vaultFilesAt(data: string, vault: string, folder: string): string[] {
  const dir = join(data, 'vaults', vault, folder)
  return existsSync(dir) ? readdirSync(dir) : []
}

describe('a vault backup cut short by a kill -9 or a stop of the service', () => {
  it('resumes at the restart from its last committed pack and completes: one point, a byte-identical restore, what was committed not read again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-resume-'))
    const data = join(dir, 'data')
    let service = await startService([], { data })
    try {
      await randomDisk(service.url, 'big', SIZE / MiB)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      // A clean restart checkpoints the disk store: the start after the kill then replays no disk data,
      // and what the restarted service reads is the backup's.
      await service.stop()
      service = await startService([], { data })
      const mid = await killMidBackup(service)
      const id = mid.id as string

      service = await startService([], { data })
      const resumed = await waitJob(
        service.url,
        id,
        (j) => j.details.resumed?.[0]?.bytesDone !== undefined,
        'its resumption',
      )
      assert.equal(resumed.details.resumed.length, 1, JSON.stringify(resumed.details.resumed))
      const at = resumed.details.resumed[0].bytesDone as number
      assert.ok(at > 0 && at < SIZE, `resumed at ${at} bytes`)
      // It goes on from at least the checkpoint seen before the kill (a later one may have been saved).
      const seen = Object.values(mid.details.checkpoint.disks as Record<string, Json[]>)
        .flat()
        .reduce((n, sub) => n + sub[3], 0)
      assert.ok(at >= seen, `resumed at ${at}, ${seen} bytes committed before the kill`)
      const done = await ended(service.url, id)
      assert.equal(done.state, 'Completed', JSON.stringify(done))
      // The restarted service read less than the disk holds: the committed part was not read again.
      const read = bytesRead(service)
      assert.ok(read < SIZE, `the restarted service read ${read} bytes for a ${SIZE}-byte disk`)
      assert.ok(read >= SIZE - at - 8 * MiB, `it read ${read} bytes, so it read the rest (${SIZE - at})`)

      // Exactly one point, the one the job started; the job's record shows the resumption.
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items as Json[]
      assert.deepEqual(
        points.map((p) => p.id),
        [done.result.id],
      )
      assert.equal(done.details.checkpoint.point, done.result.id, 'the point is the one the first run began')
      assert.equal(done.result.disks[0].bytesScanned, SIZE, 'both runs together read the disk once')
      // Nothing stored twice: the packs hold the disk's (incompressible) bytes once, plus its index.
      const usage = (await api(service.url, 'GET', '/api/v1/vaults/v1/usage')).body
      const packBytes = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items[0]
        .bytesAdded as number
      assert.ok(packBytes < SIZE + 4 * MiB, `the point added ${packBytes} bytes: ${JSON.stringify(usage)}`)
      assert.deepEqual(await vaultFiles(service.url, 'locks'), [], 'the lock went with the commit')
      assert.equal(
        (await snapshotsOf(service.url, 'big')).length,
        1,
        'the snapshot stays as the next diff base',
      )

      const show = cli(service.url, 'job', 'show', id)
      assert.equal(await show.exit, 0, show.stderr())
      assert.match(show.stdout(), /resumed:\s+at \d+(\.\d+)? MiB/, show.stdout())

      // The restore of the point is the disk, byte for byte.
      const restore = await api(
        service.url,
        'POST',
        `/api/v1/vaults/v1/recoveryPoints/${done.result.id}/restore`,
        { target: { account: 'devstoreaccount1', container: 'disks', disk: 'copy' } },
      )
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      assert.equal((await ended(service.url, restore.body.id)).state, 'Completed')
      assert.equal(await diskHash(service.url, 'copy', SIZE), await diskHash(service.url, 'big', SIZE))
      assert.deepEqual((await api(service.url, 'GET', '/api/v1/jobs?state=Running,Queued')).body.items, [])
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a resumed backup cancelled stops and leaves nothing; one whose snapshot is gone ends Interrupted with BackupSnapshotMissing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-resume-'))
    const data = join(dir, 'data')
    // --gc-grace 0: the GC after an interrupted backup runs at once.
    const serve = () => startService(['--gc-grace', '0'], { data })
    let service = await serve()
    try {
      await randomDisk(service.url, 'big', SIZE / MiB)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)

      // 1. Cancelled after it resumed: it stops, its snapshot and lock go, no point is made.
      // Cut at its first checkpoint and cancelled the moment it has resumed, so that most of the disk is
      // still to read when the cancel comes (a resume of the last half can finish before a slower cancel).
      const first = await killMidBackup(service)
      service = await serve()
      const watch = cli(service.url, 'job', 'watch', first.id)
      await waitJob(
        service.url,
        first.id,
        (j) => (j.details?.resumed ?? []).some((r: Json) => typeof r.bytesDone === 'number'),
        'its resumption at a checkpoint',
      )
      const cancelled = await api(service.url, 'POST', `/api/v1/jobs/${first.id}/cancel`)
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body))
      assert.equal(cancelled.body.state, 'Cancelled')
      assert.equal(await watch.exit, 8, watch.stderr())
      assert.match(watch.stderr(), /resumed at \d+(\.\d+)? (KiB|MiB) .* after a restart/)
      const readAfterCancel = bytesRead(service)
      await new Promise((r) => setTimeout(r, 500))
      assert.ok(bytesRead(service) - readAfterCancel < 4 * MiB, 'nothing reads the disk after the cancel')
      const after = (await api(service.url, 'GET', `/api/v1/jobs/${first.id}`)).body
      assert.equal(
        after.progress.bytesDone,
        cancelled.body.progress.bytesDone,
        'the job does not move any more',
      )
      assert.deepEqual((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items, [])
      assert.deepEqual(await snapshotsOf(service.url, 'big'), [], 'the snapshot it read went with it')
      assert.deepEqual(await vaultFiles(service.url, 'locks'), [], 'its lock went with it')

      // 2. The snapshot it reads is deleted while the service is down: it cannot resume.
      const second = await killMidBackup(service)
      const store = await LogDiskStore.open(join(data, 'disks'))
      try {
        for (const s of store.listSnapshots(disks[0]!)) await store.deleteSnapshot(disks[0]!, s.snapshot!)
      } finally {
        await store.close()
      }
      service = await serve()
      const cut = (await api(service.url, 'GET', `/api/v1/jobs/${second.id}`)).body
      assert.equal(cut.state, 'Interrupted', JSON.stringify(cut))
      assert.equal(cut.error.code, 'BackupSnapshotMissing', JSON.stringify(cut.error))
      assert.match(cut.error.message, /snapshot .* is gone/)
      assert.deepEqual((await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items, [])
      // The GC planned at the restart reclaims the packs the cut backup wrote.
      const gcs = async () =>
        (await api(service.url, 'GET', '/api/v1/jobs?kind=gc&vault=v1')).body.items.filter(
          (j: Json) => j.startedBy === 'recovery',
        )
      for (let i = 0; i < 400 && (await gcs()).length === 0; i++) await new Promise((r) => setTimeout(r, 25))
      const [gc] = await gcs()
      assert.ok(gc, 'a GC job follows the restart')
      const gcDone = await ended(service.url, gc.id)
      assert.equal(gcDone.state, 'Completed', JSON.stringify(gcDone))
      assert.ok(gcDone.result.bytesReclaimed > 0, JSON.stringify(gcDone.result))
      assert.deepEqual(await vaultFiles(service.url, 'locks'), [])
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a graceful stop leaves a running backup Suspended, and the next start resumes it to one point', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-backup-resume-'))
    const data = join(dir, 'data')
    let service = await startService([], { data })
    try {
      await randomDisk(service.url, 'big', SIZE / MiB)
      assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      const started = await api(service.url, 'POST', '/api/v1/vaults/v1/backups', { disks, item: 'big' })
      await waitJob(
        service.url,
        started.body.id,
        (j) => j.progress.bytesDone >= SIZE / 2 && committed(j) > 0,
        'half of its bytes and a checkpoint',
      )
      assert.equal(await service.stop(), 0, 'a clean stop')
      assert.equal(vaultFilesAt(data, 'v1', 'locks').length, 1, "the stop keeps the backup's lock")
      service = await startService([], { data })
      const done = await ended(service.url, started.body.id)
      assert.equal(done.state, 'Completed', JSON.stringify(done))
      assert.equal(done.details.resumed.length, 1)
      assert.ok(done.details.resumed[0].bytesDone > 0, JSON.stringify(done.details.resumed))
      const points = (await api(service.url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items as Json[]
      assert.deepEqual(
        points.map((p) => p.id),
        [done.result.id],
      )
      assert.equal((await snapshotsOf(service.url, 'big')).length, 1)
      assert.deepEqual(await vaultFiles(service.url, 'locks'), [])
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
