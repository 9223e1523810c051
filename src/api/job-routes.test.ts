import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { JobStore, SqliteCatalog } from '../catalog/index.js'
import { LogDiskStore } from '../diskstore/index.js'
import { JobService } from '../protection/index.js'
import { silentLogger } from '../util/index.js'
import { asAdmin, type InProcessApp, testAuth } from './_test-identity.js'
import { createApiApp } from './api-app.js'
import { MAX_EVENT_BACKLOG } from './job-routes.js'

async function withApp(fn: (app: InProcessApp, jobs: JobService) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-api-jobs-'))
  const store = await LogDiskStore.open(join(dir, 'disks'), { compactIntervalMs: 0 })
  const catalog = new SqliteCatalog(':memory:')
  await catalog.migrate()
  const jobs = new JobService({ store: new JobStore(catalog) })
  const identity = await testAuth()
  try {
    const app = createApiApp({
      logger: silentLogger,
      accepting: () => true,
      auth: identity.auth,
      diskStore: store,
      jobs,
      info: () => ({ name: 'cairn', version: '0', dataDir: dir, startedAt: '', listeners: {} }),
    })
    await fn(asAdmin(app, identity.token), jobs)
  } finally {
    await identity.close()
    await jobs.close()
    await catalog.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Reads a body to its end (or until `ms` pass); answers the text and whether it ended. */
async function drain(res: Response, ms: number): Promise<{ text: string; ended: boolean }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + ms
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) {
      await reader.cancel()
      return { text, ended: false }
    }
    let timer: NodeJS.Timeout | undefined
    const next = await Promise.race([
      reader.read(),
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), left)
      }),
    ])
    // A timer left running would keep the file's process alive until it fires.
    clearTimeout(timer)
    if (next === 'timeout') continue
    if (next.done) return { text, ended: true }
    text += decoder.decode(next.value, { stream: true })
  }
}

describe('job API', () => {
  it('drops an event-stream client that stops reading, and keeps one that reads', async () => {
    await withApp(async (app, jobs) => {
      const slow = await app.request('/api/v1/events')
      const fast = await app.request('/api/v1/events')
      assert.equal(slow.status, 200)
      const fastRead = drain(fast, 4000)
      // Each job sends created, running and finished: well past the backlog a client may have.
      const count = Math.ceil(MAX_EVENT_BACKLOG / 2)
      for (let i = 0; i < count; i++) {
        const { done } = await jobs.start({ kind: 'gc', resource: `vaults/v${i}` }, async () => ({ i }))
        await done
      }
      assert.equal(jobs.subscribers, 1, 'the slow client is dropped, the fast one stays')
      const slowRead = await drain(slow, 2000)
      assert.ok(slowRead.ended, 'the slow client sees its stream end')
      assert.ok(slowRead.text.split('event: ').length - 1 <= MAX_EVENT_BACKLOG + 32)
      const fastText = (await fastRead).text
      assert.equal(fastText.split('event: job.finished').length - 1, count, 'the fast client saw every end')
    })
  })

  it('lists jobs with filters and pages, and refuses a state it does not know', async () => {
    await withApp(async (app, jobs) => {
      for (let i = 0; i < 5; i++) {
        const { done } = await jobs.start(
          { kind: i < 3 ? 'verify' : 'gc', resource: 'vaults/a', vault: 'a' },
          async () => {
            if (i === 1) throw new Error('boom')
            return { i }
          },
        )
        await done
      }
      const page = (await (await app.request('/api/v1/jobs?limit=2')).json()) as {
        items: { id: string }[]
        nextCursor?: string
      }
      assert.equal(page.items.length, 2)
      assert.ok(page.nextCursor)
      const rest = (await (await app.request(`/api/v1/jobs?limit=10&cursor=${page.nextCursor}`)).json()) as {
        items: { id: string }[]
        nextCursor?: string
      }
      assert.equal(rest.items.length, 3)
      assert.equal(rest.nextCursor, undefined)
      const failed = (await (await app.request('/api/v1/jobs?state=Failed&kind=verify')).json()) as {
        items: { error: { code: string } }[]
      }
      assert.deepEqual(
        failed.items.map((j) => j.error.code),
        ['Internal'],
      )
      const bad = await app.request('/api/v1/jobs?state=Weird')
      assert.equal(bad.status, 400)
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'InvalidRequest')
      const missing = await app.request('/api/v1/jobs/nope')
      assert.equal(missing.status, 404)
      const doc = (await (await app.request('/api/v1/openapi.json')).json()) as {
        paths: Record<string, unknown>
      }
      for (const p of ['/api/v1/jobs', '/api/v1/jobs/{job}', '/api/v1/jobs/{job}/cancel', '/api/v1/events'])
        assert.ok(doc.paths[p], p)
      assert.equal(doc.paths['/api/v1/backupJobs'], undefined, 'one job API')
    })
  })
})
