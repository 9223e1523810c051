import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ManualClock } from '../src/protection/index.js'
import { CairnService, resolveConfig } from '../src/server/index.js'
import { silentLogger } from '../src/util/index.js'
import { api, D, type Json } from './_jobs.js'
import { cairnAt, signIn } from './_service.js'

/** A service on a manual clock at `start` with `--schedule-spread` given as `spread` (a flag string). */
async function withService(
  start: number,
  spread: string | undefined,
  body: (url: string, clock: ManualClock) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-spread-'))
  const clock = new ManualClock(start)
  const flags: Record<string, string> = {
    data: join(dir, 'data'),
    port: '0',
    'blob-port': '0',
    'nbd-port': '0',
  }
  if (spread !== undefined) flags['schedule-spread'] = spread
  const service = new CairnService(
    { ...resolveConfig({ flags, env: {} }), logLevel: 'error' },
    { logger: silentLogger, clock },
  )
  await service.start()
  try {
    await signIn(service.listeners.api!, service.config.data)
    await body(service.listeners.api!, clock)
  } finally {
    await service.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Registers VM `web` on a 1 MiB disk, protected by a daily 13:00 policy. */
async function protectWeb(url: string): Promise<void> {
  const ok = async (...args: string[]) => {
    const r = await cairnAt(url, args)
    assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
    return r.stdout ? JSON.parse(r.stdout) : undefined
  }
  assert.equal((await api(url, 'PUT', `${D}/web-os`, { size: 1024 * 1024 })).status, 201)
  await ok('vault', 'create', 'v1')
  await ok('policy', 'create', 'daily', '--vault', 'v1', '--time', '13:00', '--keep-days', '7')
  await ok('vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os')
  await ok('protect', 'web', '--vault', 'v1', '--policy', 'daily')
}

async function scheduledBackups(url: string): Promise<Json[]> {
  const jobs = (await api(url, 'GET', '/api/v1/jobs?kind=backup&limit=100')).body.items as Json[]
  return jobs.filter((j) => j.startedBy === 'scheduler')
}

/** Waits (bounded) until a scheduled backup shows up in the job list. */
async function awaitScheduled(url: string): Promise<Json[]> {
  for (let t = 0; t < 500; t++) {
    const jobs = await scheduledBackups(url)
    if (jobs.length > 0) return jobs
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error('no scheduled backup started')
}

describe('--schedule-spread', () => {
  it('0 starts a scheduled backup at its slot, not at the slot plus an offset of its item', async () => {
    const noon = Date.UTC(2026, 0, 27, 12)
    const slot = Date.UTC(2026, 0, 27, 13)
    await withService(noon, '0', async (url, clock) => {
      await protectWeb(url)
      await clock.advanceTo(slot - 1000)
      await new Promise((r) => setTimeout(r, 200))
      assert.deepEqual(await scheduledBackups(url), [], 'nothing before the slot')
      await clock.advanceTo(slot)
      assert.equal((await awaitScheduled(url)).length, 1)
    })
    // (With the default 2 h spread the item would start at its own offset after 13:00, a whole number
    // of minutes in [0, 120): at 13:00 itself only for one item in 120.)
  })

  it('refuses a spread that is not a whole number of seconds', () => {
    assert.throws(
      () => resolveConfig({ flags: { data: tmpdir(), 'schedule-spread': '-1' }, env: {} }),
      /schedule-spread|ConfigInvalid/,
    )
    assert.equal(
      resolveConfig({ flags: { data: tmpdir() }, env: { CAIRN_SCHEDULE_SPREAD: '30' } }).scheduleSpread,
      30,
    )
  })
})
