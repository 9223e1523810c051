// The kill -9 campaign of issue 24 against a real `cairn serve`: random operations (disk writes, full
// and incremental backups, prune, GC, restores through all three restore routes), each cut by SIGKILL
// at a random moment, then a restart and the checks. Used by test/vault-crash-campaign.test.ts.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { authHeaders, CAIRN_BIN, type RunningService, startService, tokenOf } from './_service.js'

const MiB = 1024 * 1024
/** The disk store's segment size in the campaign. */
const SEGMENT = 16 * MiB
const ACCOUNT = 'devstoreaccount1'
const CONTAINER = 'disks'
const DISKS_URL = `/api/v1/accounts/${ACCOUNT}/containers/${CONTAINER}/disks`

/** The operations the campaign cuts. */
export const OPERATIONS = [
  'disk write',
  'full backup',
  'incremental backup',
  'prune',
  'gc',
  'restore disk',
  'restore file',
  'restore vm',
] as const
export type Operation = (typeof OPERATIONS)[number]

/** What the campaign did: kills per operation (and how many hit it while it ran), checks passed. */
export interface CampaignReport {
  kills: number
  perOperation: Record<Operation, { kills: number; whileRunning: number }>
  restarts: number
  pointsRestored: number
  verifies: number
  maxPoints: number
  /** Largest segmentBytes / liveBytes seen after a restart's checks (and the bytes). */
  worstSegments: { segmentBytes: number; liveBytes: number }
  seconds: number
}

interface Job {
  id: string
  state: string
  error?: { code: string; message: string } | null
  result?: unknown
}

/** The expected content of the two disks the campaign backs up. */
interface Image {
  os: Buffer
  data: Buffer
}

class Api {
  constructor(readonly url: string) {}

