import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CATALOG_DIALECTS } from '../src/catalog/index.js'
import { api, cli, D, ended, type Json, randomDisk, waitJob } from './_jobs.js'
import { apiFetch, type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024

/** Total bytes of the files under a folder. */
function folderBytes(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size
  }
  return n
}

/** The lock files of a folder vault (backups in flight). */
const locks = (vault: string) => (existsSync(join(vault, 'locks')) ? readdirSync(join(vault, 'locks')) : [])

/** Reads server-sent events from a response until `until` holds for one; answers every event read. */
async function readEvents(
  res: Response,
  until: (e: { event: string; job: Json }) => boolean,
): Promise<{ event: string; job: Json }[]> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  const events: { event: string; job: Json }[] = []
  let buf = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return events
    buf += decoder.decode(value, { stream: true })
    let end = buf.indexOf('\n\n')
    while (end !== -1) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      end = buf.indexOf('\n\n')
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (!event || !data) continue
      const e = { event, job: JSON.parse(data) }
      events.push(e)
      if (until(e)) {
        await reader.cancel()
        return events
      }
    }
  }
}

// One service per catalog for the whole suite: each case uses its own names (VM big, vault v1, disk
// from-file) and counts only its own jobs.
for (const dialect of CATALOG_DIALECTS)
  describe(`one job system (against a real cairn serve, catalog: ${dialect.name})`, () => {
    let service: RunningService
    let files: string
    before(async () => {
      files = mkdtempSync(join(tmpdir(), 'cairn-jobs-files-'))
      service = await startService(['--import-root', files, '--export-root', files], { catalog: dialect })
    })
    after(async () => {
      await service?.dispose()
      rmSync(files, { recursive: true, force: true })
    })

    it('cancels a running VM backup for real, streams job events, and the CLI watches, detaches and cancels on Ctrl-C', async () => {
      const { url } = service
      const points = async () =>
        (await api(url, 'GET', '/api/v1/vaults/v1/protectedItems/big/recoveryPoints')).body.items as Json[]
      const snapshots = async (disk: string) => (await api(url, 'GET', `${D}/${disk}/snapshots`)).body.items
      await randomDisk(url, 'big-data', 256)
      assert.equal((await api(url, 'PUT', `${D}/big-os`, { size: '1MiB' })).status, 201)
      assert.equal((await api(url, 'POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
      await api(url, 'POST', '/api/v1/vms', {
        name: 'big',
        osDisk: 'devstoreaccount1/disks/big-os',
        dataDisks: [{ lun: 0, disk: 'devstoreaccount1/disks/big-data' }],
      })
      await api(url, 'POST', '/api/v1/vaults/v1/backupPolicies', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '22:00' },
        retention: { daily: { days: 7 } },
      })
      const protect = await api(url, 'POST', '/api/v1/vaults/v1/protectedItems', {
        vm: 'big',
        policy: 'daily',
      })
      assert.equal(protect.status, 201, JSON.stringify(protect.body))
      const vaultDir = join(service.data, 'vaults', 'v1')

      // 1. Cancel a backup while it transfers: the work stops, no point, no snapshot, no lock remains.
      const started = await api(url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      assert.equal(started.status, 202, JSON.stringify(started.body))
      assert.equal(started.body.kind, 'backup')
      assert.equal(started.body.startedBy, 'admin', 'a job records the signed-in user who started it')
      await waitJob(
        url,
        started.body.id,
        (j) => j.progress.phase === 'TransferToVault' && j.progress.bytesDone > 0,
        'the vault transfer',
      )
      assert.equal(locks(vaultDir).length, 1, 'the running backup holds its vault lock')
      const cancelled = await api(url, 'POST', `/api/v1/jobs/${started.body.id}/cancel`)
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body))
      assert.equal(cancelled.body.state, 'Cancelled')
      assert.ok(cancelled.body.progress.bytesDone < 256 * MiB, 'cancelled before the end')
      const bytes = folderBytes(vaultDir)
      await new Promise((r) => setTimeout(r, 1000))
      assert.equal(folderBytes(vaultDir), bytes, 'nothing writes to the vault after the cancel answered')
      assert.deepEqual(locks(vaultDir), [], 'the backup released its vault lock')
      assert.deepEqual(await points(), [])
      assert.deepEqual(await snapshots('big-data'), [])
      assert.deepEqual(await snapshots('big-os'), [])
      assert.deepEqual((await api(url, 'GET', '/api/v1/vaults/v1/recoveryPoints')).body.items, [])
      const again = await api(url, 'POST', `/api/v1/jobs/${started.body.id}/cancel`)
      assert.equal(again.status, 409)
      assert.equal(again.body.error.code, 'JobNotRunning')

      // 2. The event stream: a client sees the next backup created, progressing and completing.
      const stream = await apiFetch(`${url}/api/v1/events`)
      assert.equal(stream.status, 200)
      assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/)
      const next = await api(url, 'POST', '/api/v1/vaults/v1/protectedItems/big/backup', {})
      const events = await readEvents(stream, (e) => e.event === 'job.finished' && e.job.id === next.body.id)
      const mine = events.filter((e) => e.job.id === next.body.id)
      assert.equal(mine[0]?.event, 'job.created')
      assert.ok(
        mine.some((e) => e.event === 'job.progress' && e.job.progress.bytesDone > 0),
        'progress with bytes',
      )
      assert.equal(mine.at(-1)?.job.state, 'Completed', JSON.stringify(mine.at(-1)))
      assert.equal((await points()).length, 1)

      // 3. The CLI: job watch follows a verify to its end; job list filters; job show; job cancel of an ended job.
      const verify = await api(url, 'POST', '/api/v1/vaults/v1/verify', {})
      const watch = cli(url, 'job', 'watch', verify.body.id)
      assert.equal(await watch.exit, 0, watch.stderr())
      assert.match(watch.stdout(), /state:\s+Completed/)
      assert.match(watch.stdout(), /kind:\s+verify/)
      const list = cli(url, 'job', 'list', '--kind', 'backup', '--state', 'Cancelled', '--json')
      assert.equal(await list.exit, 0, list.stderr())
      assert.deepEqual(
        JSON.parse(list.stdout()).items.map((j: Json) => j.id),
        [started.body.id],
      )
      const show = cli(url, 'job', 'show', next.body.id)
      assert.equal(await show.exit, 0)
      assert.match(show.stdout(), /vm:\s+big/)
      const late = cli(url, 'job', 'cancel', verify.body.id)
      assert.equal(await late.exit, 4, 'cancelling an ended job is a conflict')
      assert.match(late.stderr(), /JobNotRunning/)
      const missing = cli(url, 'job', 'show', 'nope')
      assert.equal(await missing.exit, 3)
      // A prune answers its report at once and is a job in the history too.
      const prune = await apiFetch(`${url}/api/v1/vaults/v1/prune`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ keepLast: 10, dryRun: true }),
      })
      assert.equal(prune.status, 200)
      assert.equal(((await prune.json()) as Json).dryRun, true)
      const pruneJob = (await api(url, 'GET', `/api/v1/jobs/${prune.headers.get('x-cairn-job')}`)).body
      assert.equal(pruneJob.kind, 'prune')
      assert.equal(pruneJob.state, 'Completed')
      assert.equal(pruneJob.result.dryRun, true)

      // Steps 4 and 5 are the CLI's (its Ctrl-C handling), the same on either catalog: run once, on SQLite.
      if (dialect.name !== 'sqlite') return
      // 4. Ctrl-C on `backup now --wait` detaches: exit 9, the job id printed, the backup goes on.
      await randomDisk(url, 'big-data', 256)
      const detach = cli(url, 'backup', 'now', 'big', '--wait')
      await detach.stderrMatches(/Ctrl-C detaches/)
      const id = /job ([0-9a-f-]{36})/.exec(detach.stderr())![1]!
      await waitJob(url, id, (j) => j.progress.bytesDone > 0, 'its first bytes')
      detach.child.kill('SIGINT')
      assert.equal(await detach.exit, 9, detach.stderr())
      assert.match(detach.stderr(), new RegExp(`cairn: Detached: Detached from job ${id}`))
      const goesOn = await ended(url, id)
      assert.equal(goesOn.state, 'Completed', JSON.stringify(goesOn))
      assert.equal((await points()).length, 2)

      // 5. With --cancel-on-interrupt, Ctrl-C cancels for real: exit 8, no point, no snapshot left.
      await randomDisk(url, 'big-data', 256)
      const snapsBefore = (await snapshots('big-data')).length
      const stop = cli(url, 'backup', 'now', 'big', '--wait', '--cancel-on-interrupt')
      await stop.stderrMatches(/Ctrl-C cancels it/)
      const stopId = /job ([0-9a-f-]{36})/.exec(stop.stderr())![1]!
      await waitJob(url, stopId, (j) => j.progress.bytesDone > 0, 'its first bytes')
      stop.child.kill('SIGINT')
      assert.equal(await stop.exit, 8, stop.stderr())
      assert.match(stop.stderr(), /^cairn: Cancelled: /m)
      assert.equal((await api(url, 'GET', `/api/v1/jobs/${stopId}`)).body.state, 'Cancelled')
      assert.equal((await points()).length, 2)
      assert.equal((await snapshots('big-data')).length, snapsBefore)
      assert.deepEqual(locks(vaultDir), [])
    })

    it('the event stream serves at most 32 clients at once and frees a slot when one leaves', async () => {
      const { url } = service
      const streams: AbortController[] = []
      try {
        for (let i = 0; i < 32; i++) {
          // (A stream the case before closed may take a moment to free its slot.)
          for (let t = 0; ; t++) {
            const ac = new AbortController()
            const res = await apiFetch(`${url}/api/v1/events`, { signal: ac.signal })
            if (res.status === 200) {
              streams.push(ac)
              break
            }
            await res.text()
            assert.ok(t < 100, `stream ${i}: ${res.status}`)
            await new Promise((r) => setTimeout(r, 20))
          }
        }
        const refused = await api(url, 'GET', '/api/v1/events')
        assert.equal(refused.status, 503)
        assert.equal(refused.body.error.code, 'TooManySubscribers')
        streams.pop()!.abort()
        let res: Response | undefined
        for (let i = 0; i < 100; i++) {
          res = await apiFetch(`${url}/api/v1/events`, { signal: AbortSignal.timeout(5000) })
          if (res.status === 200) break
          await res.text()
          await new Promise((r) => setTimeout(r, 20))
        }
        assert.equal(res?.status, 200)
        await res?.body?.cancel()
      } finally {
        for (const s of streams) s.abort()
      }
    })

    it('a server-side import and export run as jobs: kept in the history with their progress', async () => {
      const dir = files
      const { url } = service
      const image = join(dir, 'in.raw')
      writeFileSync(image, randomBytes(8 * MiB))
      const imported = await apiFetch(`${url}${D}/from-file/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: image }),
      })
      assert.equal(imported.status, 201, await imported.clone().text())
      const importJob = (await api(url, 'GET', `/api/v1/jobs/${imported.headers.get('x-cairn-job')}`)).body
      assert.equal(importJob.kind, 'import')
      assert.equal(importJob.state, 'Completed')
      assert.equal(importJob.progress.bytesDone, 8 * MiB)
      const exported = await apiFetch(`${url}${D}/from-file/export`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: join(dir, 'out.raw') }),
      })
      assert.equal(exported.status, 200, await exported.clone().text())
      const exportJob = (await api(url, 'GET', `/api/v1/jobs/${exported.headers.get('x-cairn-job')}`)).body
      assert.equal(exportJob.kind, 'export')
      assert.equal(exportJob.state, 'Completed')
      assert.deepEqual(readFileSync(join(dir, 'out.raw')), readFileSync(image))
      const kinds = (await api(url, 'GET', '/api/v1/jobs')).body.items
        .map((j: Json) => j.kind)
        .filter((k: string) => k === 'export' || k === 'import')
      assert.deepEqual(kinds, ['export', 'import'], 'newest first')
    })
  })
