import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { JobStore, openCatalog } from '../src/catalog/index.js'

const WORKER = join(dirname(fileURLToPath(import.meta.url)), '_claim-worker.js')

/** What a claim race found: claims per worker, ids claimed more than once, ids never claimed, claims/s. */
export interface ClaimRace {
  perWorker: number[]
  doubles: string[]
  missed: string[]
  claimsPerSecond: number
}

/**
 * Queues `jobs` backup jobs in the catalog at `url`, then lets `workers` processes claim them `batch`
 * at a time (default one; a worker with that many free slots) until none is left
 * (test/_claim-worker.ts), and checks every claim against the others.
 */
export async function claimRace(url: string, jobs: number, workers: number, batch = 1): Promise<ClaimRace> {
  const catalog = await openCatalog(url)
  const ids: string[] = []
  try {
    const store = new JobStore(catalog)
    for (let i = 0; i < jobs; i++)
      ids.push((await store.create({ kind: 'backup', resource: `vms/vm-${i}` })).id)
  } finally {
    await catalog.close()
  }
  // The workers start together once all have connected (start-up on a busy machine takes seconds).
  const children = Array.from({ length: workers }, (_, i) =>
    spawn(process.execPath, [WORKER, url, `worker-${i}`, String(batch)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  )
  const outputs = children.map((child) => {
    let out = ''
    child.stdout.setEncoding('utf8')
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: string) => {
        out += d
        if (out.startsWith('ready\n')) resolve()
      })
      child.once('exit', (code) =>
        reject(new Error(`a claim worker exited with ${code} before it was ready`)),
      )
    })
    const done = new Promise<string>((resolve, reject) =>
      child.once('exit', (code) =>
        code === 0
          ? resolve(out.slice('ready\n'.length))
          : reject(new Error(`a claim worker exited with ${code}`)),
      ),
    )
    return { child, ready, done }
  })
  await Promise.all(outputs.map((o) => o.ready))
  for (const o of outputs) o.child.stdin.end('go\n')
  const outs = await Promise.all(outputs.map((o) => o.done))
  const results = outs.map((o) => JSON.parse(o) as { claimed: string[]; ms: number })
  const seen = new Set<string>()
  const doubles: string[] = []
  for (const r of results)
    for (const id of r.claimed) {
      if (seen.has(id)) doubles.push(id)
      seen.add(id)
    }
  // Throughput over the time the claimers ran side by side (the slowest loop; start-up excluded).
  const busyMs = Math.max(...results.map((r) => r.ms))
  return {
    perWorker: results.map((r) => r.claimed.length),
    doubles,
    missed: ids.filter((id) => !seen.has(id)),
    claimsPerSecond: Math.round((jobs / busyMs) * 1000),
  }
}
