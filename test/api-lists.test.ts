import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CATALOG_DIALECTS, type CatalogDialect } from '../src/catalog/index.js'
import { ApiClient } from '../src/cli/index.js'
import { CairnService } from '../src/server/index.js'
import { silentLogger } from '../src/util/index.js'
import { apiFetch, cairnAt, signIn, tokenOf } from './_service.js'

// Every list of the management API answers one envelope, {items, nextCursor?}, paged by ?limit= and
// ?cursor=; the CLI follows the cursors so that a list command shows everything.

interface Page {
  items: Record<string, unknown>[]
  nextCursor?: string
}

async function withService(
  dialect: CatalogDialect,
  run: (url: string, service: CairnService) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-lists-'))
  const catalog = dialect.url(dir)
  const service = new CairnService(
    {
      data: join(dir, 'data'),
      catalog,
      host: '127.0.0.1',
      port: 0,
      blobPort: 0,
      nbdPort: 0,
      logLevel: 'error',
    },
    { logger: silentLogger },
  )
  await service.start()
  try {
    await signIn(service.listeners.api!, service.config.data)
    await run(service.listeners.api!, service)
  } finally {
    await service.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await apiFetch(url)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** Reads a list page after page with `limit`, checking each page's size; answers the pages. */
async function allPages(url: string, limit: number): Promise<Page[]> {
  const pages: Page[] = []
  let cursor: string | undefined
  do {
    const sep = url.includes('?') ? '&' : '?'
    const q = `${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
    const r = await get(`${url}${q}`)
    assert.equal(r.status, 200, JSON.stringify(r.body))
    assert.deepEqual(Object.keys(r.body).sort(), r.body.nextCursor ? ['items', 'nextCursor'] : ['items'])
    const page = r.body as unknown as Page
    assert.ok(page.items.length <= limit, `a page holds at most ${limit}`)
    pages.push(page)
    cursor = page.nextCursor
    assert.ok(pages.length < 100, 'the cursors end')
  } while (cursor !== undefined)
  return pages
}

for (const dialect of CATALOG_DIALECTS)
  describe(`lists of the management API (catalog: ${dialect.name})`, () => {
    it('every list pages by limit and cursor, in a stable order, without repeating or skipping items', async () => {
      await withService(dialect, async (url) => {
        const post = (path: string, body: unknown) =>
          apiFetch(`${url}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          })
        const put = (path: string, body: unknown) =>
          apiFetch(`${url}${path}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          })
        for (const a of ['acctc', 'accta', 'acctb'])
          assert.equal((await post('/api/v1/accounts', { name: a })).status, 201)
        for (const c of ['box3', 'box1', 'box2', 'box5', 'box4'])
          assert.equal((await post('/api/v1/accounts/accta/containers', { name: c })).status, 201)
        const D = '/api/v1/accounts/accta/containers/box1/disks'
        for (const d of ['d2', 'd1', 'd3']) assert.equal((await put(`${D}/${d}`, { size: 4096 })).status, 201)
        for (let i = 0; i < 3; i++) assert.equal((await post(`${D}/d1/snapshots`, {})).status, 201)
        for (const v of ['v2', 'v1', 'v3'])
          assert.equal((await post('/api/v1/vaults', { name: v })).status, 201)

        const lists: [string, (item: Record<string, unknown>) => string][] = [
          ['/api/v1/accounts', (a) => a.name as string],
          ['/api/v1/accounts/accta/containers', (c) => c.name as string],
          [D, (d) => (d.ref as { disk: string }).disk],
          [`${D}/d1/snapshots`, (s) => s.snapshot as string],
          ['/api/v1/vaults', (v) => v.name as string],
          ['/api/v1/jobs', (j) => j.id as string],
        ]
        for (const [path, key] of lists) {
          const whole = await get(`${url}${path}`)
          assert.equal(whole.status, 200)
          const all = (whole.body as unknown as Page).items.map(key)
          assert.equal('nextCursor' in whole.body, false, `${path}: one page under the default limit`)
          for (const limit of [1, 2]) {
            const paged = (await allPages(`${url}${path}`, limit)).flatMap((p) => p.items.map(key))
            assert.deepEqual(paged, all, `${path} by ${limit}: the same items in the same order`)
          }
        }
        const names = (p: Page) => p.items.map((i) => i.name as string)
        assert.deepEqual(
          (await allPages(`${url}/api/v1/accounts`, 2)).flatMap(names).filter((n) => n.startsWith('acct')),
          ['accta', 'acctb', 'acctc'],
        )
        assert.deepEqual((await allPages(`${url}/api/v1/vaults`, 2)).flatMap(names), ['v1', 'v2', 'v3'])
        const snaps = (await allPages(`${url}${D}/d1/snapshots`, 1)).flatMap((p) =>
          p.items.map((s) => s.snapshot),
        )
        assert.deepEqual(snaps, [...snaps].sort(), 'snapshots come oldest first')
        assert.equal(snaps.length, 3)

        // A cursor names a place in the order, not a position: deleting an item already read moves nothing.
        const C = '/api/v1/accounts/accta/containers'
        const first = (await get(`${url}${C}?limit=2`)).body as unknown as Page
        assert.deepEqual(names(first), ['box1', 'box2'])
        assert.equal((await apiFetch(`${url}${C}/box1`, { method: 'DELETE' })).status, 204)
        const second = (await get(`${url}${C}?limit=2&cursor=${first.nextCursor}`)).body as unknown as Page
        assert.deepEqual(names(second), ['box3', 'box4'])
        const vaults = (await get(`${url}/api/v1/vaults?limit=1`)).body as unknown as Page
        assert.equal((await apiFetch(`${url}/api/v1/vaults/v1`, { method: 'DELETE' })).status, 200)
        const next = (await get(`${url}/api/v1/vaults?limit=1&cursor=${vaults.nextCursor}`))
          .body as unknown as Page
        assert.deepEqual(names(next), ['v2'])

        // Cursors are opaque and checked; limits are bounded.
        for (const bad of [
          `${C}?cursor=box3`,
          `${C}?cursor=${Buffer.from('"box3"').toString('base64url')}`,
          `/api/v1/vaults?cursor=%21%21`,
          `/api/v1/accounts?cursor=${Buffer.from('[1]').toString('base64url')}`,
          `${C}?limit=0`,
          `${C}?limit=1001`,
          `/api/v1/accounts?limit=-1`,
        ]) {
          const r = await get(`${url}${bad}`)
          assert.equal(r.status, 400, bad)
          assert.equal((r.body.error as { code: string }).code, 'InvalidRequest', bad)
        }
        assert.equal((await get(`${url}${C}?limit=1000`)).status, 200)
        // No list answers the old `value` or `nextMarker` names.
        for (const [path] of lists) {
          const body = (await get(`${url}${path}`)).body
          assert.equal('value' in body, false)
          assert.equal('nextMarker' in body, false)
        }
      })
    })

    it('a list answers 100 items by default, and the client and the CLI follow the cursors to the last item', async () => {
      await withService(dialect, async (url, service) => {
        const total = 1005
        await service.diskStore.createAccount('many')
        for (let i = 0; i < total; i++)
          await service.diskStore.createContainer('many', `c${String(i).padStart(4, '0')}`)
        const path = '/api/v1/accounts/many/containers'
        const first = (await get(`${url}${path}`)).body as unknown as Page
        assert.equal(first.items.length, 100)
        assert.ok(first.nextCursor)
        const max = (await get(`${url}${path}?limit=1000`)).body as unknown as Page
        assert.equal(max.items.length, 1000)

        const small = await new ApiClient(url, { pageSize: 7, token: () => tokenOf(url) }).list<{
          name: string
        }>(path)
        assert.equal(small.length, total)
        assert.equal(new Set(small.map((c) => c.name)).size, total)
        assert.deepEqual(
          small.map((c) => c.name),
          small.map((c) => c.name).sort(),
        )
        const capped = await new ApiClient(url, { pageSize: 7, token: () => tokenOf(url) }).list<{
          name: string
        }>(path, {}, { max: 10 })
        assert.deepEqual(
          capped.map((c) => c.name),
          small.slice(0, 10).map((c) => c.name),
        )

        const all = await cairnAt(url, ['container', 'list', 'many'])
        assert.equal(all.code, 0, all.stderr)
        const listed = JSON.parse(all.stdout) as { name: string }[]
        assert.equal(listed.length, total, 'the CLI shows every container, past the largest page')
        assert.equal(listed[total - 1]!.name, `c${total - 1}`)
        const limited = await cairnAt(url, ['container', 'list', 'many', '--limit', '3'])
        assert.equal(limited.code, 0, limited.stderr)
        assert.deepEqual(
          (JSON.parse(limited.stdout) as { name: string }[]).map((c) => c.name),
          ['c0000', 'c0001', 'c0002'],
        )
      })
    })

    it('VMs, policies and protected items page the same way; a body of the wrong shape names the field', async () => {
      await withService(dialect, async (url) => {
        const send = async (method: string, path: string, body: unknown) => {
          const res = await apiFetch(`${url}${path}`, {
            method,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          })
          return { status: res.status, body: (await res.json()) as Record<string, unknown> }
        }
        assert.equal((await send('POST', '/api/v1/vaults', { name: 'v1' })).status, 201)
        const D = '/api/v1/accounts/devstoreaccount1/containers/disks/disks'
        for (const vm of ['vm-c', 'vm-a', 'vm-b']) {
          assert.equal((await send('PUT', `${D}/${vm}-os`, { size: 4096 })).status, 201)
          const r = await send('POST', '/api/v1/vms', { name: vm, osDisk: `devstoreaccount1/disks/${vm}-os` })
          assert.equal(r.status, 201, JSON.stringify(r.body))
        }
        for (const p of ['p3', 'p1', 'p2']) {
          const r = await send('POST', '/api/v1/vaults/v1/backupPolicies', {
            name: p,
            schedule: { frequency: 'Daily', time: '01:00' },
            retention: { daily: { days: 7 } },
          })
          assert.equal(r.status, 201, JSON.stringify(r.body))
        }
        for (const vm of ['vm-b', 'vm-c', 'vm-a'])
          assert.equal(
            (await send('POST', '/api/v1/vaults/v1/protectedItems', { vm, policy: 'p1' })).status,
            201,
          )

        const lists: [string, string, string[]][] = [
          ['/api/v1/vms', 'name', ['vm-a', 'vm-b', 'vm-c']],
          ['/api/v1/vaults/v1/backupPolicies', 'name', ['p1', 'p2', 'p3']],
          ['/api/v1/vaults/v1/protectedItems', 'vmName', ['vm-a', 'vm-b', 'vm-c']],
          ['/api/v1/vaults/v1/protectedItems/vm-a/recoveryPoints', 'id', []],
        ]
        for (const [path, key, want] of lists) {
          for (const limit of [1, 2, 1000]) {
            const got = (await allPages(`${url}${path}`, limit)).flatMap((p) => p.items.map((i) => i[key]))
            assert.deepEqual(got, want, `${path} by ${limit}`)
          }
        }
        const listed = await cairnAt(url, ['vm', 'list', '--limit', '2'])
        assert.equal(listed.code, 0, listed.stderr)
        assert.deepEqual(
          (JSON.parse(listed.stdout) as { name: string }[]).map((v) => v.name),
          ['vm-a', 'vm-b'],
        )

        // The schema gives the shape; the protection service still names every problem of its own.
        const badVm = await send('POST', '/api/v1/vms', { name: 'x', osDisk: 5, dataDisks: 'none' })
        assert.equal(badVm.status, 400)
        const vmError = badVm.body.error as { code: string; message: string }
        assert.equal(vmError.code, 'VmInvalid')
        assert.match(vmError.message, /"osDisk"/)
        assert.match(vmError.message, /"dataDisks"/)
        const badPolicy = await send('POST', '/api/v1/vaults/v1/backupPolicies', {
          name: 'p9',
          schedule: { frequency: 'Daily', time: 130 },
        })
        assert.equal(badPolicy.status, 400)
        assert.equal((badPolicy.body.error as { code: string }).code, 'PolicyInvalid')
        assert.match((badPolicy.body.error as { message: string }).message, /"schedule\.time"/)
        const misspelt = await send('POST', '/api/v1/vaults/v1/backupPolicies', {
          name: 'p9',
          schedule: { frequency: 'Daily', time: '01:00' },
          retention: { daily: { days: 7 } },
          retension: {},
        })
        assert.equal(misspelt.status, 400)
        assert.match(
          (misspelt.body.error as { message: string }).message,
          /"retension" is not a policy field/,
        )
      })
    })
  })
