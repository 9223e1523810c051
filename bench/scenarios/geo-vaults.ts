import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { api, D, ended, type Json, randomDisk } from '../../test/_jobs.js'
import { apiFetch, type RunningService, startService } from '../../test/_service.js'
import { resultRow } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
const REPLICATE = ['--replication-interval', '1']
const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'os' }]
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** CPU seconds per thread of a process, by thread name and id (the main thread as "main"). */
function threadSeconds(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>()
  if (pid === undefined) return out
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const name =
        tid === String(pid) ? 'main' : `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}:${tid}`
      const fields = (stat.split(') ')[1] ?? '').split(' ')
      out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100)
    } catch {}
  }
  return out
}

/** Per-thread CPU seconds per GiB between two samples, as "name s/GiB" pairs, largest first. */
function threadRates(a: Map<string, number>, b: Map<string, number>, gib: number): string {
  return [...b]
    .map(([k, v]) => [k, (v - (a.get(k) ?? 0)) / gib] as const)
    .filter(([, v]) => v > 0.05)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ')
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0
}

async function must(url: string, method: string, path: string, body?: unknown, status = 200): Promise<Json> {
  const r = await api(url, method, path, body)
  if (r.status !== status) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

async function writeRandom(url: string, offset: number, bytes: number): Promise<void> {
  for (let o = 0; o < bytes; o += 4 * MiB) {
    const n = Math.min(4 * MiB, bytes - o)
    const res = await apiFetch(`${url}${D}/os/pages?offset=${offset + o}`, {
      method: 'PUT',
      body: randomBytes(n),
      headers: { 'content-type': 'application/octet-stream' },
    })
    if (res.status !== 200) throw new Error(`write: ${res.status} ${await res.text()}`)
  }
}

/** One backup of the disk into the GRS vault: its id, when it committed, the bytes it added. */
async function backup(url: string): Promise<{ id: string; committedAt: number; bytesAdded: number }> {
  const job = await ended(
    url,
    (await must(url, 'POST', '/api/v1/vaults/geo/backups', { disks, item: 'vm1' }, 202)).id,
  )
  if (job.state !== 'Completed') throw new Error(`backup ${job.state}: ${JSON.stringify(job.error)}`)
  const rp = await must(url, 'GET', `/api/v1/vaults/geo/recoveryPoints/${job.result.id}`)
  return { id: rp.id, committedAt: Date.parse(rp.completedAt), bytesAdded: rp.bytesAdded }
}

async function pointIds(url: string): Promise<Set<string>> {
  const body = await must(url, 'GET', '/api/v1/vaults/geo/recoveryPoints?limit=1000')
  return new Set((body.items as Json[]).map((p) => p.id as string))
}

/**
 * Issue 17's vault targets, two services on loopback (docs/replication.md, "Vault redundancy"): the
 * replication lag of a GRS vault (a point's commit on the primary to its manifest visible on the
 * secondary, polled every 200 ms) under steady backups of CAIRN_GEO_VAULT_MIB MiB of new data each
 * (default 16, quick 8); wire bytes per replicated point against its new chunk bytes (≤ 1.1×); the
 * catch-up speed after an outage of the secondary (new chunk bytes of the points it missed / time from
 * its restart to holding them all). `--replication-interval 1`; CAIRN_GEO_BENCH_SECONDS sets the steady
 * phase (default 60, quick 20).
 */
export const geoVaults: BenchScenario = {
  name: 'geo-vaults',
  description: 'GRS vault replication on loopback: lag under steady backups, wire bytes per point, catch-up',
  async run(ctx) {
    const seconds = Number(process.env.CAIRN_GEO_BENCH_SECONDS ?? (ctx.quick ? 20 : 60))
    const perBackup = Number(process.env.CAIRN_GEO_VAULT_MIB ?? (ctx.quick ? 8 : 16)) * MiB
    const outageMiB = Number(process.env.CAIRN_GEO_OUTAGE_MIB ?? (ctx.quick ? 128 : 1024))
    const results: BenchResult[] = []
    const r = resultRow('geo-vaults')
    let east: RunningService | undefined
    let west: RunningService | undefined
    try {
      east = await startService(REPLICATE)
      west = await startService(REPLICATE)
      for (const [a, b, name] of [
        [east, west, 'west'],
        [west, east, 'east'],
      ] as const) {
        const token = (
          await must(b.url, 'POST', '/api/v1/auth/tokens', { role: 'Site Peer', name: 'bench' }, 201)
        ).token
        await must(a.url, 'POST', '/api/v1/pairs', { name, url: b.url, token }, 201)
      }
      await must(east.url, 'POST', '/api/v1/vaults', { name: 'geo', redundancy: 'GRS', pair: 'west' }, 201)
      await randomDisk(east.url, 'os', 64)
      const first = await backup(east.url)
      const seen = new Map<string, number>()
      const watch = async (stop: () => boolean) => {
        while (!stop()) {
          const ids = await pointIds(west!.url).catch(() => new Set<string>())
          for (const id of ids) if (!seen.has(id)) seen.set(id, Date.now())
          await sleep(200)
        }
      }
      let watching = true
      const watcher = watch(() => !watching)
      const wait = async (ids: string[], ms: number) => {
        const deadline = Date.now() + ms
        while (!ids.every((id) => seen.has(id)) && Date.now() < deadline) await sleep(100)
      }
      await wait([first.id], 60_000)

      // Steady backups: each writes perBackup MiB of new random data at a moving offset, then backs up.
      const cpu0 = process.cpuUsage()
      const points: { id: string; committedAt: number; bytesAdded: number }[] = []
      const start = Date.now()
      let at = 0
      let newBytes = 0
      while (Date.now() - start < seconds * 1000) {
        for (let o = 0; o < perBackup; o += 4 * MiB) {
          const n = Math.min(4 * MiB, perBackup - o)
          await writeRandom(east.url, at, n)
          at = (at + n) % (64 * MiB)
        }
        newBytes += perBackup
        points.push(await backup(east.url))
      }
      const elapsed = (Date.now() - start) / 1000
      await wait(
        points.map((p) => p.id),
        120_000,
      )
      const lags = points.filter((p) => seen.has(p.id)).map((p) => (seen.get(p.id)! - p.committedAt) / 1000)
      const p99 = percentile(lags, 99)
      ctx.log(
        `steady phase: ${points.length} backups in ${elapsed.toFixed(0)} s, ${(newBytes / MiB / elapsed).toFixed(1)} MiB/s of new data, ${lags.length} replicated`,
      )
      results.push(r('backups during the steady phase', points.length, 'points'))
      results.push(r('new data rate during the steady phase', newBytes / MiB / elapsed, 'MiB/s'))
      results.push(r('replication lag p50 (commit → visible on the secondary)', percentile(lags, 50), 's'))
      results.push(r('replication lag p99', p99, 's', '< 60 s', p99 < 60 && lags.length === points.length))
      results.push(r('replication lag max (the measured RPO)', Math.max(...lags), 's'))

      // One point alone: wire bytes of its sync against its new chunk bytes.
      await sleep(2500)
      await writeRandom(east.url, 0, 32 * MiB)
      const one = await backup(east.url)
      await wait([one.id], 60_000)
      await sleep(1500)
      const wire = (await must(west.url, 'GET', '/api/v1/vaults/geo')).replication.lastSyncWireBytes as number
      const ratio = wire / one.bytesAdded
      ctx.log(`one point: ${one.bytesAdded} new chunk bytes, ${wire} bytes on the wire`)
      results.push(r('wire bytes per new chunk byte (one 32 MiB point)', ratio, 'x', '<= 1.1', ratio <= 1.1))

      // Outage: the secondary stopped while the primary backs up outageMiB of new data; then catch-up.
      watching = false
      await watcher
      await west.stop()
      const missed: { id: string; bytesAdded: number }[] = []
      for (let done = 0; done < outageMiB * MiB; done += 32 * MiB) {
        for (let o = 0; o < 32 * MiB; o += 4 * MiB) {
          await writeRandom(east.url, at, 4 * MiB)
          at = (at + 4 * MiB) % (64 * MiB)
        }
        missed.push(await backup(east.url))
      }
      const missedBytes = missed.reduce((n, p) => n + p.bytesAdded, 0)
      west = await startService([...REPLICATE, '--port', new URL(west.url).port], { data: west.data })
      const t = performance.now()
      const cpuAt = [cpuSeconds(east.child.pid), cpuSeconds(west.child.pid)] as const
      const threadsAt = [threadSeconds(east.child.pid), threadSeconds(west.child.pid)] as const
      for (;;) {
        const ids = await pointIds(west.url)
        if (missed.every((p) => ids.has(p.id))) break
        if (performance.now() - t > 600_000) throw new Error('the secondary did not catch up in 10 minutes')
        await sleep(100)
      }
      const secs = (performance.now() - t) / 1000
      const speed = missedBytes / MiB / secs
      const gib = missedBytes / (1024 * MiB)
      const cpuPrimary = (cpuSeconds(east.child.pid) - cpuAt[0]) / gib
      const cpuSecondary = (cpuSeconds(west.child.pid) - cpuAt[1]) / gib
      ctx.log(
        `catch-up CPU by thread, primary (s/GiB): ${threadRates(threadsAt[0], threadSeconds(east.child.pid), gib)}`,
      )
      ctx.log(
        `catch-up CPU by thread, secondary (s/GiB): ${threadRates(threadsAt[1], threadSeconds(west.child.pid), gib)}`,
      )
      ctx.log(
        `catch-up: ${missed.length} points, ${(missedBytes / MiB).toFixed(0)} MiB in ${secs.toFixed(1)} s, CPU ${cpuPrimary.toFixed(2)} s/GiB primary, ${cpuSecondary.toFixed(2)} s/GiB secondary`,
      )
      results.push(r('catch-up after an outage', speed, 'MiB/s', '>= 100 MiB/s', speed >= 100))
      results.push(r('catch-up CPU, primary', cpuPrimary, 's/GiB'))
      results.push(r('catch-up CPU, secondary', cpuSecondary, 's/GiB'))
      const cpu = process.cpuUsage(cpu0)
      results.push(r('bench process CPU (client side)', (cpu.user + cpu.system) / 1e6, 's'))
      return results
    } finally {
      await Promise.all([east?.dispose(), west?.dispose()])
    }
  },
}
