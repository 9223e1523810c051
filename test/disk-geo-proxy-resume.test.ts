import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { cairnAt, type RunningService, startService } from './_service.js'
import { startTcpProxy, type TcpProxy } from './_tcp-proxy.js'

// Issue 17: a disk point cut mid-ship resumes between two real `cairn serve` on loopback. The primary
// reaches its paired secondary through a TCP proxy that drops the link after a set number of bytes of
// a big point; after reconnecting, only the chunks the secondary lacks travel, and the replica ends
// byte-exact. CAIRN_GEO_RESUME_MIB sets the point's size (default 64 MiB: eight 8 MiB chunks). The link
// drops after 80 % of it went up: with four chunks in flight (each under 8 MiB sent), at least three
// chunks had all their bytes through by then.

const ACCOUNT = 'georesume'
const MiB = 1024 * 1024
const CHUNK = 8 * MiB

async function ok(url: string, args: string[]): Promise<unknown> {
  const r = await cairnAt(url, args)
  assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as unknown
}

describe('a disk point cut mid-ship through a proxy between two services', () => {
  it('the secondary keeps showing its last complete point while the link is down, and after reconnecting only the chunks it lacks travel and the replica ends byte-exact', async () => {
    const pointBytes = Number(process.env.CAIRN_GEO_RESUME_MIB ?? 64) * MiB
    let east: RunningService | undefined
    let west: RunningService | undefined
    let proxy: TcpProxy | undefined
    try {
      // Long intervals: only `account sync` ships, so the test decides when the link drops. The SDK
      // clients never retry (maxTries 1): idle connections stay two minutes, so a read never reuses one
      // the service is closing at its idle deadline (a "socket hang up" under load). A connection that
      // carried a Put Page body is held only to one second before the header timeout (docs/blobapi.md),
      // so that goes past two minutes too.
      const args = ['--geo-interval', '3600', '--http-idle-timeout', '120', '--http-header-timeout', '130']
      ;[east, west] = await Promise.all([startService(args), startService(args)])
      proxy = await startTcpProxy(west.url)
      const made = await fetch(`${west.url}/api/v1/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${west.token}` },
        body: JSON.stringify({ role: 'Site Peer', name: 'pair-east' }),
      })
      assert.equal(made.status, 201)
      const siteToken = ((await made.json()) as { token: string }).token
      await ok(east.url, ['pair', 'add', 'west', '--peer-url', proxy.url, '--token', siteToken])
      await ok(east.url, ['account', 'create', ACCOUNT, '--redundancy', 'RA-GRS', '--pair', 'west'])
      const { key1 } = (await ok(east.url, ['account', 'keys', ACCOUNT])) as { key1: string }
      const cred = new StorageSharedKeyCredential(ACCOUNT, key1)
      const opts = { retryOptions: { maxTries: 1 } }
      const primary = new BlobServiceClient(`${east.listeners.blob}/${ACCOUNT}`, cred, opts)
      const secondary = new BlobServiceClient(`${west.listeners.blob}/${ACCOUNT}-secondary`, cred, opts)
      const disk = (svc: BlobServiceClient) => svc.getContainerClient('vms').getPageBlobClient('os')
      await primary.createContainer('vms')
      await disk(primary).create(pointBytes + 4 * MiB)
      await disk(primary).uploadPages(Buffer.alloc(4 * MiB, 7), 0, 4 * MiB)
      await ok(east.url, ['account', 'sync', ACCOUNT])
      const first = await disk(secondary).downloadToBuffer()
      assert.ok(first.equals(await disk(primary).downloadToBuffer()), 'the first point arrived')

      // The big point: every byte changes.
      for (let at = 0; at < pointBytes; at += 4 * MiB)
        await disk(primary).uploadPages(randomBytes(4 * MiB), at, 4 * MiB)
      const dropped = proxy.cutAfter(Math.floor(pointBytes * 0.8))
      const cutShort = await cairnAt(east.url, ['account', 'sync', ACCOUNT])
      assert.notEqual(cutShort.code, 0, 'the round fails when the link drops')
      await dropped
      // In between: clients of ACCOUNT-secondary read the last complete point, never part of the new one.
      assert.ok((await disk(secondary).downloadToBuffer()).equals(first), 'no partial point is visible')
      const state = (await (
        await fetch(`${west.url}/api/v1/geo/disks/${ACCOUNT}`, {
          headers: { authorization: `Bearer ${siteToken}` },
        })
      ).json()) as { applying?: Record<string, { chunks: number[] }> }
      const held = state.applying?.['vms/os']?.chunks.length ?? 0
      assert.ok(held >= 2, `the secondary holds part of the point (${held} chunks)`)
      assert.ok((await disk(secondary).downloadToBuffer()).equals(first), 'still the last complete point')

      proxy.reconnect()
      const before = proxy.bytesUp
      const report = (await ok(east.url, ['account', 'sync', ACCOUNT])) as {
        changedBytes: number
        resumedBytes: number
      }
      const after = proxy.bytesUp - before
      assert.equal(report.changedBytes, pointBytes)
      assert.equal(report.resumedBytes, held * CHUNK, 'every chunk the secondary held was skipped')
      // What travels after the reconnect: the chunks it lacked and the messages' headers, HTTP included.
      assert.ok(
        after <= pointBytes - report.resumedBytes + MiB,
        `${after} bytes after the reconnect for ${pointBytes - report.resumedBytes} bytes of missing chunks`,
      )
      assert.ok(after <= pointBytes * 0.8, `${after} bytes after the reconnect for a point of ${pointBytes}`)
      assert.ok(
        (await disk(secondary).downloadToBuffer()).equals(await disk(primary).downloadToBuffer()),
        'the replica ends byte-exact with the primary',
      )
    } finally {
      await proxy?.close()
      await Promise.all([east?.dispose(), west?.dispose()])
    }
  })
})
