import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { CATALOG_DIALECTS, openCatalog } from '../src/catalog/index.js'
import { startFaultProxy } from '../src/vault/_fault-proxy.js'
import { S3RVER_KEY_ID, S3RVER_SECRET, sharedS3rver, storeName } from '../src/vault/_test-object-stores.js'
import { api, D, ended, type Json, request, waitJob } from './_jobs.js'
import { type RunningService, signIn, startService } from './_service.js'

// Issue 19's fleet: three `cairn serve` processes on one PostgreSQL catalog and one object-store vault,
// VMs spread over them, their scheduled backups routed to the worker that holds their disks, one worker
// killed -9 in the middle of its jobs.
// CAIRN_FLEET_VMS sets the number of VMs (3 in `npm test`; `npm run soak` runs the 50).
const VMS = Math.max(3, Number(process.env.CAIRN_FLEET_VMS ?? 3))
const MiB = 1024 * 1024
const DISK_MIB = 4
/** Lease of the workers' jobs: short, so that a dead worker's jobs are taken over within seconds. */
const LEASE_S = 3

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Writes `bytes` over a disk of the service at `url` (created at that size), 4 MiB per request. */
async function writeDisk(url: string, name: string, bytes: Buffer): Promise<void> {
  const made = await api(url, 'PUT', `${D}/${name}`, { size: `${bytes.length / MiB}MiB` })
  assert.ok(made.status === 201 || made.status === 409, JSON.stringify(made.body))
  for (let o = 0; o < bytes.length; o += 4 * MiB) {
    const res = await request(`${url}${D}/${name}/pages?offset=${o}`, {
      method: 'PUT',
      body: bytes.subarray(o, o + 4 * MiB),
      headers: { 'content-type': 'application/octet-stream' },
    })
    assert.equal(res.status, 200, await res.text())
  }
}

async function diskHash(url: string, name: string, size: number): Promise<string> {
  const h = createHash('sha256')
  for (let o = 0; o < size; o += 4 * MiB) {
    const res = await request(`${url}${D}/${name}/pages?offset=${o}&length=${4 * MiB}`)
    assert.equal(res.status, 200)
    h.update(Buffer.from(await res.arrayBuffer()))
  }
  return h.digest('hex')
}

const ok = (r: { status: number; body: Json }, status: number, what: string) => {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
  return r.body
}

/** Every recovery point of a vault, page after page. */
async function allPoints(url: string, vault: string): Promise<Json[]> {
  const out: Json[] = []
  let cursor: string | undefined
  do {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''
    const page = ok(await api(url, 'GET', `/api/v1/vaults/${vault}/recoveryPoints${query}`), 200, 'points')
    out.push(...page.items)
    cursor = page.nextCursor ?? undefined
  } while (cursor)
  return out
}

