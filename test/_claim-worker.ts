// One worker process of the job-claim test and benchmark: opens the catalog, prints "ready", waits for a
// line on stdin (so that every worker starts at once), claims queued jobs BATCH at a time (default one)
// until none is left, then prints {"owner", "claimed": [ids], "ms"} as one JSON line.
// node _claim-worker.js CATALOG_URL OWNER [BATCH]
import { once } from 'node:events'
import { JobLeases, openCatalog } from '../src/catalog/index.js'

const [url, owner, batch] = process.argv.slice(2)
if (!url || !owner) throw new Error('usage: _claim-worker.js CATALOG_URL OWNER')
const catalog = await openCatalog(url)
const leases = new JobLeases(catalog)
process.stdout.write('ready\n')
await once(process.stdin, 'data')
const claimed: string[] = []
const t0 = performance.now()
for (;;) {
  const got = await leases.claimQueued(owner, { limit: Number(batch ?? 1), leaseMs: 60_000 })
  if (got.length === 0) break
  claimed.push(...got.map((j) => j.id))
}
const ms = performance.now() - t0
await catalog.close()
process.stdout.write(`${JSON.stringify({ owner, claimed, ms })}\n`)
process.exit(0)
