import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { CATALOG_DIALECTS } from '../src/catalog/index.js'
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../src/vault/_test-object-stores.js'
import { api, ended, randomDisk } from './_jobs.js'
import { apiFetch, startService } from './_service.js'

const run = promisify(execFile)
const MiB = 1024 * 1024

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

describe('metrics of the data planes and vaults', () => {
  it("count NBD and blob API requests by command and status, the disk store's operations, latencies and bytes, and each vault's usage, after real traffic", async () => {
    const service = await startService()
    const { url } = service
    const dir = mkdtempSync(join(tmpdir(), 'cairn-metrics-'))
    try {
      // Management API: a disk of 8 MiB written through the pages route, backed up into a folder vault.
      await randomDisk(url, 'd1', 8)
      assert.equal((await api(url, 'POST', '/api/v1/vaults', { name: 'm2' })).status, 201)
      const disks = [{ account: AZURITE_ACCOUNT, container: 'disks', disk: 'd1' }]
      const backup = await api(url, 'POST', '/api/v1/vaults/m2/backups', { disks, item: 'd1' })
      assert.equal(backup.status, 202, JSON.stringify(backup.body))
      assert.equal((await ended(url, backup.body.id)).state, 'Completed')

      // Blob API (Azure SDK): two Put Page, a ranged read, and a blob that is not there (404).
      const blobs = new BlobServiceClient(
        `${service.listeners.blob}/${AZURITE_ACCOUNT}`,
        new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
      ).getContainerClient('disks')
      const page = blobs.getPageBlobClient('d1')
      await page.uploadPages(randomBytes(4096), 0, 4096)
      await page.uploadPages(randomBytes(8192), 65536, 8192)
      assert.equal((await page.downloadToBuffer(0, 4096)).length, 4096)
      await assert.rejects(
        blobs.getPageBlobClient('missing').getProperties(),
        (e: { statusCode?: number }) => e.statusCode === 404,
      )

      // NBD (nbdcopy): 1 MiB in, the disk out.
      const input = join(dir, 'in.raw')
      writeFileSync(input, randomBytes(MiB))
      const nbd = `${service.listeners.nbd}/${AZURITE_ACCOUNT}/disks/d1`
      await run('nbdcopy', ['--destination-is-zero', input, nbd])
      await run('nbdcopy', [nbd, join(dir, 'out.raw')])

      const text = await (await apiFetch(`${url}/metrics`)).text()
      const typed = (name: string, type: string) =>
        assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`)
      typed('cairn_nbd_requests_total', 'counter')
      typed('cairn_nbd_request_duration_seconds', 'histogram')
      typed('cairn_blob_requests_total', 'counter')
      typed('cairn_blob_request_duration_seconds', 'histogram')
      typed('cairn_diskstore_operation_duration_seconds', 'histogram')
      typed('cairn_diskstore_operation_bytes_total', 'counter')
      typed('cairn_vault_bytes', 'gauge')

      const at = (name: string, labels: Record<string, string>) => sample(text, name, labels) ?? 0
      assert.ok(at('cairn_nbd_requests_total', { command: 'WRITE', result: 'ok' }) >= 1, text)
      assert.ok(at('cairn_nbd_requests_total', { command: 'READ', result: 'ok' }) >= 1)
      assert.ok(at('cairn_nbd_bytes_total', { command: 'WRITE' }) >= MiB)
      assert.ok(at('cairn_nbd_bytes_total', { command: 'READ' }) >= 8 * MiB, 'nbdcopy read the whole disk')
      assert.ok(at('cairn_nbd_request_duration_seconds_count', { command: 'WRITE' }) >= 1)
      assert.equal(at('cairn_blob_requests_total', { operation: 'putPage', status: '201' }), 2)
      assert.ok(at('cairn_blob_requests_total', { operation: 'getBlob', status: '206' }) >= 1)
      assert.equal(at('cairn_blob_requests_total', { operation: 'blobProperties', status: '404' }), 1)
      assert.equal(at('cairn_blob_request_duration_seconds_count', { operation: 'putPage' }), 2)
      // Every plane reaches the same store: the pages route, Put Page and NBD writes, the backup's reads.
      assert.ok(at('cairn_diskstore_operation_duration_seconds_count', { op: 'write', result: 'ok' }) >= 4)
      assert.ok(at('cairn_diskstore_operation_bytes_total', { op: 'write' }) >= 9 * MiB + 12288)
      assert.ok(
        at('cairn_diskstore_operation_bytes_total', { op: 'read' }) >= 16 * MiB,
        'backup and NBD reads',
      )
      assert.equal(at('cairn_vault_recovery_points', { vault: 'm2' }), 1)
      assert.ok(at('cairn_vault_bytes', { vault: 'm2', kind: 'stored' }) > 4 * MiB, 'random data stored')
      assert.equal(at('cairn_vault_bytes', { vault: 'm2', kind: 'logical' }), 8 * MiB)
      assert.ok(at('cairn_vault_filesystem_bytes', { vault: 'm2', state: 'total' }) > 0)
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