for (const dialect of CATALOG_DIALECTS.filter((d) => d.name === 'postgres'))
  describe(`three workers on one PostgreSQL catalog and one S3 vault (${VMS} VMs)`, () => {
    it('runs the scheduled backup of every VM once, on the worker that holds its disks; after a kill -9 the copy it ran is finished by another worker, its backup (asked of another worker) waits for it and resumes there; every point restores byte-exact', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-fleet-'))
      const s3rver = await sharedS3rver()
      // Every worker reaches the store through this proxy, which can slow each upload down on demand.
      const proxy = await startFaultProxy(new URL(s3rver.endpoint).origin)
      const bucket = storeName()
      const s3 = new S3Client({
        endpoint: s3rver.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
      })
      await s3.send(new CreateBucketCommand({ Bucket: bucket }))
      const location = (prefix: string) =>
        `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(proxy.endpoint)}&region=us-east-1&path-style=true`
      const catalogUrl = dialect.url(dir)
      // Three schedulers (every process runs one); scheduled runs start at their slot (no spread).
      const args = [
        ...['--catalog', catalogUrl, '--role', 'all', '--job-lease', String(LEASE_S)],
        ...['--schedule-spread', '0'],
      ]
      const datas = [0, 1, 2].map((i) => join(dir, `w${i}`))
      for (const data of datas) {
        mkdirSync(data, { recursive: true })
        writeFileSync(
          join(data, 'cairn.json'),
          JSON.stringify({
            objectStores: { s3: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET } },
          }),
        )
      }
      const workers: RunningService[] = []
      try {
        workers.push(await startService(args, { data: datas[0] }))
        // B and C find the schema and the admin A made (A's password signs in everywhere).
        for (const i of [1, 2]) {
          workers.push(await startService(args, { data: datas[i], signIn: false }))
          await signIn(workers[i]!.url, datas[0]!)
        }
        const [a, b, c] = workers as [RunningService, RunningService, RunningService]
        ok(
          await api(a.url, 'POST', '/api/v1/vaults', { name: 'v1', location: location('v1') }),
          201,
          'vault v1',
        )
        ok(
          await api(b.url, 'POST', '/api/v1/vaults', { name: 'v2', location: location('v2') }),
          201,
          'vault v2',
        )
        ok(
          await api(c.url, 'POST', '/api/v1/vaults/v1/backupPolicies', {
            name: 'daily',
            policyType: 'Standard',
            schedule: { frequency: 'Daily', time: '03:00' },
            retention: { daily: { days: 30 } },
          }),
          201,
          'policy',
        )

        // VM i's disk lives on worker i % 3: it is registered, protected and backed up through that worker.
        const vms = Array.from({ length: VMS }, (_, i) => ({
          name: `vm-${String(i).padStart(2, '0')}`,
          worker: workers[i % 3]!,
          bytes: randomBytes(DISK_MIB * MiB),
        }))
        for (const vm of vms) {
          await writeDisk(vm.worker.url, vm.name, vm.bytes)
          ok(
            await api(vm.worker.url, 'POST', '/api/v1/vms', {
              name: vm.name,
              vmSize: 'Standard_B2s',
              osType: 'Linux',
              configuration: { cpus: 2, memoryGiB: 4 },
              osDisk: `devstoreaccount1/disks/${vm.name}`,
            }),
            201,
            `register ${vm.name}`,
          )
          ok(
            await api(vm.worker.url, 'POST', '/api/v1/vaults/v1/protectedItems', {
              vm: vm.name,
              policy: 'daily',
            }),
            201,
            `protect ${vm.name}`,
          )
        }
        // The policy's next slot is moved to the coming minute: the scheduler leader fires each VM's run once
        // and queues it for the worker that holds the VM's disks, which claims and runs it.
        const slot = Math.ceil((Date.now() + 5000) / 60_000) * 60_000
        const hhmm = new Date(slot).toISOString().slice(11, 16)
        ok(
          await api(b.url, 'PUT', '/api/v1/vaults/v1/backupPolicies/daily', {
            policyType: 'Standard',
            schedule: { frequency: 'Daily', time: hhmm },
            retention: { daily: { days: 30 } },
          }),
          200,
          'policy at the coming minute',
        )
        const scheduled = async () =>
          ((await api(c.url, 'GET', '/api/v1/jobs?kind=backup&limit=1000')).body.items as Json[]).filter(
            (j) => j.startedBy === 'scheduler',
          )
        const deadline = slot + 120_000 + VMS * 5000
        let runs = await scheduled()
        while (runs.length < VMS || runs.some((j) => !j.endedAt)) {
          assert.ok(
            Date.now() < deadline,
            `scheduled runs by ${new Date(deadline).toISOString()}: ${JSON.stringify(runs)}`,
          )
          await new Promise((r) => setTimeout(r, 500))
          runs = await scheduled()
        }
        // Whatever the schedulers still do, no second run of the slot appears.
        await new Promise((r) => setTimeout(r, 2 * LEASE_S * 1000))
        runs = await scheduled()
        assert.equal(runs.length, VMS, 'each VM backed up once by the three schedulers')
        const firstPoints = new Map<string, string>()
        for (const vm of vms) {
          const mine = runs.filter((j) => j.vm === vm.name)
          assert.equal(mine.length, 1, `one scheduled run of ${vm.name}`)
          const run = mine[0]!
          assert.equal(run.state, 'Completed', JSON.stringify(run))
          assert.equal(run.details.kind, 'Scheduled')
          assert.ok(
            run.details.host.endsWith(`:${vm.worker.data}`),
            `run by the host of its disks: ${run.details.host} for ${vm.worker.data}`,
          )
          firstPoints.set(vm.name, run.details.vaultPoint)
        }
        const seen = await allPoints(c.url, 'v1')
        assert.equal(seen.length, VMS, 'one point per VM, seen by every worker')
        assert.equal(new Set(seen.map((p) => p.id)).size, VMS)

        // Worker A (w0) runs a copy of every point to v2 (a job any worker may finish) and a new backup of
        // its first VM (bound to its disks); uploads are slowed so that both are mid-way when A dies.
        proxy.rules.push({ fault: { kind: 'slow', ms: 400 }, match: (r) => r.method === 'PUT' })
        const mine = vms[0]!
        const firstHash = sha(mine.bytes)
        mine.bytes = randomBytes(DISK_MIB * MiB)
        await writeDisk(a.url, mine.name, mine.bytes)
        const copy = ok(
          await api(a.url, 'POST', '/api/v1/vaultCopies', { from: 'v1', to: 'v2' }),
          202,
          'copy',
        )
        await waitJob(a.url, copy.id, (j) => (j.details.copied?.points?.length ?? 0) >= 1, 'a copied point')
        // "Back up now" sent to C: the job is queued for A, which holds the disk.
        const backup = ok(
          await api(c.url, 'POST', `/api/v1/vaults/v1/protectedItems/${mine.name}/backup`),
          202,
          'second backup',
        )
        assert.equal(backup.state, 'Queued', 'C does not run it')
        assert.ok(backup.details.host.endsWith(`:${a.data}`), `queued for A: ${backup.details.host}`)
        await waitJob(a.url, backup.id, (j) => Boolean(j.details.point), 'its vault transfer')
        const copyNow = (await api(a.url, 'GET', `/api/v1/jobs/${copy.id}`)).body
        assert.equal(copyNow.state, 'Running', 'the copy is still running when A dies')
        await a.stop('SIGKILL')
        proxy.rules.length = 0

        // Past A's lease, B or C claims the copy: it resumes there and completes. The backup needs A's disks:
        // nobody else claims it, it stays A's, Running.
        // (The copy of every point: longer with the soak's 50 VMs.)
        const copied = await ended(b.url, copy.id, 120_000 + VMS * 5000)
        assert.equal(copied.state, 'Completed', JSON.stringify(copied))
        assert.equal(copied.details.resumed.length, 1, 'resumed once, from its committed points')
        const catalog = await openCatalog(catalogUrl)
        try {
          const r = await catalog.db
            .selectFrom('jobs')
            .select(['owner', 'lease_until', 'status', 'host'])
            .where('id', '=', backup.id)
            .executeTakeFirstOrThrow()
          assert.ok(Number(r.lease_until) < Date.now(), `A's lease ran out: ${JSON.stringify(r)}`)
          assert.equal(r.status, 'Running', 'nobody ended it')
          assert.equal(r.owner, backup.details.host, 'left to the host of its disks')
          assert.equal(r.host, backup.details.host)
        } finally {
          await catalog.close()
        }
        assert.equal((await api(c.url, 'GET', `/api/v1/jobs/${backup.id}`)).body.state, 'Running')
        const copies = await allPoints(b.url, 'v2')
        assert.deepEqual(
          copies.map((p) => p.id).sort(),
          [...firstPoints.values()].sort(),
          'every point copied once, none twice',
        )

        // A comes back: it takes its backup at once and finishes it from where it stopped.
        workers[0] = await startService(args, { data: datas[0] })
        const back = workers[0]
        const resumed = await ended(back.url, backup.id)
        assert.equal(resumed.state, 'Completed', JSON.stringify(resumed))
        assert.equal(resumed.details.resumed.length, 1)
        const points = await allPoints(c.url, 'v1')
        assert.equal(points.length, VMS + 1, 'no duplicate point')
        assert.equal(new Set(points.map((p) => p.id)).size, VMS + 1)

        // Every point of both vaults restores byte-exact (from the vault, on the worker of its VM).
        const expected = new Map(vms.map((vm) => [vm.name, sha(vm.bytes)]))
        const latest = resumed.details.vaultPoint as string
        const restoreOne = async ({ vault, p }: { vault: string; p: Json }) => {
          const vm = vms.find((v) => v.name === p.source.name)
          assert.ok(vm, `point ${p.id} of a known VM: ${JSON.stringify(p)}`)
          const url = vm.worker === a ? back.url : vm.worker.url
          const disk = `r-${vault}-${p.id}`.slice(0, 60)
          const r = ok(
            await api(url, 'POST', `/api/v1/vaults/${vault}/recoveryPoints/${p.id}/restore`, {
              disk: 'os',
              target: { account: 'devstoreaccount1', container: 'disks', disk },
            }),
            202,
            `restore ${p.id}`,
          )
          const restored = await ended(url, r.id)
          assert.equal(restored.state, 'Completed', JSON.stringify(restored))
          const want = vm === mine && p.id !== latest ? firstHash : expected.get(vm.name)
          assert.equal(
            await diskHash(url, disk, DISK_MIB * MiB),
            want,
            `${vault} point ${p.id} of ${vm.name}`,
          )
        }
        // Six at a time: the soak's hundred restores would otherwise all poll at once.
        const all = [...points.map((p) => ({ vault: 'v1', p })), ...copies.map((p) => ({ vault: 'v2', p }))]
        for (let i = 0; i < all.length; i += 6) await Promise.all(all.slice(i, i + 6).map(restoreOne))

        // A restore over a VM's own disks asked of a process that does not hold them is refused before
        // anything is snapshotted or written there (a disk of that name there would be another VM's).
        const other = workers.find((w) => w !== back)!
        const vmPoints = ok(
          await api(other.url, 'GET', `/api/v1/vaults/v1/protectedItems/${mine.name}/recoveryPoints`),
          200,
          'the points of a VM of host A',
        ) as { items: Json[] }
        const replace = await api(
          other.url,
          'POST',
          `/api/v1/vaults/v1/protectedItems/${mine.name}/recoveryPoints/${vmPoints.items[0]!.id}/restore`,
          { recoveryType: 'OriginalLocation' },
        )
        assert.equal(replace.status, 409, JSON.stringify(replace.body))
        assert.equal((replace.body as { error: { code: string } }).error.code, 'VmOnAnotherHost')
        assert.equal(await diskHash(back.url, mine.name, DISK_MIB * MiB), sha(mine.bytes))
      } finally {
        await Promise.all(workers.map((w) => w.dispose()))
        await proxy.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
