import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { cairnAt, type RunningService, startService } from '../../test/_service.js'
import { resultRow } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
const ACCOUNT = 'geobench'

async function ok(url: string, args: string[]): Promise<unknown> {
  const r = await cairnAt(url, args)
  if (r.code !== 0) throw new Error(`cairn ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as unknown
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0
}

/**
 * Issue 17's disk targets, two services on loopback (docs/replication.md, "Disks"): the replication lag
 * (now − the secondary's LastSyncTime, sampled every 500 ms) under steady writes of 20 MiB/s through the
 * blob API (p99 < 60 s); the catch-up speed of the secondary after an outage (bytes written during it /
 * time from restart to synced, ≥ 100 MiB/s) with the CPU seconds per GiB of each side; bytes on the wire
 * per changed byte of one point (≤ 1.1).
 * `--geo-interval 1`; CAIRN_GEO_BENCH_SECONDS sets the steady phase (default 60, quick 15).
 */
export const geoDisks: BenchScenario = {
  name: 'geo-disks',
  description: 'disk geo-replication on loopback: lag at 20 MiB/s, catch-up after an outage, wire bytes',
  async run(ctx) {
    const seconds = Number(process.env.CAIRN_GEO_BENCH_SECONDS ?? (ctx.quick ? 15 : 60))
    const outageMiB = ctx.quick ? 256 : 2048
    const diskBytes = (ctx.quick ? 1024 : 4096) * MiB
    const results: BenchResult[] = []
    const r = resultRow('geo-disks')
    let east: RunningService | undefined
    let west: RunningService | undefined
    try {
      east = await startService(['--geo-interval', '1'])
      west = await startService(['--geo-interval', '1'])
      const token = await fetch(`${west.url}/api/v1/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${west.token}` },
        body: JSON.stringify({ role: 'Site Peer', name: 'bench' }),
      }).then(async (res) => ((await res.json()) as { token: string }).token)
      await ok(east.url, ['pair', 'add', 'west', '--peer-url', west.url, '--token', token])
      await ok(east.url, ['account', 'create', ACCOUNT, '--redundancy', 'RA-GRS', '--pair', 'west'])
      const { key1 } = (await ok(east.url, ['account', 'keys', ACCOUNT])) as { key1: string }
      const cred = new StorageSharedKeyCredential(ACCOUNT, key1)
      const primary = new BlobServiceClient(`${east.listeners.blob}/${ACCOUNT}`, cred)
      await primary.createContainer('vms')
      const disk = primary.getContainerClient('vms').getPageBlobClient('os')
      await disk.create(diskBytes)
      const chunk = randomBytes(4 * MiB)
      const stats = () =>
        new BlobServiceClient(`${west?.listeners.blob}/${ACCOUNT}-secondary`, cred).getStatistics()

      // Steady 20 MiB/s: five 4 MiB writes a second at moving offsets; the lag sampled twice a second.
      const lags: number[] = []
      let writing = true
      let written = 0
      const writer = (async () => {
        const start = performance.now()
        let n = 0
        while (writing) {
          const at = (n * 4 * MiB) % diskBytes
          await disk.uploadPages(chunk, at, chunk.length)
          written += chunk.length
          n++
          const due = start + (n * 1000) / 5
          const wait = due - performance.now()
          if (wait > 0) await sleep(wait)
        }
      })()
      const until = Date.now() + seconds * 1000
      while (Date.now() < until) {
        await sleep(500)
        const s = await stats()
        const last = s.geoReplication?.lastSyncOn?.getTime()
        if (last !== undefined) lags.push((Date.now() - last) / 1000)
      }
      writing = false
      await writer
      const rate = written / MiB / seconds
      const p99 = percentile(lags, 99)
      ctx.log(`steady phase: ${rate.toFixed(1)} MiB/s written, ${lags.length} lag samples`)
      results.push(r('write rate during the steady phase', rate, 'MiB/s', '20 MiB/s'))
      results.push(r('replication lag p50', percentile(lags, 50), 's'))
      results.push(r('replication lag p99', p99, 's', '< 60 s', p99 < 60))

      // (Wire bytes per changed byte are measured on the catch-up point below: with rounds every
      // second, a small point written here would be shipped by a background round, not by ours.)
      // Outage: the secondary stopped while the primary takes outageMiB of new data; then catch-up.
      await west.stop()
      // The primary comes back with rounds a long interval apart: its first round fails (the secondary
      // is down) and backs off a minute, so the catch-up is the one round this bench asks for and times
      // (a background round would otherwise ship it first and leave the timed one nothing to do).
      await east.stop()
      east = await startService(['--geo-interval', '3600', '--port', new URL(east.url).port], {
        data: east.data,
      })
      const outageDisk = new BlobServiceClient(`${east.listeners.blob}/${ACCOUNT}`, cred)
        .getContainerClient('vms')
        .getPageBlobClient('os')
      for (let i = 0; i < outageMiB / 4; i++)
        await outageDisk.uploadPages(randomBytes(4 * MiB), (i * 4 * MiB) % diskBytes, 4 * MiB)
      const outageBytes = Math.min(outageMiB * MiB, diskBytes)
      // Same port: the pair names it.
      west = await startService(['--geo-interval', '1', '--port', new URL(west.url).port], {
        data: west.data,
      })
      const cpu0 = [cpuSeconds(east.child.pid), cpuSeconds(west.child.pid)]
      const t = performance.now()
      const caught = (await ok(east.url, ['account', 'sync', ACCOUNT])) as {
        changedBytes: number
        wireBytes: number
      }
      const secs = (performance.now() - t) / 1000
      const gib = caught.changedBytes / 1024 / MiB
      const cpuPrimary = (cpuSeconds(east.child.pid) - (cpu0[0] as number)) / gib
      const cpuSecondary = (cpuSeconds(west.child.pid) - (cpu0[1] as number)) / gib
      const speed = Math.max(caught.changedBytes, 0) / MiB / secs
      ctx.log(
        `catch-up: ${(caught.changedBytes / MiB).toFixed(0)} MiB of ${outageBytes / MiB} MiB in ${secs.toFixed(1)} s`,
      )
      results.push(r('catch-up after an outage', speed, 'MiB/s', '>= 100 MiB/s', speed >= 100))
      const ratio = caught.wireBytes / caught.changedBytes
      results.push(r('wire bytes per changed byte (the catch-up point)', ratio, 'x', '<= 1.1', ratio <= 1.1))
      results.push(r('catch-up CPU, primary', cpuPrimary, 's/GiB'))
      results.push(r('catch-up CPU, secondary', cpuSecondary, 's/GiB'))
      return results
    } finally {
      await Promise.all([east?.dispose(), west?.dispose()])
    }
  },
}