  /** One request on its own connection (a kept-alive socket of a killed service would fail the next). */
  call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const payload =
      body === undefined ? undefined : body instanceof Uint8Array ? body : Buffer.from(JSON.stringify(body))
    const headers: Record<string, string | number> = { ...authHeaders(this.url) }
    if (payload) {
      headers['content-type'] = body instanceof Uint8Array ? 'application/octet-stream' : 'application/json'
      headers['content-length'] = payload.length
    }
    return new Promise((resolve, reject) => {
      const req = request(`${this.url}${path}`, { method, headers, agent: false }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('error', reject)
        res.on('end', () => {
          const raw = Buffer.concat(parts)
          const json = (res.headers['content-type'] ?? '').includes('json')
          resolve({
            status: res.statusCode ?? 0,
            body: (json ? JSON.parse(raw.toString('utf8')) : raw) as T,
          })
        })
      })
      req.on('error', reject)
      req.end(payload)
    })
  }

  async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body)
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }

  /** Waits for a job to end; its final state. */
  async job(id: string): Promise<Job> {
    for (;;) {
      const j = await this.ok<Job>('GET', `/api/v1/jobs/${id}`)
      if (!['Queued', 'Running'].includes(j.state)) return j
      await sleep(25)
    }
  }

  async read(disk: string, size: number): Promise<Buffer> {
    const out = Buffer.alloc(size)
    for (let o = 0; o < size; o += 4 * MiB) {
      const n = Math.min(4 * MiB, size - o)
      const b = await this.ok<Buffer>('GET', `${DISKS_URL}/${disk}/pages?offset=${o}&length=${n}`)
      b.copy(out, o)
    }
    return out
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function cli(url: string, args: string[]): void {
  const token = tokenOf(url)
  const r = spawnSync(process.execPath, [CAIRN_BIN, ...args, '--url', url], {
    encoding: 'utf8',
    env: { ...process.env, ...(token !== undefined ? { CAIRN_TOKEN: token } : {}) },
  })
  assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
}

/** The services a campaign started: a failed check must not leave one running (it would hold the test). */
const liveServices = new Set<RunningService>()
const track = (s: RunningService): RunningService => {
  liveServices.add(s)
  return s
}

/**
 * Runs the campaign in `dir` until `kills` SIGKILLs were sent; throws on the first failed check.
 * `log` receives one line per round.
 */
async function campaign(
  dir: string,
  kills: number,
  log: (line: string) => void = () => {},
): Promise<CampaignReport> {
  const started = Date.now()
  const data = join(dir, 'data')
  const outDir = join(dir, 'out')
  mkdirSync(outDir, { recursive: true })
  // Small segments, so that compaction across restarts is what keeps the store small: garbage is
  // reclaimed a sealed segment at a time, and at the default 256 MiB this campaign never seals one.
  const args = [
    '--vault-open-packs',
    '2',
    '--export-root',
    outDir,
    '--disk-segment-size',
    `${SEGMENT / MiB}MiB`,
  ]
  const sizes = { os: 8 * MiB, data: 4 * MiB }
  const report: CampaignReport = {
    kills: 0,
    perOperation: Object.fromEntries(OPERATIONS.map((o) => [o, { kills: 0, whileRunning: 0 }])) as Record<
      Operation,
      { kills: number; whileRunning: number }
    >,
    restarts: 0,
    pointsRestored: 0,
    verifies: 0,
    maxPoints: 0,
    worstSegments: { segmentBytes: 0, liveBytes: 1 },
    seconds: 0,
  }
  let service: RunningService = track(await startService(args, { data }))
  let api = new Api(service.url)
  const image: Image = { os: Buffer.alloc(sizes.os), data: Buffer.alloc(sizes.data) }
  /** Vault point id → the disks' content when its backup started. */
  const expected = new Map<string, Image>()
  const copy = (i: Image): Image => ({ os: Buffer.from(i.os), data: Buffer.from(i.data) })

  // Set-up: two disks with data, a vault, a VM protected into it with one VM backup (restore vm uses it).
  for (const [name, size] of Object.entries(sizes)) {
    await api.ok('PUT', `${DISKS_URL}/${name}`, { size })
  }
  const write = async (disk: 'os' | 'data', offset: number, bytes: Buffer) => {
    await api.ok('PUT', `${DISKS_URL}/${disk}/pages?offset=${offset}`, new Uint8Array(bytes))
  }
  for (const disk of ['os', 'data'] as const) {
    const b = randomBytes(sizes[disk] / 2)
    await write(disk, 0, b)
    b.copy(image[disk], 0)
  }
  await api.ok('POST', '/api/v1/vaults', { name: 'main' })
  cli(service.url, [
    'vm',
    'create',
    'web',
    '--os-disk',
    `${ACCOUNT}/${CONTAINER}/os`,
    '--data-disk',
    `0=${ACCOUNT}/${CONTAINER}/data`,
  ])
  cli(service.url, ['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
  cli(service.url, ['protect', 'web', '--vault', 'main', '--policy', 'daily'])
  cli(service.url, ['backup', 'now', 'web', '--wait'])
  const vmPoint = await latestVmPoint(api)
  const first = await api.ok<Job>('POST', '/api/v1/vaults/main/backups', {
    disks: [
      { account: ACCOUNT, container: CONTAINER, disk: 'os', lun: 0 },
      { account: ACCOUNT, container: CONTAINER, disk: 'data', lun: 1 },
    ],
    item: 'web-disks',
  })
  assert.equal((await api.job(first.id)).state, 'Completed')
  for (const p of await listPoints(api)) expected.set(p.id, copy(image))

  let round = 0
  let restoreSeq = 0
  while (report.kills < kills) {
    round++
    const op = OPERATIONS[Math.floor(Math.random() * OPERATIONS.length)]!
    const points = await listPoints(api)
    const diskPoints = points.filter((p) => p.source.name === 'web-disks')
    const before = copy(image)
    let pendingWrites: { disk: 'os' | 'data'; offset: number; bytes: Buffer }[] = []
    let finished = false
    let jobId: string | undefined
    const restoreTarget = `r${++restoreSeq}`
    // Start the operation; `finished` tells whether it ended before the kill.
    const running = (async () => {
      switch (op) {
        case 'disk write': {
          for (let i = 0; i < 40; i++) {
            const disk = Math.random() < 0.6 ? 'os' : 'data'
            const len = 4096 * (1 + Math.floor(Math.random() * 32))
            const offset = 4096 * Math.floor(Math.random() * ((sizes[disk] - len) / 4096))
            const bytes = Math.random() < 0.1 ? Buffer.alloc(len) : randomBytes(len)
            pendingWrites.push({ disk, offset, bytes })
            await write(disk, offset, bytes)
            bytes.copy(image[disk], offset)
            pendingWrites = pendingWrites.filter((w) => w.bytes !== bytes)
          }
          break
        }
        case 'full backup':
        case 'incremental backup': {
          const job = await api.ok<Job>('POST', '/api/v1/vaults/main/backups', {
            disks: [
              { account: ACCOUNT, container: CONTAINER, disk: 'os', lun: 0 },
              { account: ACCOUNT, container: CONTAINER, disk: 'data', lun: 1 },
            ],
            item: 'web-disks',
            ...(op === 'full backup' ? { base: 'none' } : {}),
          })
          jobId = job.id
          const done = await api.job(job.id)
          assert.equal(done.state, 'Completed', JSON.stringify(done.error))
          break
        }
        case 'prune':
          await api.ok('POST', '/api/v1/vaults/main/prune', { keepLast: 3, item: 'web-disks' })
          break
        case 'gc': {
          const job = await api.ok<Job>('POST', '/api/v1/vaults/main/gc')
          jobId = job.id
          assert.equal((await api.job(job.id)).state, 'Completed')
          break
        }
        case 'restore disk':
        case 'restore file': {
          const p = diskPoints.at(Math.floor(Math.random() * diskPoints.length))
          if (!p) break
          const body =
            op === 'restore disk'
              ? { disk: 'os', target: { account: ACCOUNT, container: CONTAINER, disk: restoreTarget } }
              : { disk: 'os', path: join(outDir, `${restoreTarget}.raw`) }
          const job = await api.ok<Job>('POST', `/api/v1/vaults/main/recoveryPoints/${p.id}/restore`, body)
          jobId = job.id
          assert.equal((await api.job(job.id)).state, 'Completed')
          break
        }
        case 'restore vm': {
          const job = await api.ok<Job>(
            'POST',
            `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${vmPoint}/restore`,
            { recoveryType: 'RestoreDisks', diskPrefix: restoreTarget },
          )
          jobId = job.id
          const done = await api.job(job.id)
          assert.ok(done.state === 'Completed', JSON.stringify(done))
          break
        }
      }
      finished = true
    })()
    running.catch(() => {})
    // Up to about how long each operation takes here, so most kills land while it runs.
    const delay =
      { 'disk write': 300, prune: 20, gc: 250, 'restore disk': 200, 'restore file': 80, 'restore vm': 150 }[
        op as string
      ] ?? 800
    await Promise.race([sleep(Math.random() * delay), running.then(() => sleep(Math.random() * 30))])
    if (!finished && jobId === undefined && op !== 'disk write' && op !== 'prune') {
      // The job was not even started yet: give it a moment so the kill cuts it, not its request.
      await sleep(20)
    }
    const wasRunning = !finished
    await service.stop('SIGKILL')
    await running.catch(() => {})
    report.kills++
    report.perOperation[op].kills++
    if (wasRunning) report.perOperation[op].whileRunning++

    service = track(await startService(args, { data }))
    api = new Api(service.url)
    report.restarts++

    // Writes: each acknowledged write is there; one in flight is there whole or not at all per page.
    if (op === 'disk write') {
      for (const disk of ['os', 'data'] as const) {
        const actual = await api.read(disk, sizes[disk])
        for (let o = 0; o < sizes[disk]; o += 512) {
          const a = actual.subarray(o, o + 512)
          if (a.equals(image[disk].subarray(o, o + 512))) continue
          const inFlight = pendingWrites.some(
            (w) =>
              w.disk === disk &&
              w.offset <= o &&
              o < w.offset + w.bytes.length &&
              a.equals(w.bytes.subarray(o - w.offset, o - w.offset + 512)),
          )
          assert.ok(inFlight, `disk ${disk} at ${o}: neither the acknowledged nor an in-flight write's bytes`)
        }
        actual.copy(image[disk])
      }
    }
    // A backup cut short resumes at the restart (docs/jobs.md, "Restart"): wait for it to end, so that
    // its point is counted in this round, holding the disks as they were at the backup's start.
    for (;;) {
      const running = await api.ok<{ items: Job[] }>('GET', '/api/v1/jobs?kind=backup&state=Running,Queued')
      if (running.items.length === 0) break
      for (const j of running.items) await api.job(j.id)
    }
    // New points (a backup that committed just before the kill, or resumed after it) hold the disks as
    // they were at its start.
    const after = await listPoints(api)
    for (const p of after) {
      if (!expected.has(p.id)) {
        assert.ok(op.endsWith('backup'), `point ${p.id} appeared after a kill during ${op}`)
        expected.set(p.id, copy(before))
      }
    }
    report.maxPoints = Math.max(report.maxPoints, after.length)
    // Every listed point restores byte-exact (restore file, the path that failed in issue 24), and
    // one of them also through restore disk.
    for (const p of after) {
      const exp = expected.get(p.id)!
      for (const d of p.disks) {
        const path = join(outDir, `check-${p.id}-${d.name}.raw`)
        const job = await api.ok<Job>('POST', `/api/v1/vaults/main/recoveryPoints/${p.id}/restore`, {
          disk: d.name,
          path,
        })
        const done = await api.job(job.id)
        assert.equal(
          done.state,
          'Completed',
          `restore file of ${p.id}/${d.name}: ${JSON.stringify(done.error)}`,
        )
        const want = d.size === sizes.os ? exp.os : exp.data
        assert.ok(readFileSync(path).equals(want), `point ${p.id} disk ${d.name} restores wrong bytes`)
        rmSync(path)
        report.pointsRestored++
      }
    }
    const pick = after.filter((p) => p.source.name === 'web-disks').at(-1)
    if (pick && round % 4 === 0) {
      const target = `check-${round}`
      const job = await api.ok<Job>('POST', `/api/v1/vaults/main/recoveryPoints/${pick.id}/restore`, {
        disk: 'os',
        target: { account: ACCOUNT, container: CONTAINER, disk: target },
      })
      assert.equal((await api.job(job.id)).state, 'Completed')
      assert.ok((await api.read(target, sizes.os)).equals(expected.get(pick.id)!.os), 'restore disk differs')
      await api.ok('DELETE', `${DISKS_URL}/${target}`)
    }
    if (round % 8 === 0) {
      const job = await api.ok<Job>(
        'POST',
        `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${vmPoint}/restore`,
        { recoveryType: 'RestoreDisks', diskPrefix: `vmcheck-${round}` },
      )
      const done = await api.job(job.id)
      assert.ok(done.state === 'Completed', `restore vm: ${JSON.stringify(done)}`)
      const vmExp = expected.get(vmVaultPoint(after))
      for (const name of await diskNames(api, `vmcheck-${round}`)) {
        const size = name.endsWith('os') ? sizes.os : sizes.data
        if (vmExp) {
          const want = size === sizes.os ? vmExp.os : vmExp.data
          assert.ok((await api.read(name, size)).equals(want), `restore vm disk ${name} differs`)
        }
        await api.ok('DELETE', `${DISKS_URL}/${name}`)
      }
    }
    // Verify agrees (reading every chunk through the restore code), the next prune and GC succeed.
    const verify = await api.job(
      (await api.ok<Job>('POST', '/api/v1/vaults/main/verify', { readData: true })).id,
    )
    assert.equal(verify.state, 'Completed', JSON.stringify(verify.error))
    const vr = (verify as Job & { result: { problems: unknown[]; unrestorable: string[] } }).result
    assert.deepEqual(vr.problems, [], `verify after a kill during ${op}`)
    report.verifies++
    await api.ok('POST', '/api/v1/vaults/main/prune', { keepLast: 3, item: 'web-disks' })
    const kept = new Set((await listPoints(api)).map((p) => p.id))
    for (const id of [...expected.keys()]) if (!kept.has(id)) expected.delete(id)
    const gc = await api.job((await api.ok<Job>('POST', '/api/v1/vaults/main/gc')).id)
    assert.equal(gc.state, 'Completed', JSON.stringify(gc.error))
    // Leftovers of cut restores go; the store's segments stay within a bound of its live bytes.
    for (const name of await diskNames(api, 'r')) await api.call('DELETE', `${DISKS_URL}/${name}`)
    if (existsSync(outDir)) for (const f of readdirSync(outDir)) rmSync(join(outDir, f), { force: true })
    const usage = await api.ok<{ segmentBytes: number; liveBytes: number }>('GET', '/api/v1/diskstore/usage')
    if (
      usage.segmentBytes / Math.max(1, usage.liveBytes) >
      report.worstSegments.segmentBytes / report.worstSegments.liveBytes
    )
      report.worstSegments = usage
    assert.ok(
      usage.segmentBytes <= 3 * usage.liveBytes + 4 * SEGMENT,
      `disk store segments ${usage.segmentBytes} for ${usage.liveBytes} live bytes`,
    )
    log(
      `round ${round}: kill during ${op}${wasRunning ? '' : ' (after it ended)'}, ${after.length} points restored, segments ${Math.round(usage.segmentBytes / MiB)} MiB / live ${Math.round(usage.liveBytes / MiB)} MiB`,
    )
  }
  await service.stop()
  report.seconds = Math.round((Date.now() - started) / 1000)
  return report
}

interface PointView {
  id: string
  source: { name: string }
  disks: { name: string; size: number }[]
}

async function listPoints(api: Api): Promise<PointView[]> {
  return (await api.ok<{ items: PointView[] }>('GET', '/api/v1/vaults/main/recoveryPoints')).items
}

/** The vault point of the VM's backup (item "web"). */
function vmVaultPoint(points: PointView[]): string {
  return points.find((p) => p.source.name === 'web')?.id ?? ''
}

async function latestVmPoint(api: Api): Promise<string> {
  const items = listOf<{ id: string }>(
    await api.ok('GET', '/api/v1/vaults/main/protectedItems/web/recoveryPoints'),
  )
  const last = items.at(-1)
  assert.ok(last, 'the VM has no recovery point')
  return last.id
}

async function diskNames(api: Api, prefix: string): Promise<string[]> {
  const items = listOf<{ ref: { disk: string } }>(await api.ok('GET', DISKS_URL))
  return items.map((d) => d.ref.disk).filter((n) => n.startsWith(prefix) && n !== 'os')
}

/** The array of a list answer, whatever its envelope (`items`, `value`, `disks`, or none). */
function listOf<T>(r: unknown): T[] {
  if (Array.isArray(r)) return r as T[]
  const o = r as Record<string, unknown>
  for (const k of ['items', 'value', 'disks']) if (Array.isArray(o[k])) return o[k] as T[]
  throw new Error(`not a list: ${JSON.stringify(r).slice(0, 200)}`)
}

/**
 * Runs the campaign in `dir` until `kills` SIGKILLs were sent; throws on the first failed check, after
 * killing the service it was checking.
 */
export async function runCampaign(
  dir: string,
  kills: number,
  log: (line: string) => void = () => {},
): Promise<CampaignReport> {
  try {
    return await campaign(dir, kills, log)
  } finally {
    for (const s of liveServices) await s.stop('SIGKILL')
    liveServices.clear()
  }
}
