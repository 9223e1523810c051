import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ManualClock } from '../src/protection/index.js'
import { startServiceIn } from './_in-process.js'
import { api, D, type Json } from './_jobs.js'
import { apiFetch, cairnAt } from './_service.js'

const KiB = 1024
const SIZE = 1024 * KiB
const DAY = 86_400_000
const DAYS = 10

describe('a backup policy that copies every point to another vault', () => {
  it('copies each new point after its backup, keeps the copies by their own retention (12 monthly, 7 daily) whatever the source keeps, and the copies restore byte-exact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-copy-policy-'))
    // Noon on 27 January: the daily 03:00 backups fall on 28 January … 6 February, 1 February among them.
    const clock = new ManualClock(Date.UTC(2026, 0, 27, 12))
    const service = await startServiceIn(dir, { exportRoots: [dir] }, { clock })
    try {
      const url = service.listeners.api!
      const run = (args: string[]) => cairnAt(url, args)
      const ok = async (args: string[]) => {
        const r = await run(args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return r.stdout ? JSON.parse(r.stdout) : undefined
      }
      const images: Record<string, Map<string, Buffer>> = { web: new Map(), db: new Map() }
      const image: Record<string, Buffer> = {}
      for (const vm of ['web', 'db']) {
        assert.equal((await api(url, 'PUT', `${D}/${vm}-os`, { size: SIZE })).status, 201)
        image[vm] = Buffer.alloc(SIZE)
      }
      const write = async (vm: string, offset: number, bytes: Buffer) => {
        const res = await apiFetch(`${url}${D}/${vm}-os/pages?offset=${offset}`, {
          method: 'PUT',
          body: new Uint8Array(bytes),
          headers: { 'content-type': 'application/octet-stream' },
        })
        assert.equal(res.status, 200, await res.text())
        bytes.copy(image[vm]!, offset)
      }
      for (const vm of ['web', 'db']) await write(vm, 0, randomBytes(SIZE / 2))
      await ok(['vault', 'create', 'main'])
      await ok(['vault', 'create', 'offsite'])

      // Refused: a copy into the policy's own vault, into a vault that does not exist, rules without --copy-to.
      const base = ['policy', 'create', 'p', '--vault', 'main', '--time', '03:00', '--keep-days', '7']
      assert.match((await run([...base, '--copy-to', 'main'])).stderr, /PolicyInvalid/)
      assert.match((await run([...base, '--copy-to', 'nowhere'])).stderr, /VaultNotFound/)
      assert.match((await run([...base, '--copy-keep-months', '12'])).stderr, /copy-to/)

      // web: 7 days at home, 12 monthly offsite. db: 30 days at home, 7 days offsite.
      const local7 = await ok([...base.slice(0, 2), 'local7', ...base.slice(3), '--copy-to', 'offsite'])
      assert.deepEqual(local7.copy, { vault: 'offsite' })
      await ok(['policy', 'delete', 'local7', '--vault', 'main'])
      const web = await ok([
        ...['policy', 'create', 'web-policy', '--vault', 'main', '--time', '03:00', '--keep-days', '7'],
        ...['--copy-to', 'offsite', '--copy-keep-months', '12'],
      ])
      assert.deepEqual(web.copy, {
        vault: 'offsite',
        retention: { monthly: { months: 12, on: { format: 'Daily', days: [1] } } },
      })
      await ok([
        ...['policy', 'create', 'db-policy', '--vault', 'main', '--time', '03:00', '--keep-days', '30'],
        ...['--copy-to', 'offsite', '--copy-keep-days', '7'],
      ])
      for (const vm of ['web', 'db']) {
        await ok(['vm', 'create', vm, '--os-disk', `devstoreaccount1/disks/${vm}-os`])
        await ok(['protect', vm, '--vault', 'main', '--policy', `${vm}-policy`])
      }

      const jobs = async (kind: string): Promise<Json[]> =>
        (await api(url, 'GET', `/api/v1/jobs?kind=${kind}&limit=1000`)).body.items
      for (let day = 1; day <= DAYS; day++) {
        for (const vm of ['web', 'db'])
          await write(vm, 4 * KiB * Math.floor(Math.random() * (SIZE / 4096)), randomBytes(4 * KiB))
        const snapshot = { web: Buffer.from(image.web!), db: Buffer.from(image.db!) }
        await clock.advanceTo(clock.now() + DAY)
        // Both backups and both copy jobs of the day have ended.
        for (let t = 0; ; t++) {
          const [backups, copies] = [await jobs('backup'), await jobs('copy')]
          const done = (js: Json[]) => js.length >= 2 * day && js.every((j) => j.endedAt)
          if (done(backups) && done(copies)) break
          assert.ok(t < 3000, `day ${day}: ${JSON.stringify({ backups, copies })}`)
          await new Promise((r) => setTimeout(r, 20))
        }
        for (const vm of ['web', 'db']) {
          const points = (await api(url, 'GET', `/api/v1/vaults/main/recoveryPoints?item=${vm}`)).body.items
          images[vm]!.set(points.at(-1).id, snapshot[vm as 'web' | 'db'])
        }
      }
      const copies = await jobs('copy')
      assert.equal(copies.length, 2 * DAYS)
      for (const j of copies) {
        assert.equal(j.state, 'Completed', JSON.stringify(j))
        assert.match(j.startedBy, /^policy:(web|db)-policy$/)
      }

      const ids = async (vault: string, vm: string): Promise<Json[]> =>
        (await api(url, 'GET', `/api/v1/vaults/${vault}/recoveryPoints?item=${vm}`)).body.items
      // At home: web keeps its last 7 days (plus the point the retention treats as latest), db all 10.
      const webHome = await ids('main', 'web')
      const dbHome = await ids('main', 'db')
      assert.ok(webHome.length >= 7 && webHome.length <= 8, `web at home: ${webHome.length}`)
      assert.equal(dbHome.length, DAYS)
      // Offsite: web only its 1 February point, kept 12 months; db its last 7 days.
      const webAway = await ids('offsite', 'web')
      assert.deepEqual(
        webAway.map((p) => p.id.slice(0, 8)),
        ['20260201'],
      )
      assert.ok(webAway[0].expiresAt.startsWith('2027-02-01'), webAway[0].expiresAt)
      assert.equal(webAway[0].retainUntil, webAway[0].expiresAt)
      const dbAway = await ids('offsite', 'db')
      assert.ok(dbAway.length >= 7 && dbAway.length <= 8, `db offsite: ${dbAway.map((p) => p.id)}`)
      assert.deepEqual(
        dbAway.map((p) => p.id),
        dbHome.slice(-dbAway.length).map((p) => p.id),
        'the newest db points are the ones kept offsite',
      )
      for (const p of dbAway)
        assert.ok(Date.parse(p.expiresAt) > clock.now(), `${p.id} expires ${p.expiresAt}`)
      // The copies keep the point's metadata and restore byte-exact.
      for (const [vm, p] of [
        ['web', webAway[0]],
        ['db', dbAway.at(-1)],
        ['db', dbAway[0]],
      ] as const) {
        const home = (await ids('main', vm)).find((h) => h.id === p.id)
        if (home)
          for (const k of ['consistency', 'createdAt', 'source'] as const) assert.deepEqual(p[k], home[k])
        const file = join(dir, `${p.id}.raw`)
        await ok(['restore', 'file', file, '--vault', 'offsite', '--rp', p.id])
        assert.ok(readFileSync(file).equals(images[vm]!.get(p.id)!), `the copy of ${vm} ${p.id} restores`)
        rmSync(file)
      }
    } finally {
      await service.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
