import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { BlobServiceClient, type RestError, StorageSharedKeyCredential } from '@azure/storage-blob'
import { DEVELOPMENT_ACCOUNT } from '../src/blobapi/index.js'
import * as P from '../src/nbd/_protocol.js'
import { RawClient } from '../src/nbd/_raw-client.js'
import { runner } from './_disk-cli.js'
import { apiFetch, type RunningService, startService } from './_service.js'
import { mountSmallFs, smallFsUnavailable } from './_small-fs.js'

const MiB = 1024 * 1024
const skip = smallFsUnavailable()

async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

const fullLines = (svc: RunningService) =>
  svc.logs.filter((l) => l.includes('"msg":"disk store is full')).length

describe('a full file system under `cairn serve`', { skip }, () => {
  it('a failed write is never visible, deletes work, writes resume on their own, and each interface says why', async () => {
    const fs = mountSmallFs(96)
    let svc: RunningService | undefined
    try {
      const data = join(fs.dir, 'data')
      svc = await startService([], { data })
      const credential = new StorageSharedKeyCredential(DEVELOPMENT_ACCOUNT.name, DEVELOPMENT_ACCOUNT.key)
      // The SDK's default retry policy: it retries 500 and 503, which a full disk must not get.
      const blobs = () =>
        new BlobServiceClient(
          `${svc!.listeners.blob}/${DEVELOPMENT_ACCOUNT.name}`,
          credential,
        ).getContainerClient('disks')
      const os = blobs().getPageBlobClient('os')
      await os.create(32 * MiB)
      const before = randomBytes(4 * MiB)
      await os.uploadPages(before, 0, 4 * MiB)
      const scratch = blobs().getPageBlobClient('scratch')
      await scratch.create(32 * MiB)
      for (let i = 0; i < 6; i++) await scratch.uploadPages(randomBytes(4 * MiB), i * 4 * MiB, 4 * MiB)
      const snap = await scratch.createSnapshot()

      fs.fill()
      // The service counts each blob request it answers (the metrics an operator scrapes): one per write.
      const refused507 = async () => {
        const text = await (await apiFetch(`${svc!.url}/metrics`)).text()
        return [...text.matchAll(/^cairn_blob_requests_total\{[^}]*status="507"[^}]*\} (\d+)$/gm)].reduce(
          (n, m) => n + Number(m[1]),
          0,
        )
      }
      for (let i = 0; i < 3; i++) {
        await assert.rejects(os.uploadPages(Buffer.alloc(4 * MiB, 0x22), 0, 4 * MiB), (e: RestError) => {
          assert.equal(e.statusCode, 507)
          assert.equal(e.code, 'InsufficientStorage')
          return true
        })
        assert.equal(await refused507(), i + 1, 'the SDK did not retry: one request per write')
      }
      assert.deepEqual(await os.downloadToBuffer(0, 4 * MiB), before, 'the failed write is not visible')

      // NBD: ENOSPC. The management API and the CLI: StoreFull.
      const nbd = await RawClient.open(Number(new URL(svc.listeners.nbd!).port), 'devstoreaccount1/disks/os')
      const reply = await nbd.request(P.CMD_WRITE, 0, 64 * 1024, {
        flags: P.CMD_FLAG_FUA,
        payload: Buffer.alloc(64 * 1024, 0x33),
      })
      assert.equal(reply.error, P.ENOSPC)
      await nbd.disconnect()
      const { run } = runner(svc.url)
      const refused = run('disk', 'create', 'another', '--size', '8MiB', '--json')
      assert.equal(refused.status, 5, refused.stdout + refused.stderr)
      assert.match(refused.stdout + refused.stderr, /StoreFull/)
      const api = await apiFetch(`${svc.url}/api/v1/status`)
      const status = (await api.json()) as { status: string; diskStore: { state: string; message?: string } }
      assert.equal(status.status, 'degraded')
      assert.equal(status.diskStore.state, 'full')
      assert.deepEqual(await (await apiFetch(`${svc.url}/healthz`)).json(), { status: 'degraded' })
      const shown = run('status')
      assert.equal(shown.status, 0, shown.stderr)
      assert.match(shown.stdout, /disk store:\s+full/)
      assert.equal(fullLines(svc), 1, 'logged once for the episode')

      // Deletes work while full; they free the space, and writes resume without a restart.
      await blobs().getPageBlobClient('scratch').withSnapshot(snap.snapshot!).delete()
      await blobs().getPageBlobClient('scratch').delete({ deleteSnapshots: 'include' })
      await until('the store has room again', async () => {
        const s = (await (await apiFetch(`${svc!.url}/api/v1/status`)).json()) as { status: string }
        return s.status === 'ok'
      })
      assert.equal(svc.logs.filter((l) => l.includes('"msg":"disk store has space again')).length, 1)
      const after = randomBytes(4 * MiB)
      await os.uploadPages(after, 8 * MiB, 4 * MiB)
      assert.deepEqual(await os.downloadToBuffer(8 * MiB, 4 * MiB), after)
      assert.equal(fullLines(svc), 1, 'still one line for the one episode')

      // After a restart: the failed writes stay invisible, the later one is there.
      await svc.stop()
      svc = await startService([], { data })
      const os2 = blobs().getPageBlobClient('os')
      assert.deepEqual(await os2.downloadToBuffer(0, 4 * MiB), before, 'not visible after a restart either')
      assert.deepEqual(await os2.downloadToBuffer(8 * MiB, 4 * MiB), after)
    } finally {
      await svc?.stop()
      fs.dispose()
    }
  })

  it('a backup into a full vault fails with VaultFull, the vault verifies clean, and the next backup succeeds once space returns', async () => {
    const fs = mountSmallFs(96)
    const vfs = mountSmallFs(64)
    let svc: RunningService | undefined
    try {
      svc = await startService([], { data: join(fs.dir, 'data') })
      const { run, ok } = runner(svc.url)
      ok('vault', 'create', 'main', '--location', join(vfs.dir, 'main'))
      ok('disk', 'create', 'web', '--size', '32MiB')
      const image = randomBytes(24 * MiB)
      const credential = new StorageSharedKeyCredential(DEVELOPMENT_ACCOUNT.name, DEVELOPMENT_ACCOUNT.key)
      const web = new BlobServiceClient(`${svc.listeners.blob}/${DEVELOPMENT_ACCOUNT.name}`, credential)
        .getContainerClient('disks')
        .getPageBlobClient('web')
      for (let i = 0; i < 6; i++)
        await web.uploadPages(image.subarray(i * 4 * MiB, (i + 1) * 4 * MiB), i * 4 * MiB, 4 * MiB)
      // Leave the vault's file system about 8 MiB: random data does not compress.
      writeFileSync(join(vfs.dir, 'filler'), Buffer.alloc(vfs.free() - 8 * MiB, 1))

      const failed = run('backup', 'disk', 'web', '--vault', 'main', '--json')
      assert.equal(failed.status, 5, failed.stdout + failed.stderr)
      assert.match(failed.stdout + failed.stderr, /VaultFull/)
      assert.doesNotMatch(failed.stdout + failed.stderr, /Internal/)
      const verify = ok('vault', 'verify', 'main', '--json').json() as { problems: unknown[] }
      assert.deepEqual(verify.problems, [])
      assert.deepEqual(ok('rp', 'list', '--vault', 'main', '--json').json(), [])

      vfs.unfill()
      const rp = ok('backup', 'disk', 'web', '--vault', 'main', '--json').json() as { id: string }
      const again = ok('vault', 'verify', 'main', '--json').json() as { problems: unknown[] }
      assert.deepEqual(again.problems, [])
      ok('restore', 'disk', '--vault', 'main', '--rp', rp.id, '--to', 'web-restored')
      const back = new BlobServiceClient(`${svc.listeners.blob}/${DEVELOPMENT_ACCOUNT.name}`, credential)
        .getContainerClient('disks')
        .getPageBlobClient('web-restored')
      assert.deepEqual(await back.downloadToBuffer(0, 24 * MiB), image)
    } finally {
      await svc?.stop()
      vfs.dispose()
      fs.dispose()
    }
  })
})
