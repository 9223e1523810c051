import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { api, D, ended, type Json, request } from './_jobs.js'
import { apiFetch, type RunningService, startService } from './_service.js'

// Two paired sites on loopback for the geo-replication tests: each with its own data folder, each
// paired with the other by a Site Peer token, replicating every second.

export const MiB = 1024 * 1024
export const REPLICATE = ['--replication-interval', '1']

/** A token of the Site Peer role made by the admin of `svc`. */
export async function siteToken(svc: RunningService): Promise<string> {
  const r = await api(svc.url, 'POST', '/api/v1/auth/tokens', { role: 'Site Peer', name: 'pair' })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return r.body.token as string
}

/** Pairs `a` with `b` under the name `name` (a → b). */
export async function pair(a: RunningService, b: RunningService, name: string): Promise<void> {
  const r = await api(a.url, 'POST', '/api/v1/pairs', { name, url: b.url, token: await siteToken(b) })
  assert.equal(r.status, 201, JSON.stringify(r.body))
}

/** Starts two sites and pairs them both ways: east knows west as `west`, west knows east as `east`. */
export async function twoSites(): Promise<{ east: RunningService; west: RunningService }> {
  const [east, west] = await Promise.all([startService(REPLICATE), startService(REPLICATE)])
  await pair(east, west, 'west')
  await pair(west, east, 'east')
  return { east, west }
}

/** Starts a site again on its data folder and its old API port (its pair's URL names it). */
export function restart(svc: RunningService): Promise<RunningService> {
  return startService([...REPLICATE, '--port', new URL(svc.url).port], { data: svc.data })
}

/** SHA-256 of a disk's first `size` bytes, read through the API (`account/container/disk`, or a disk of devstoreaccount1/disks). */
export async function diskHash(url: string, disk: string, size: number): Promise<string> {
  const [account, container, name] = disk.includes('/')
    ? disk.split('/')
    : ['devstoreaccount1', 'disks', disk]
  const base = `/api/v1/accounts/${account}/containers/${container}/disks/${name}`
  const h = createHash('sha256')
  for (let o = 0; o < size; o += 4 * MiB) {
    const res = await request(`${url}${base}/pages?offset=${o}&length=${Math.min(4 * MiB, size - o)}`)
    assert.equal(res.status, 200)
    h.update(Buffer.from(await res.arrayBuffer()))
  }
  return h.digest('hex')
}

/** The ids of a vault's recovery points on a site. */
export async function pointIds(url: string, vault: string): Promise<string[]> {
  const r = await api(url, 'GET', `/api/v1/vaults/${vault}/recoveryPoints?limit=1000`)
  assert.equal(r.status, 200, JSON.stringify(r.body))
  return (r.body.items as Json[]).map((p) => p.id as string).sort()
}

/** Waits until `check` answers true (polling), or fails after `ms`. */
export async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check().catch(() => false)) return
    assert.ok(Date.now() < deadline, `never: ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** The disk the GRS vault tests back up. */
export const GEO_DISKS = [{ account: 'devstoreaccount1', container: 'disks', disk: 'os' }]

/** Writes `bytes` random bytes at `offset` of that disk. */
export async function writeOs(url: string, offset: number, bytes: number): Promise<void> {
  const res = await apiFetch(`${url}${D}/os/pages?offset=${offset}`, {
    method: 'PUT',
    body: randomBytes(bytes),
    headers: { 'content-type': 'application/octet-stream' },
  })
  assert.equal(res.status, 200, await res.text())
}

/** Backs that disk up into vault `geo` as item vm1; answers the point's id. */
export async function backupGeo(url: string): Promise<string> {
  const r = await api(url, 'POST', '/api/v1/vaults/geo/backups', { disks: GEO_DISKS, item: 'vm1' })
  assert.equal(r.status, 202, JSON.stringify(r.body))
  const job = await ended(url, r.body.id)
  assert.equal(job.state, 'Completed', JSON.stringify(job))
  return job.result.id as string
}

/**
 * On `url` (the primary): a GRS vault `geo` paired with `west`, a VM `web` over the disks `web-os` and
 * `web-data` (made by the caller), protected by a daily policy and backed up once; answers the point.
 */
export async function protectWebInGeo(url: string): Promise<string> {
  const post = async (path: string, body: Json, status = 201) => {
    const r = await api(url, 'POST', path, body)
    assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`)
    return r.body
  }
  const ref = (disk: string) => ({ account: 'devstoreaccount1', container: 'disks', disk })
  await post('/api/v1/vaults', { name: 'geo', redundancy: 'GRS', pair: 'west' })
  await post('/api/v1/vms', {
    name: 'web',
    vmSize: 'Standard_D2s_v3',
    osType: 'Linux',
    configuration: {},
    osDisk: ref('web-os'),
    dataDisks: [{ lun: 0, disk: ref('web-data') }],
  })
  await post('/api/v1/vaults/geo/backupPolicies', {
    name: 'daily',
    policyType: 'Standard',
    schedule: { frequency: 'Daily', time: '03:00' },
    retention: { daily: { days: 30 } },
  })
  await post('/api/v1/vaults/geo/protectedItems', { vm: 'web', policy: 'daily' })
  const started = await post('/api/v1/vaults/geo/protectedItems/web/backup', {}, 202)
  assert.equal((await ended(url, started.id as string)).state, 'Completed')
  const [point] = await pointIds(url, 'geo')
  assert.ok(point)
  return point
}
