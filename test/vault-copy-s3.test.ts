import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { S3RVER_KEY_ID, S3RVER_SECRET, sharedS3rver, storeName } from '../src/vault/_test-object-stores.js'
import { startServiceIn } from './_in-process.js'
import { cairnAt } from './_service.js'

const MiB = 1024 * 1024

describe('vault copy to and from an S3 vault (s3rver)', () => {
  it('copies a file vault into an S3 vault (full, then an incremental whose bytes at the server stay within 1.1x its new chunks), and from it into another file vault, byte-exact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-copy-s3-'))
    const server = await sharedS3rver()
    const bucket = storeName()
    const s3 = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
    })
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    /** Bytes the server holds in the bucket. */
    const stored = async (): Promise<number> => {
      let n = 0
      let token: string | undefined
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
        for (const o of page.Contents ?? []) n += o.Size ?? 0
        token = page.NextContinuationToken
      } while (token)
      return n
    }
    const service = await startServiceIn(dir, {
      importRoots: [dir],
      exportRoots: [dir],
      objectStores: { s3: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET } },
    })
    try {
      const url = service.listeners.api!
      const ok = async (args: string[]) => {
        const r = await cairnAt(url, args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      await ok(['vault', 'create', 'main'])
      const location = `s3://${bucket}/offsite?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&path-style=true`
      const created = await ok(['vault', 'create', 'cloud', '--location', location])
      assert.equal(created.backend, 's3')
      await ok(['vault', 'create', 'back'])

      const img = randomBytes(24 * MiB)
      const raw = join(dir, 'db.raw')
      await writeFile(raw, img)
      const rp1 = await ok(['backup', 'file', raw, '--vault', 'main', '--item', 'db'])
      const full = await ok(['vault', 'copy', '--from', 'main', '--to', 'cloud'])
      assert.equal(full.points[0].state, 'Copied')
      for (let i = 0; i < 32; i++) randomBytes(4096).copy(img, ((i * 4099) % 6000) * 4096)
      await writeFile(raw, img)
      const rp2 = await ok(['backup', 'file', raw, '--vault', 'main', '--item', 'db'])
      const before = await stored()
      const inc = await ok(['vault', 'copy', '--from', 'main', '--to', 'cloud'])
      const grown = (await stored()) - before
      const newBytes = rp2.disks[0].bytesNew as number
      assert.deepEqual(
        inc.points.map((p: { id: string; state: string }) => [p.id, p.state]),
        [
          [rp1.id, 'AlreadyPresent'],
          [rp2.id, 'Copied'],
        ],
      )
      assert.ok(
        grown > 0 && grown <= inc.bytesWritten,
        `the bucket grew ${grown}, the job sent ${inc.bytesWritten}`,
      )
      assert.ok(grown <= 1.1 * newBytes, `${grown} bytes at the server for ${newBytes} bytes of new chunks`)
      assert.ok(inc.bytesWritten <= 1.1 * newBytes, `${inc.bytesWritten} sent for ${newBytes}`)

      // From the S3 vault into another file vault: the chain restores byte-exact.
      const down = await ok(['vault', 'copy', '--from', 'cloud', '--to', 'back'])
      assert.equal(down.points.length, 2)
      await ok(['restore', 'file', join(dir, 'out.raw'), '--vault', 'back', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out.raw'))).equals(img))
      await ok(['restore', 'file', join(dir, 'out1.raw'), '--vault', 'cloud', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out1.raw'))).equals(img))
      assert.deepEqual((await ok(['vault', 'verify', 'cloud'])).problems, [])
    } finally {
      await service.stop()
      s3.destroy()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
