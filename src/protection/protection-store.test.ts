import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sql } from 'kysely'
import {
  CATALOG_DIALECTS,
  type Catalog,
  MIGRATIONS,
  openCatalog,
  PostgresCatalog,
  SqliteCatalog,
} from '../catalog/index.js'
import { isCairnError } from '../util/index.js'
import { validatePolicy } from './policy.js'
import { ProtectionStore } from './protection-store.js'
import { validateVm } from './vm.js'

const disk = (name: string) => ({ account: 'acct', container: 'vms', disk: name })
const webInput = {
  name: 'web-1',
  vmSize: 'Standard_D2s_v3',
  osType: 'Linux',
  osName: 'Debian 12',
  configuration: { cpus: 2, memoryGiB: 4, nics: [{ mac: '52:54:00:12:34:56' }] },
  osDisk: disk('web-1-os'),
  dataDisks: [
    { lun: 0, disk: disk('web-1-data0') },
    { lun: 1, disk: 'acct/vms/web-1-data1' },
  ],
  tempDisk: disk('web-1-temp'),
  agent: { url: 'http://10.0.0.5:7071', token: 'agent-token-123' },
}
// The store keeps checked descriptions; the checks are validateVm's and validatePolicy's (and the
// ProtectionService's rules, in protection-service.test.ts).
const web = validateVm(webInput)
const dailyPolicy = validatePolicy({
  name: 'daily',
  schedule: { frequency: 'Daily', time: '22:00' },
  retention: { daily: { days: 30 } },
})

