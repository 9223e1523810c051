import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createApiApp } from '../src/api/index.js'
import { AuthService } from '../src/auth/index.js'
import { CATALOG_DIALECTS, type CatalogDialect, JobStore, openCatalog } from '../src/catalog/index.js'
import { LogDiskStore } from '../src/diskstore/index.js'
import { JobService, ProtectionService, ProtectionStore } from '../src/protection/index.js'
import { silentLogger } from '../src/util/index.js'

// biome-ignore lint/suspicious/noExplicitAny: tests read answers of many shapes
type Answer = { status: number; body: any }

async function withApi(
  dialect: CatalogDialect,
  fn: (
    call: (method: string, path: string, body?: unknown) => Promise<Answer>,
    store: ProtectionStore,
  ) => Promise<void>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-api-'))
  const catalog = await openCatalog(dialect.url(dir))
  const diskStore = await LogDiskStore.open(join(dir, 'disks'))
  await diskStore.createAccount('acct')
  await diskStore.createContainer('acct', 'vms')
  for (const d of ['db-1-os', 'db-1-data', 'db-1-log']) {
    await diskStore.createDisk({ account: 'acct', container: 'vms', disk: d }, { size: 1024 * 1024 })
  }
  const auth = new AuthService(catalog)
  await auth.ensureAdmin('test-admin-password')
  const { secret } = await auth.login({ user: 'admin', password: 'test-admin-password', client: 'test' })
  try {
    const store = new ProtectionStore(catalog)
    const app = createApiApp({
      logger: silentLogger,
      auth,
      info: () => ({ name: 'cairn', version: '0', dataDir: dir, startedAt: '', listeners: {} }),
      accepting: () => true,
      diskStore,
      protection: new ProtectionService({
        store,
        disks: diskStore,
        jobs: new JobService({ store: new JobStore(catalog) }),
      }),
    })
    await fn(async (method, path, body) => {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${secret}` } }
      if (body !== undefined) {
        init.body = JSON.stringify(body)
        init.headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }
      }
      const res = await app.request(path, init)
      return { status: res.status, body: await res.json() }
    }, store)
  } finally {
    await diskStore.close()
    await catalog.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const vm = {
  name: 'db-1',
  vmSize: 'Standard_E4s_v5',
  osType: 'Linux',
  configuration: { cpus: 4, memoryGiB: 32 },
  osDisk: 'acct/vms/db-1-os',
  dataDisks: [
    { lun: 0, disk: 'acct/vms/db-1-data' },
    { lun: 1, disk: 'acct/vms/db-1-log' },
  ],
  agent: { url: 'http://127.0.0.1:7071', token: 'db-agent-token' },
}

for (const dialect of CATALOG_DIALECTS)
  describe(`protection API (catalog: ${dialect.name})`, () => {
    it('registers a VM, creates a policy, protects selected disks, changes policy, stops and resumes', async () => {
      await withApi(dialect, async (call) => {
        const created = await call('POST', '/api/v1/vms', vm)
        assert.equal(created.status, 201, JSON.stringify(created.body))
        assert.equal(created.body.agent.token, '***', 'the agent token is never answered')
        assert.equal((await call('GET', '/api/v1/vms')).body.items.length, 1)

        const policy = {
          name: 'enhanced-4h',
          policyType: 'Enhanced',
          timeZone: 'Europe/Paris',
          schedule: { frequency: 'Hourly', intervalHours: 4, windowStart: '08:00', windowDurationHours: 12 },
          retention: {
            daily: { days: 30 },
            yearly: { years: 10, monthsOfYear: ['January'], on: { days: [1] } },
          },
        }
        const p = await call('POST', '/api/v1/vaults/vault1/backupPolicies', policy)
        assert.equal(p.status, 201, JSON.stringify(p.body))
        assert.equal(p.body.instantRpRetentionRangeInDays, 7)
        await call('POST', '/api/v1/vaults/vault1/backupPolicies', { ...policy, name: 'other' })

        const item = await call('POST', '/api/v1/vaults/vault1/protectedItems', {
          vm: 'db-1',
          policy: 'enhanced-4h',
          includedLuns: [0],
        })
        assert.equal(item.status, 201, JSON.stringify(item.body))
        assert.deepEqual(item.body.includedLuns, [0])
        const changed = await call('PATCH', '/api/v1/vaults/vault1/protectedItems/db-1', { policy: 'other' })
        assert.equal(changed.body.policyName, 'other')
        const stopped = await call('POST', '/api/v1/vaults/vault1/protectedItems/db-1/stopProtection', {
          deleteData: false,
        })
        assert.equal(stopped.body.state, 'ProtectionStopped')
        const resumed = await call('POST', '/api/v1/vaults/vault1/protectedItems/db-1/resume', {})
        assert.equal(resumed.body.state, 'Protected')
        const rps = await call('GET', '/api/v1/vaults/vault1/protectedItems/db-1/recoveryPoints')
        assert.deepEqual(rps.body.items, [])
        const gone = await call('POST', '/api/v1/vaults/vault1/protectedItems/db-1/stopProtection', {
          deleteData: true,
        })
        assert.equal(gone.body.state, 'NotProtected')
        assert.equal((await call('DELETE', '/api/v1/vms/db-1')).status, 200)
      })
    })

    it('answers clear errors for unknown VMs, policies, items, recovery points and jobs, and out-of-bounds policies', async () => {
      await withApi(dialect, async (call) => {
        const cases: [string, string, unknown, number, string][] = [
          ['GET', '/api/v1/vms/ghost', undefined, 404, 'VmNotFound'],
          ['POST', '/api/v1/vms', { ...vm, dataDisks: [{ lun: 99, disk: 'a/b/c' }] }, 400, 'VmInvalid'],
          ['POST', '/api/v1/vms', { ...vm, name: 'db-2', osDisk: 'acct/vms/nowhere' }, 404, 'DiskNotFound'],
          ['GET', '/api/v1/vaults/v/backupPolicies/none', undefined, 404, 'PolicyNotFound'],
          [
            'POST',
            '/api/v1/vaults/v/backupPolicies',
            {
              name: 'x',
              schedule: { frequency: 'Daily', time: '01:00' },
              retention: { daily: { days: 10000 } },
            },
            400,
            'PolicyInvalid',
          ],
          ['POST', '/api/v1/vaults/v/protectedItems', { vm: 'ghost', policy: 'p' }, 404, 'VmNotFound'],
          ['GET', '/api/v1/vaults/v/protectedItems/ghost/recoveryPoints/rp1', undefined, 404, 'VmNotFound'],
        ]
        for (const [method, path, body, status, code] of cases) {
          const res = await call(method, path, body)
          assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`)
          assert.equal(res.body.error.code, code)
          assert.ok(res.body.error.message.length > 10)
        }
        await call('POST', '/api/v1/vms', vm)
        const noPolicy = await call('POST', '/api/v1/vaults/v/protectedItems', {
          vm: 'db-1',
          policy: 'missing',
        })
        assert.equal(noPolicy.body.error.code, 'PolicyNotFound')
        assert.equal(
          (await call('GET', '/api/v1/vaults/v/protectedItems/db-1')).body.error.code,
          'ProtectedItemNotFound',
        )
      })
    })
  })
