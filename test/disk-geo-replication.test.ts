import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { crc32 } from 'node:zlib'
import {
  BlobServiceClient,
  type PageBlobClient,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { EXIT } from '../src/util/index.js'
import { cairnAt, type RunningService, startService } from './_service.js'

// Disk geo-redundancy between two real `cairn serve` processes on loopback, each with its own data
// folder, paired with `cairn pair add`: an RA-GRS account replicates to the secondary, which serves it
// read-only to the official Azure SDK (ACCOUNT-secondary, Get Blob Service Stats, the SDK's
// secondaryHost retries); the secondary is stopped and catches up byte-exact; the primary's data
// folder is deleted and `account failover` makes the secondary primary, where the SDK writes.
// The primary's blob API listens on 127.0.0.1 and the secondary's on 127.0.0.2 at the same port: the
// SDK's secondaryHost changes the host name only.

const ACCOUNT = 'geo1'
const MiB = 1024 * 1024

/** A token of `role` made by the admin of `svc`. */
async function tokenOf(svc: RunningService, role: string, name: string): Promise<string> {
  const res = await fetch(`${svc.url}/api/v1/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${svc.token}` },
    body: JSON.stringify({ role, name }),
  })
  assert.equal(res.status, 201, await res.clone().text())
  return ((await res.json()) as { token: string }).token
}

async function ok(url: string, args: string[]): Promise<unknown> {
  const r = await cairnAt(url, args)
  assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as unknown
}

function api(svc: RunningService, method: string, path: string): Promise<Response> {
  const json = method === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : undefined
  return fetch(`${svc.url}${path}`, {
    method,
    ...(json ? { body: json.body } : {}),
    headers: { authorization: `Bearer ${svc.token}`, ...json?.headers },
  })
}

async function download(blob: PageBlobClient): Promise<Buffer> {
  return blob.downloadToBuffer()
}

async function azureCode(p: Promise<unknown>): Promise<{ status: number; code: string | undefined }> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof RestError, String(err))
    return { status: err.statusCode ?? 0, code: err.code }
  }
  assert.fail('the request succeeded')
}

