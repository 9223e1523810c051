import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LogDiskStore } from '../diskstore/index.js'
import { DiskService } from '../protection/index.js'
import { HostPaths, silentLogger } from '../util/index.js'
import { asAdmin, type InProcessApp, testAuth } from './_test-identity.js'
import { createApiApp } from './api-app.js'

async function withApp(fn: (app: InProcessApp, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-api-disks-'))
  const store = await LogDiskStore.open(join(dir, 'disks'), { compactIntervalMs: 0 })
  mkdirSync(join(dir, 'files'))
  const identity = await testAuth()
  try {
    const app = createApiApp({
      logger: silentLogger,
      accepting: () => true,
      auth: identity.auth,
      diskStore: store,
      diskService: new DiskService({
        diskStore: store,
        hostPaths: new HostPaths({
          importRoots: [join(dir, 'files')],
          exportRoots: [join(dir, 'files')],
          dataDir: join(dir, 'disks'),
          vaultFolders: async () => [],
        }),
      }),
      info: () => ({ name: 'cairn', version: '0', dataDir: dir, startedAt: '', listeners: {} }),
    })
    await fn(asAdmin(app, identity.token), dir)
  } finally {
    await identity.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const post = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
})
const put = (body: unknown) => ({ ...post(body), method: 'PUT' })
const D = '/api/v1/accounts/acct1/containers/vhds/disks'

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code
}

describe('disk API', () => {
  it('creates accounts, containers and disks, writes and reads pages, and diffs snapshots', async () => {
    await withApp(async (app) => {
      assert.equal(
        (await app.request('/api/v1/accounts', post({ name: 'acct1', redundancy: 'GRS' }))).status,
        201,
      )
      assert.equal(
        (await app.request('/api/v1/accounts/acct1/containers', post({ name: 'vhds' }))).status,
        201,
      )
      const created = await app.request(`${D}/os`, put({ size: '1GiB', metadata: { vm: 'web1' } }))
      assert.equal(created.status, 201)
      const disk = (await created.json()) as { size: number; metadata: Record<string, string> }
      assert.equal(disk.size, 1024 ** 3)
      assert.deepEqual(disk.metadata, { vm: 'web1' })

      const snap = (await (await app.request(`${D}/os/snapshots`, post({}))).json()) as { snapshot: string }
      const w = await app.request(`${D}/os/pages?offset=4096`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(1024, 0xab),
      })
      assert.equal(w.status, 200)
      const r = await app.request(`${D}/os/pages?offset=4096&length=1024`)
      assert.equal(r.headers.get('content-type'), 'application/octet-stream')
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(Buffer.alloc(1024, 0xab)))

      const diff = await app.request(`${D}/os/diff?from=${encodeURIComponent(snap.snapshot)}`)
      assert.deepEqual(await diff.json(), { pageRanges: [[4096, 5119]], clearRanges: [] })
      const ranges = await app.request(`${D}/os/ranges`)
      assert.deepEqual(await ranges.json(), { pageRanges: [[4096, 5119]] })

      const listed = (await (await app.request(`${D}?includeSnapshots=true`)).json()) as { items: unknown[] }
      assert.equal(listed.items.length, 2)
      const copy = await app.request(
        `${D}/os/copy`,
        post({ target: { account: 'acct1', container: 'vhds', disk: 'os-copy' }, snapshot: snap.snapshot }),
      )
      assert.equal(copy.status, 201)
      assert.equal((await app.request(`${D}/os/promote`, post({ snapshot: snap.snapshot }))).status, 200)
      const after = await app.request(`${D}/os/pages?offset=4096&length=512`)
      assert.ok(Buffer.from(await after.arrayBuffer()).equals(Buffer.alloc(512)))
      assert.equal((await app.request(`${D}/os/resize`, post({ size: '2GiB' }))).status, 200)
      const del = await app.request(`${D}/os`, { method: 'DELETE' })
      assert.equal(del.status, 409)
      assert.equal(await errorCode(del), 'DiskHasSnapshots')
      assert.equal((await app.request(`${D}/os?snapshots=include`, { method: 'DELETE' })).status, 204)
    })
  })

  it('answers bad input with stable error codes', async () => {
    await withApp(async (app) => {
      await app.request('/api/v1/accounts', post({ name: 'acct1' }))
      await app.request('/api/v1/accounts/acct1/containers', post({ name: 'vhds' }))
      await app.request(`${D}/os`, put({ size: 1024 * 1024 }))
      const cases: [Response | Promise<Response>, number, string][] = [
        [app.request(`${D}/nope`), 404, 'DiskNotFound'],
        [app.request('/api/v1/accounts/nope'), 404, 'AccountNotFound'],
        [
          app.request(`${D}/os/pages?offset=100`, { method: 'PUT', body: Buffer.alloc(512) }),
          400,
          'RangeNotAligned',
        ],
        [
          app.request(`${D}/os/pages?offset=${1024 * 1024}`, { method: 'PUT', body: Buffer.alloc(512) }),
          416,
          'RangeOutOfBounds',
        ],
        [app.request(`${D}/os/diff?from=2020-01-01T00:00:00.0000000Z`), 404, 'SnapshotNotFound'],
        [app.request(`${D}/x`, put({ size: 1000 })), 400, 'InvalidDiskSize'],
        [app.request(`${D}/x`, put({ size: 'lots' })), 400, 'InvalidSize'],
        [app.request(`${D}/x`, put({})), 400, 'InvalidRequest'],
        [app.request(`${D}/os/pages?offset=abc&length=1`), 400, 'InvalidRequest'],
      ]
      for (const [res, status, code] of cases) {
        const r = await res
        assert.equal(r.status, status, code)
        assert.equal(await errorCode(r), code)
      }
    })
  })

  it('imports and exports server-side files and lists every route in the OpenAPI document', async () => {
    await withApp(async (app, dir) => {
      await app.request('/api/v1/accounts', post({ name: 'acct1' }))
      await app.request('/api/v1/accounts/acct1/containers', post({ name: 'vhds' }))
      const img = join(dir, 'files', 'in.img')
      const content = Buffer.alloc(2 * 1024 * 1024)
      content.fill(7, 512, 1024)
      writeFileSync(img, content)
      const imp = await app.request(`${D}/imported/import`, post({ path: img }))
      assert.equal(imp.status, 201)
      assert.equal(((await imp.json()) as { usedBytes: number }).usedBytes, 512)
      const out = join(dir, 'files', 'out.img')
      const exp = await app.request(`${D}/imported/export`, post({ path: out }))
      assert.deepEqual(await exp.json(), { path: out, size: 2 * 1024 * 1024 })
      const again = await app.request(`${D}/imported/export`, post({ path: out }))
      assert.equal(again.status, 403)
      assert.equal(await errorCode(again), 'PathNotAllowed')
      const doc = (await (await app.request('/api/v1/openapi.json')).json()) as {
        paths: Record<string, unknown>
      }
      for (const p of [
        '/api/v1/accounts',
        '/api/v1/accounts/{account}/containers/{container}/disks/{disk}',
        '/api/v1/accounts/{account}/containers/{container}/disks/{disk}/snapshots',
        '/api/v1/accounts/{account}/containers/{container}/disks/{disk}/diff',
        '/api/v1/accounts/{account}/containers/{container}/disks/{disk}/pages',
        '/api/v1/snapshot-groups',
      ]) {
        assert.ok(p in doc.paths, `${p} is documented`)
      }
      const usage = (await (await app.request('/api/v1/diskstore/usage')).json()) as { liveBytes: number }
      assert.equal(usage.liveBytes, 512)
    })
  })
})
