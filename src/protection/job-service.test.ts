import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Catalog, type Job, JobStore, SqliteCatalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import { type JobEvent, JobService } from './job-service.js'

async function withJobs(body: (jobs: JobService, catalog: Catalog) => Promise<void>): Promise<void> {
  const catalog = new SqliteCatalog(':memory:')
  await catalog.migrate()
  const jobs = new JobService({ store: new JobStore(catalog), progressIntervalMs: 20 })
  try {
    await body(jobs, catalog)
  } finally {
    await jobs.close()
    await catalog.close()
  }
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('JobService', () => {
  it('runs a job to Completed, saving its progress and result and sending created, progress and finished events', async () => {
    await withJobs(async (jobs) => {
      const events: JobEvent[] = []
      const stop = jobs.subscribe((e) => events.push(e))
      const { job, done } = await jobs.start(
        { kind: 'verify', resource: 'vaults/a', vault: 'a' },
        async (ctx) => {
          await ctx.phase('Read')
          for (let i = 1; i <= 5; i++) {
            ctx.progress({ bytesDone: i * 100, bytesTotal: 500 })
            await tick(15)
          }
          return { checked: 5 }
        },
      )
      const mid = await jobs.get(job.id)
      assert.equal(mid.state, 'Running')
      const end = await done
      stop()
      assert.equal(end.state, 'Completed')
      assert.deepEqual(end.result, { checked: 5 })
      assert.equal(end.progress.bytesDone, 500, 'the last progress is saved before the end')
      assert.equal(events[0]?.type, 'job.created')
      assert.equal(events.at(-1)?.type, 'job.finished')
      assert.ok(events.some((e) => e.type === 'job.progress' && e.job.progress.bytesDone > 0))
      assert.ok(events.some((e) => e.type === 'job.progress' && e.job.progress.phase === 'Read'))
    })
  })

  it('a job that read all it meant to and then failed shows how far it got, never 100%; a completed one shows 100%', async () => {
    await withJobs(async (jobs) => {
      const failing = await jobs.start({ kind: 'backup', resource: 'vaults/a' }, async (ctx) => {
        ctx.progress({ bytesDone: 1000, bytesTotal: 1000 })
        await tick(15)
        throw new CairnError('VaultCorrupt', 'the manifest could not be written')
      })
      const failed = await failing.done
      assert.equal(failed.state, 'Failed')
      assert.equal(failed.progress.bytesDone, 1000)
      assert.ok(failed.progress.percent < 100, `a failed job at ${failed.progress.percent}%`)
      assert.equal((await jobs.get(failing.job.id)).progress.percent, failed.progress.percent)
      // Finished below its estimate (the data shrank while it ran): completed is 100%.
      const short = await jobs.start({ kind: 'backup', resource: 'vaults/a' }, async (ctx) => {
        ctx.progress({ bytesDone: 400, bytesTotal: 1000 })
      })
      assert.equal((await short.done).progress.percent, 100)
    })
  })

  it('cancel() aborts the work and answers only after it has stopped and cleaned up', async () => {
    await withJobs(async (jobs) => {
      let cleaned = false
      let steps = 0
      const { job } = await jobs.start({ kind: 'backup', resource: 'vaults/a' }, async (ctx) => {
        try {
          for (;;) {
            ctx.signal.throwIfAborted()
            steps++
            await tick(5)
          }
        } finally {
          await tick(30)
          cleaned = true
        }
      })
      await tick(30)
      const cancelled = await jobs.cancel(job.id)
      assert.equal(cancelled.state, 'Cancelled')
      assert.equal(cancelled.error?.code, 'Cancelled')
      assert.ok(cleaned, 'the clean-up ran before cancel() answered')
      const at = steps
      await tick(30)
      assert.equal(steps, at, 'no work after the cancel')
      await assert.rejects(jobs.cancel(job.id), (e: CairnError) => e.code === 'JobNotRunning')
    })
  })

  it('a failing job ends Failed with its error code and message; a file-system error is IoError, an unknown one Internal without its Node message', async () => {
    await withJobs(async (jobs) => {
      const a = await jobs.start({ kind: 'gc', resource: 'vaults/a' }, async () => {
        throw new CairnError('VaultCorrupt', 'Cannot collect garbage: pack p is damaged')
      })
      assert.deepEqual((await a.done).error, {
        code: 'VaultCorrupt',
        message: 'Cannot collect garbage: pack p is damaged',
      })
      const b = await jobs.start({ kind: 'gc', resource: 'vaults/a' }, async () => {
        throw new TypeError('boom')
      })
      const end = await b.done
      assert.equal(end.state, 'Failed')
      assert.equal(end.error?.code, 'Internal')
      assert.doesNotMatch(end.error?.message ?? '', /boom/, 'a Node message never reaches the user')
      // A file-system error is IoError naming the system error, not Internal.
      const c = await jobs.start({ kind: 'gc', resource: 'vaults/a' }, async () => {
        throw Object.assign(new Error('EACCES: permission denied, open /x'), { code: 'EACCES' })
      })
      const io = await c.done
      assert.equal(io.error?.code, 'IoError')
      assert.match(io.error?.message ?? '', /permission denied \(EACCES\)/)
    })
  })

  it('close() interrupts running jobs (those that ask to be suspended stay unfinished), and an interruptOn signal does the same for one job', async () => {
    await withJobs(async (jobs) => {
      const forever = (ctx: { signal: AbortSignal }) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))
      const scheduler = new AbortController()
      const one = await jobs.start({ kind: 'backup', resource: 'vms/a' }, forever, {
        interruptOn: scheduler.signal,
      })
      scheduler.abort()
      assert.equal((await one.done).state, 'Interrupted')
      const two = await jobs.start({ kind: 'restore', resource: 'vms/b' }, forever)
      // Work that can go on later asks to be suspended: it stays unfinished for the next start.
      const three = await jobs.start({ kind: 'backup', resource: 'vaults/c' }, (ctx) =>
        forever(ctx).catch((err) => {
          assert.equal(ctx.suspend(), true)
          throw err
        }),
      )
      // A cancel is no stop: suspend() answers false and the job ends Cancelled.
      const four = await jobs.start({ kind: 'backup', resource: 'vaults/d' }, (ctx) =>
        forever(ctx).catch((err) => {
          assert.equal(ctx.suspend(), false)
          throw err
        }),
      )
      assert.equal((await jobs.cancel(four.job.id)).state, 'Cancelled')
      await jobs.close()
      const end = await two.done
      assert.equal(end.state, 'Interrupted')
      assert.equal(end.error?.code, 'JobInterrupted')
      const kept = await three.done
      assert.equal(kept.state, 'Running')
      assert.equal(kept.progress.phase, 'Suspended')
      assert.equal(kept.endedAt, undefined)
    })
  })

  it("recover() resumes the jobs its resumer gives work for, interrupts the others (with the resumer's error code when it refuses), and a resumed job can be cancelled", async () => {
    const catalog = new SqliteCatalog(':memory:')
    await catalog.migrate()
    const store = new JobStore(catalog)
    try {
      // What a service that died leaves: three jobs Running with their details.
      const made = []
      for (const kind of ['backup', 'restore', 'verify'] as const) {
        const j = await store.create({ kind, resource: `vaults/${kind}`, details: { step: 2 } })
        await store.markRunning(j.id)
        made.push(j)
      }
      const [backup, restore, verify] = made as [Job, Job, Job]
      const jobs = new JobService({ store, progressIntervalMs: 20 })
      const seen: { resumed: boolean; step: unknown }[] = []
      let release!: () => void
      const running = new Promise<void>((r) => {
        release = r
      })
      const interrupted = await jobs.recover({
        resume: async (job) => {
          if (job.kind === 'verify')
            throw new CairnError('BackupSnapshotMissing', 'Cannot resume: its snapshot is gone')
          if (job.kind !== 'backup') return undefined
          return (ctx) =>
            new Promise((_, reject) => {
              seen.push({ resumed: ctx.resumed, step: ctx.details.step })
              release()
              ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))
            })
        },
      })
      assert.deepEqual(interrupted.map((j) => j.id).sort(), [restore.id, verify.id].sort())
      const byId = new Map(interrupted.map((j) => [j.id, j]))
      assert.equal(byId.get(restore.id)?.error?.code, 'JobInterrupted')
      assert.equal(byId.get(verify.id)?.state, 'Interrupted')
      assert.equal(byId.get(verify.id)?.error?.code, 'BackupSnapshotMissing')
      await running
      assert.deepEqual(seen, [{ resumed: true, step: 2 }], 'the work gets the details the dead run saved')
      const now = await jobs.get(backup.id)
      assert.equal(now.state, 'Running')
      assert.equal((now.details.resumed as unknown[]).length, 1)
      assert.ok(jobs.isRunning(backup.id))
      const cancelled = await jobs.cancel(backup.id)
      assert.equal(cancelled.state, 'Cancelled')
      assert.ok(!jobs.isRunning(backup.id))
      await jobs.close()
    } finally {
      await catalog.close()
    }
  })

  it('watch() hands over only the events of matching jobs, and refuses one watcher past the limit until one leaves', async () => {
    const catalog = new SqliteCatalog(':memory:')
    await catalog.migrate()
    const jobs = new JobService({ store: new JobStore(catalog), maxWatchers: 2 })
    try {
      const ofA: JobEvent[] = []
      const gcs: JobEvent[] = []
      const stopA = jobs.watch({ vault: 'a' }, (e) => ofA.push(e))
      const stopGc = jobs.watch({ kind: 'gc' }, (e) => gcs.push(e))
      assert.throws(
        () => jobs.watch({}, () => {}),
        (e: unknown) => e instanceof CairnError && e.code === 'TooManySubscribers',
      )
      const a = await jobs.start({ kind: 'verify', resource: 'vaults/a', vault: 'a' }, async () => 1)
      const b = await jobs.start({ kind: 'gc', resource: 'vaults/b', vault: 'b' }, async () => 2)
      await a.done
      await b.done
      assert.ok(ofA.length >= 2)
      assert.ok(ofA.every((e) => e.job.id === a.job.id))
      assert.ok(gcs.length >= 2)
      assert.ok(gcs.every((e) => e.job.id === b.job.id))
      stopA()
      const again = jobs.watch({ job: b.job.id }, () => {})
      again()
      stopGc()
    } finally {
      await jobs.close()
      await catalog.close()
    }
  })
})
