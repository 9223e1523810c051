import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CATALOG_DIALECTS } from '../src/catalog/index.js'
import { apiFetch, startService } from './_service.js'

/** The value of one sample line `name{labels} value` of a Prometheus text document, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(' ').at(-1))
  }
  return undefined
}

for (const dialect of CATALOG_DIALECTS)
  describe(`health, readiness and metrics (catalog: ${dialect.name})`, () => {
    it('answer /healthz and /readyz to anyone, /metrics only to a metrics reader, with jobs, requests and the catalog pool', async () => {
      const service = await startService([], { catalog: dialect })
      const { url } = service
      try {
        assert.equal((await fetch(`${url}/healthz`)).status, 200)
        const ready = await fetch(`${url}/readyz`)
        assert.equal(ready.status, 200)
        assert.deepEqual(await ready.json(), { status: 'ready' })
        assert.equal((await fetch(`${url}/metrics`)).status, 401, 'metrics need credentials')

        // A job that ends: a vault verify of a new vault.
        const made = await apiFetch(`${url}/api/v1/vaults`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'm1' }),
        })
        assert.equal(made.status, 201, await made.text())
        const verify = await apiFetch(`${url}/api/v1/vaults/m1/verify`, { method: 'POST' })
        assert.ok(verify.status < 300, await verify.text())
        for (let i = 0; i < 100; i++) {
          const jobs = (await (await apiFetch(`${url}/api/v1/jobs?kind=verify`)).json()) as {
            items: { state: string }[]
          }
          if (jobs.items[0]?.state === 'Completed') break
          await new Promise((r) => setTimeout(r, 100))
        }

        // A scraper: a user holding only the Monitoring role, signed in.
        const user = await apiFetch(`${url}/api/v1/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'prometheus', password: 'scrape-password-1', role: 'Monitoring' }),
        })
        assert.equal(user.status, 201, await user.text())
        const login = await fetch(`${url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: 'prometheus', password: 'scrape-password-1' }),
        })
        const { token } = (await login.json()) as { token: string }
        const scraper = { authorization: `Bearer ${token}` }
        assert.equal((await fetch(`${url}/api/v1/vms`, { headers: scraper })).status, 403, 'metrics only')
        const res = await fetch(`${url}/metrics`, { headers: scraper })
        assert.equal(res.status, 200)
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
        const text = await res.text()
        assert.equal(
          sample(text, 'cairn_jobs', { kind: 'verify', state: 'Completed' }),
          1,
          text.slice(0, 2000),
        )
        assert.equal(
          sample(text, 'cairn_job_duration_seconds_count', { kind: 'verify', state: 'Completed' }),
          1,
        )
        assert.ok(
          (sample(text, 'cairn_api_requests_total', {
            method: 'POST',
            route: '/api/v1/vaults',
            status: '201',
          }) ?? 0) >= 1,
          'requests are counted by route pattern',
        )
        assert.ok(
          (sample(text, 'cairn_api_requests_total', { route: '/api/v1/vaults/:vault/verify' }) ?? 0) >= 1,
          'a parameter stays a parameter in the route label',
        )
        assert.ok(
          (sample(text, 'cairn_catalog_connections', { dialect: dialect.name, state: 'total' }) ?? 0) >= 1,
        )
        assert.ok((sample(text, 'cairn_diskstore_bytes', { state: 'total' }) ?? 0) > 0)
        assert.ok(sample(text, 'cairn_process_resident_memory_bytes') !== undefined)
      } finally {
        await service.dispose()
      }
    })
  })