/** Runs `fn` on a store over a new catalog of `dialect`, with a way to close and reopen it. */
async function withStore(
  dialect: (typeof CATALOG_DIALECTS)[number],
  fn: (store: ProtectionStore, reopen: () => Promise<ProtectionStore>) => Promise<void>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-'))
  const url = dialect.url(dir)
  const catalogs = [await openCatalog(url)]
  try {
    await fn(new ProtectionStore(catalogs[0]!), async () => {
      await catalogs.at(-1)!.close()
      const c = await openCatalog(url)
      catalogs.push(c)
      return new ProtectionStore(c)
    })
  } finally {
    await catalogs
      .at(-1)!
      .close()
      .catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(p, (err) => {
    assert.ok(isCairnError(err), String(err))
    assert.equal(err.code, code, err.message)
    if (text) assert.match(err.message, text)
    return true
  })
}

for (const dialect of CATALOG_DIALECTS)
  describe(`ProtectionStore (catalog: ${dialect.name})`, () => {
    it('keeps a VM with its size, OS, configuration, disks by LUN, temporary disk and agent', async () => {
      await withStore(dialect, async (store) => {
        await store.createVm(web)
        const vm = await store.getVm('web-1')
        assert.equal(vm.vmSize, 'Standard_D2s_v3')
        assert.deepEqual(vm.configuration, webInput.configuration)
        assert.deepEqual(
          vm.dataDisks.map((d) => [d.lun, d.disk.disk]),
          [
            [0, 'web-1-data0'],
            [1, 'web-1-data1'],
          ],
        )
        assert.equal(vm.tempDisk?.disk, 'web-1-temp')
        assert.equal(vm.agent?.url, 'http://10.0.0.5:7071')
        await rejectsWith(store.createVm(web), 'VmAlreadyExists')
        await rejectsWith(store.getVm('nope'), 'VmNotFound', /"nope"/)
      })
    })

    it('keeps a guest-agent channel in its own column, and moves one an older catalog kept in agent_url', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-protection-'))
      const url = dialect.url(dir)
      try {
        // A catalog as migration 15 left it, with a VM whose channel sits in agent_url as qga:unix:PATH.
        const moved = MIGRATIONS.find((m) => m.name === 'qga channel column')!.version
        const before = MIGRATIONS.filter((m) => m.version < moved)
        const old: Catalog =
          dialect.name === 'sqlite'
            ? new SqliteCatalog(join(dir, 'catalog.db'), before)
            : new PostgresCatalog(url, before)
        await old.migrate()
        const now = new Date().toISOString()
        const row = (id: string, name: string, agentUrl: string | null, token: string | null) =>
          sql`insert into vms (id, name, vm_size, os_type, os_name, configuration_json, agent_url, agent_token,
            created_at, updated_at) values (${id}, ${name}, 'q35', 'Linux', null, '{}', ${agentUrl}, ${token},
            ${now}, ${now})`.execute(old.db)
        await row('v1', 'guest', 'qga:unix:/run/cairn/guest.qga', null)
        await row('v2', 'web', 'http://10.0.0.5:7071', 'agent-token-123')
        for (const [vm, d] of [
          ['v1', 'guest-os'],
          ['v2', 'web-os'],
        ] as const)
          await sql`insert into vm_disks (vm_id, slot, role, lun, account, container, disk)
            values (${vm}, 'os', 'os', null, 'acct', 'vms', ${d})`.execute(old.db)
        await old.close()

        const catalog = await openCatalog(url)
        try {
          const rows = await sql<{ name: string; agent_url: string | null; qga_channel: string | null }>`
            select name, agent_url, qga_channel from vms order by name`.execute(catalog.db)
          assert.deepEqual(
            rows.rows.map((r) => ({ ...r })),
            [
              { name: 'guest', agent_url: null, qga_channel: 'unix:/run/cairn/guest.qga' },
              { name: 'web', agent_url: 'http://10.0.0.5:7071', qga_channel: null },
            ],
          )
          const store = new ProtectionStore(catalog)
          const guest = await store.getVm('guest')
          assert.equal(guest.qga, 'unix:/run/cairn/guest.qga')
          assert.equal(guest.agent, undefined)
          assert.deepEqual((await store.getVm('web')).agent, {
            url: 'http://10.0.0.5:7071',
            token: 'agent-token-123',
          })
          // A new VM with a channel: the column, nothing in agent_url.
          await store.createVm(
            validateVm({ ...webInput, name: 'db', agent: undefined, qga: 'unix:/run/cairn/db.qga' }),
          )
          const db = await sql<{ agent_url: string | null; qga_channel: string | null }>`
            select agent_url, qga_channel from vms where name = 'db'`.execute(catalog.db)
          assert.deepEqual({ ...db.rows[0] }, { agent_url: null, qga_channel: 'unix:/run/cairn/db.qga' })
          assert.equal((await store.getVm('db')).qga, 'unix:/run/cairn/db.qga')
        } finally {
          await catalog.close()
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('stores policies per vault, refuses a name twice in a vault, and deleting one an item uses', async () => {
      await withStore(dialect, async (store) => {
        await store.createPolicy('v1', dailyPolicy)
        await store.createPolicy('v2', dailyPolicy)
        await rejectsWith(store.createPolicy('v1', dailyPolicy), 'PolicyAlreadyExists')
        await store.createPolicy('v1', { ...dailyPolicy, name: 'hourly' })
        const updated = await store.updatePolicy('v1', 'daily', {
          ...dailyPolicy,
          retention: { daily: { days: 60 } },
        })
        await rejectsWith(store.updatePolicy('v1', 'missing', dailyPolicy), 'PolicyNotFound')
        assert.equal(updated.retention.daily?.days, 60)
        assert.equal((await store.listPolicies('v1')).length, 2)
        await store.createVm(web)
        await store.protect('web-1', { vault: 'v1', policy: 'daily' })
        await rejectsWith(store.deletePolicy('v1', 'daily'), 'PolicyInUse')
        await store.deletePolicy('v2', 'daily')
        await rejectsWith(store.getPolicy('v2', 'daily'), 'PolicyNotFound')
      })
    })

    it('protects selected LUNs (the OS disk always, never the temporary disk) and includes future disks when asked', async () => {
      await withStore(dialect, async (store) => {
        await store.createPolicy('v1', dailyPolicy)
        await store.createVm(web)
        await store.protect('web-1', {
          vault: 'v1',
          policy: 'daily',
          includedLuns: [1],
          includeFutureDisks: true,
        })
        await rejectsWith(store.protect('web-1', { vault: 'v1', policy: 'daily' }), 'VmAlreadyProtected')
        assert.deepEqual(
          (await store.disksToBackUp('web-1')).map((d) => d.lun),
          ['os', 1],
        )
        const vm = await store.getVm('web-1')
        await store.setVmDisks('web-1', {
          ...web,
          dataDisks: [...vm.dataDisks, { lun: 5, disk: disk('web-1-data5') }],
        })
        assert.deepEqual(
          (await store.disksToBackUp('web-1')).map((d) => d.lun),
          ['os', 1, 5],
        )
      })
    })

    it('changes policy, stops protection keeping or deleting data, and resumes', async () => {
      await withStore(dialect, async (store) => {
        await store.createPolicy('v1', dailyPolicy)
        await store.createPolicy('v1', { ...dailyPolicy, name: 'other' })
        await store.createVm(web)
        await store.protect('web-1', { vault: 'v1', policy: 'daily' })
        assert.equal((await store.changePolicy('web-1', 'other')).policyName, 'other')
        await rejectsWith(store.changePolicy('web-1', 'missing'), 'PolicyNotFound')
        const item = await store.getItem('web-1')
        const vm = await store.getVm('web-1')
        await store.addRecoveryPoint({
          itemId: item.id,
          time: '2026-01-01T22:00:00.000Z',
          kind: 'Scheduled',
          consistency: 'AppConsistent',
          tier: 'Snapshot',
          disks: [{ name: 'os', source: vm.osDisk, size: 1024, snapshot: 's1' }],
          vm,
        })
        const kept = await store.stopProtection('web-1')
        assert.equal(kept.state, 'ProtectionStopped')
        assert.equal((await store.listRecoveryPoints('web-1')).length, 1, 'its points stay')
        assert.equal((await store.listSchedulable()).length, 0, 'a stopped item is not scheduled')
        await rejectsWith(store.deleteVm('web-1'), 'VmIsProtected', /1 recovery point/)
        const resumed = await store.resume('web-1')
        assert.equal(resumed.state, 'Protected')
        await store.stopProtection('web-1')
        await rejectsWith(store.removeItem('web-1'), 'VmIsProtected', /1 recovery point/)
        const [point] = await store.listRecoveryPoints('web-1')
        await store.deleteRecoveryPoint(point!.id)
        await store.removeItem('web-1')
        await rejectsWith(store.getItem('web-1'), 'ProtectedItemNotFound')
        await store.deleteVm('web-1')
      })
    })

    it('keeps the scheduler state across a reopen', async () => {
      await withStore(dialect, async (store, reopen) => {
        await store.createPolicy('v1', dailyPolicy)
        await store.createVm(web)
        const item = await store.protect('web-1', { vault: 'v1', policy: 'daily' })
        await store.recordRun(item.id, Date.UTC(2026, 0, 1, 22))
        await store.recordMaintenance(42)

        const again = await reopen()
        const [s] = await again.listSchedulable()
        assert.equal(s?.lastSlot, Date.UTC(2026, 0, 1, 22))
        assert.equal(s?.policy.name, 'daily')
        assert.equal(await again.lastMaintenance(), 42)
      })
    })

    it('pages VMs in the catalog by name: more VMs than a page, each once, in order, a VM added behind the cursor moving nothing', async () => {
      await withStore(dialect, async (store) => {
        const names = Array.from({ length: 230 }, (_, i) => `vm-${String(i).padStart(3, '0')}`)
        // Created out of order, with disks: the pages come back sorted, each VM with its own disks.
        for (const name of [...names].reverse())
          await store.createVm(
            validateVm({
              ...webInput,
              name,
              osDisk: disk(`${name}-os`),
              dataDisks: [],
              tempDisk: undefined,
              agent: undefined,
            }),
          )
        const seen: string[] = []
        let after: string | undefined
        let pages = 0
        for (;;) {
          const page = await store.listVmsPage({ ...(after ? { after } : {}), limit: 100 })
          pages++
          for (const vm of page.vms) assert.equal(vm.osDisk.disk, `${vm.name}-os`)
          seen.push(...page.vms.map((v) => v.name))
          if (pages === 1)
            // Added before the cursor: the next pages neither show it nor lose another VM.
            await store.createVm(
              validateVm({
                ...webInput,
                name: 'vm-000a',
                osDisk: disk('x-os'),
                dataDisks: [],
                tempDisk: undefined,
                agent: undefined,
              }),
            )
          if (!page.more) break
          after = page.vms.at(-1)!.name
        }
        assert.equal(pages, 3)
        assert.deepEqual(seen, names)
        const last = await store.listVmsPage({ after: 'vm-228', limit: 100 })
        assert.deepEqual(last, { vms: [last.vms[0]!], more: false })
        assert.equal(last.vms[0]!.name, 'vm-229')
      })
    })
  })