describe('disk geo-redundancy between two services (RA-GRS, failover)', () => {
  let east: RunningService
  let west: RunningService
  let blobPort: string
  let key: string
  let siteToken: string
  let westPort = '0'
  // The SDK clients below never retry (maxTries 1): a kept-alive connection the service closes at its
  // idle deadline just as a client reuses it would fail a read with "socket hang up" (seen under load),
  // so the services keep idle connections for two minutes (also those that carried a Put Page body,
  // held to one second before the header timeout: docs/blobapi.md).
  const IDLE = ['--http-idle-timeout', '120', '--http-header-timeout', '130']
  // A restarted secondary keeps its ports: the pair and the SDK's secondaryHost name them.
  const westArgs = () => [
    ...IDLE,
    '--geo-interval',
    '1',
    '--blob-host',
    '127.0.0.2',
    '--blob-port',
    blobPort,
    '--port',
    westPort,
  ]
  const cred = () => new StorageSharedKeyCredential(ACCOUNT, key)
  const primary = () =>
    new BlobServiceClient(`http://127.0.0.1:${blobPort}/${ACCOUNT}`, cred(), {
      retryOptions: { maxTries: 1 },
    })
  const secondary = (name = `${ACCOUNT}-secondary`) =>
    new BlobServiceClient(`http://127.0.0.2:${blobPort}/${name}`, cred(), { retryOptions: { maxTries: 1 } })
  const disk = (svc: BlobServiceClient, name = 'os') => svc.getContainerClient('vms').getPageBlobClient(name)

  before(async () => {
    east = await startService([...IDLE, '--geo-interval', '1'])
    blobPort = new URL(east.listeners.blob as string).port
    west = await startService(westArgs())
    westPort = new URL(west.url).port
    siteToken = await tokenOf(west, 'Site Peer', 'pair-east')
    await ok(east.url, ['pair', 'add', 'west', '--peer-url', west.url, '--token', siteToken])
  })
  after(async () => {
    if (process.env.CAIRN_GEO_LOGS)
      console.error([...(east?.logs ?? []), '----', ...(west?.logs ?? [])].join('\n'))
    await Promise.all([east?.dispose(), west?.dispose()])
  })

  it('an RA-GRS account replicates; the SDK reads ACCOUNT-secondary byte-exact and getStatistics reports live with LastSyncTime', async () => {
    await ok(east.url, ['account', 'create', ACCOUNT, '--redundancy', 'RA-GRS', '--pair', 'west'])
    const keys = (await ok(east.url, ['account', 'keys', ACCOUNT])) as { key1: string }
    key = keys.key1
    await primary().createContainer('vms')
    await disk(primary()).create(8 * MiB)
    await disk(primary()).uploadPages(randomBytes(2 * MiB), MiB, 2 * MiB)
    await disk(primary()).uploadPages(randomBytes(MiB), 6 * MiB, MiB)
    // A client's snapshot between writes (blob snapshot): it reaches the secondary under the same id.
    const { snapshot: snap1 } = await disk(primary()).createSnapshot({ metadata: { why: 'before-update' } })
    await disk(primary()).uploadPages(randomBytes(MiB), 2 * MiB, MiB)
    await disk(primary(), 'data').create(4 * MiB)
    await disk(primary(), 'data').uploadPages(randomBytes(MiB), 0, MiB)
    const before = Date.now()
    // (The background rounds, every second, may have shipped the points already.)
    const round = (await ok(east.url, ['account', 'sync', ACCOUNT])) as { syncTime: number }
    for (const name of ['os', 'data'])
      assert.ok((await download(disk(secondary(), name))).equals(await download(disk(primary(), name))), name)
    // The secondary lists the client's snapshot (include=snapshots) and the SDK reads it byte-exact.
    const listed: string[] = []
    for await (const b of secondary().getContainerClient('vms').listBlobsFlat({ includeSnapshots: true }))
      if (b.snapshot) listed.push(`${b.name}@${b.snapshot}`)
    assert.deepEqual(listed, [`os@${snap1}`])
    const copy = disk(secondary()).withSnapshot(snap1 as string)
    assert.ok(
      (await copy.downloadToBuffer()).equals(
        await disk(primary())
          .withSnapshot(snap1 as string)
          .downloadToBuffer(),
      ),
    )
    assert.deepEqual((await copy.getProperties()).metadata, { why: 'before-update' })
    // The primary endpoint's name reads the replica too (what the SDK's secondaryHost retries send).
    assert.ok((await download(disk(secondary(ACCOUNT)))).equals(await download(disk(primary()))))
    const stats = await secondary().getStatistics()
    assert.equal(stats.geoReplication?.status, 'live')
    const last = stats.geoReplication?.lastSyncOn?.getTime() ?? 0
    // To the second; a background round may have moved it on since.
    assert.ok(last >= Math.floor(round.syncTime / 1000) * 1000 && last <= Date.now(), `LastSyncTime ${last}`)
    assert.ok(round.syncTime >= before)
    const shown = (await ok(west.url, ['account', 'replication', ACCOUNT])) as {
      role: string
      status: string
    }
    assert.deepEqual([shown.role, shown.status], ['secondary', 'live'])
    // The primary serves no stats (Azure answers them on the secondary endpoint only).
    assert.deepEqual(await azureCode(primary().getStatistics()), { status: 403, code: 'FeatureNotSupported' })
  })

  it('the secondary never accepts a client write: blob API, management API, CLI, nor a replication message out of order', async () => {
    for (const svc of [secondary(), secondary(ACCOUNT)]) {
      assert.deepEqual(await azureCode(svc.createContainer('other')), {
        status: 403,
        code: 'WriteOperationNotSupportedOnSecondary',
      })
      assert.deepEqual(await azureCode(disk(svc).uploadPages(Buffer.alloc(512, 1), 0, 512)), {
        status: 403,
        code: 'WriteOperationNotSupportedOnSecondary',
      })
      assert.deepEqual(await azureCode(disk(svc).delete({ deleteSnapshots: 'include' })), {
        status: 403,
        code: 'WriteOperationNotSupportedOnSecondary',
      })
    }
    const put = await fetch(`${west.url}/api/v1/accounts/${ACCOUNT}/containers/vms/disks/os/pages?offset=0`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${west.token}`, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(512, 1),
    })
    assert.equal(put.status, 409)
    assert.equal(((await put.json()) as { error: { code: string } }).error.code, 'AccountIsReplica')
    const del = await cairnAt(west.url, ['account', 'delete', ACCOUNT, '--force'])
    assert.equal(del.code, EXIT.conflict, del.stderr)
    assert.match(del.stderr, /AccountIsReplica/)
    // A well-formed, authenticated pages message of an old point (a replay) is refused and changes nothing.
    const data = Buffer.alloc(512, 0xee)
    const header = Buffer.from(
      JSON.stringify({
        kind: 'pages',
        account: ACCOUNT,
        container: 'vms',
        disk: 'os',
        target: '2000-01-01T00:00:00.0000000Z',
        plan: createHash('sha256').update('a plan').digest('hex'),
        chunk: 0,
        ranges: [{ start: 0, end: 512 }],
        clears: [],
        crc32: crc32(data),
      }),
    )
    const length = Buffer.alloc(4)
    length.writeUInt32LE(header.length)
    const stray = await fetch(`${west.url}/api/v1/geo/disks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${siteToken}`, 'content-type': 'application/octet-stream' },
      body: Buffer.concat([Buffer.from('CGD1'), length, header, data]),
    })
    assert.equal(stray.status, 409)
    assert.equal(((await stray.json()) as { error: { code: string } }).error.code, 'ReplicationRefused')
    assert.ok((await download(disk(secondary()))).equals(await download(disk(primary()))))
  })

  it('a stopped secondary catches up byte-exact after it restarts, writes, clears and resizes included', async () => {
    await west.stop()
    await disk(primary()).uploadPages(randomBytes(3 * MiB), 4 * MiB, 3 * MiB)
    await disk(primary()).clearPages(MiB, MiB)
    await disk(primary()).resize(12 * MiB)
    await disk(primary()).uploadPages(randomBytes(MiB), 10 * MiB, MiB)
    await disk(primary(), 'new').create(MiB)
    await disk(primary(), 'new').uploadPages(randomBytes(MiB), 0, MiB)
    const down = await api(east, 'POST', `/api/v1/accounts/${ACCOUNT}/replication/sync`)
    assert.equal(down.status, 503, 'the secondary cannot be reached')
    const shown = (await (await api(east, 'GET', `/api/v1/accounts/${ACCOUNT}/replication`)).json()) as {
      lastError?: string
    }
    assert.ok(shown.lastError, 'the primary reports the broken link')

    west = await startService(westArgs(), { data: west.data })
    assert.equal((await api(east, 'POST', `/api/v1/accounts/${ACCOUNT}/replication/sync`)).status, 200)
    for (const name of ['os', 'data', 'new'])
      assert.ok((await download(disk(secondary(), name))).equals(await download(disk(primary(), name))), name)
  })

  it('with the primary and its data folder gone, the SDK reads through secondaryHost, failover states the loss window, and the SDK writes to the new primary', async () => {
    const synced = await download(disk(primary()))
    // A write the secondary never gets: inside the data loss window.
    await disk(primary()).uploadPages(Buffer.alloc(MiB, 9), 0, MiB)
    await east.stop('SIGKILL')
    rmSync(east.data, { recursive: true, force: true })

    const fallback = new BlobServiceClient(`http://127.0.0.1:${blobPort}/${ACCOUNT}`, cred(), {
      retryOptions: { secondaryHost: '127.0.0.2', maxTries: 4, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
    })
    assert.ok(
      (await download(disk(fallback))).equals(synced),
      'the SDK read the replica after the primary failed',
    )

    const report = (await ok(west.url, ['account', 'failover', ACCOUNT])) as {
      role: string
      lastSyncTime: string
      dataLossWindowSeconds: number
      failedOverAt: string
    }
    assert.equal(report.role, 'primary')
    assert.ok(Date.parse(report.lastSyncTime) <= Date.parse(report.failedOverAt))
    assert.ok(report.dataLossWindowSeconds >= 0)
    const again = await api(west, 'POST', `/api/v1/accounts/${ACCOUNT}/failover`)
    assert.equal(again.status, 409, 'a second failover has nothing to fail over')

    const now = new BlobServiceClient(`http://127.0.0.2:${blobPort}/${ACCOUNT}`, cred(), {
      retryOptions: { maxTries: 1 },
    })
    assert.ok((await download(disk(now))).equals(synced))
    await disk(now).uploadPages(Buffer.alloc(512, 5), 0, 512)
    await now.createContainer('after')
    assert.equal((await download(disk(now)))[0], 5)
    assert.deepEqual(await azureCode(secondary().getStatistics()), { status: 404, code: 'ResourceNotFound' })
  })
})
