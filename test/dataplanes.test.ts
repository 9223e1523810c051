import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { cairn, startService } from './_service.js'

const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('cairn serve with every data plane', () => {
  it('a disk made with the CLI, written over NBD, reads back the same through the Azure SDK and the CLI', async () => {
    const svc = await startService()
    const dir = mkdtempSync(join(tmpdir(), 'cairn-planes-'))
    try {
      assert.ok(svc.listeners.blob && svc.listeners.nbd, JSON.stringify(svc.listeners))
      const made = cairn(['disk', 'create', 'shared', '--size', '8MiB', '--url', svc.url])
      assert.equal(made.status, 0, made.stderr)

      // Write 1 MiB at 2 MiB through NBD with nbdcopy from a raw file of the disk's size.
      const image = Buffer.alloc(8 * 1024 * 1024)
      const payload = randomBytes(1024 * 1024)
      payload.copy(image, 2 * 1024 * 1024)
      writeFileSync(join(dir, 'in.raw'), image)
      const uri = `${svc.listeners.nbd}/devstoreaccount1/disks/shared`
      const copy = spawnSync('nbdcopy', [join(dir, 'in.raw'), uri], { encoding: 'utf8' })
      assert.equal(copy.status, 0, copy.stderr)

      // The Azure SDK sees the same bytes and the written range.
      const keys = JSON.parse(
        cairn(['account', 'keys', 'devstoreaccount1', '--json', '--url', svc.url]).stdout,
      )
      assert.equal(keys.key1, KEY)
      const service = BlobServiceClient.fromConnectionString(keys.connectionString)
      const blob = service.getContainerClient('disks').getPageBlobClient('shared')
      const cred = new StorageSharedKeyCredential('devstoreaccount1', KEY)
      assert.equal(
        (await new BlobServiceClient(`${svc.listeners.blob}/devstoreaccount1`, cred).getAccountInfo())
          .skuName !== undefined,
        true,
      )
      const got = await blob.downloadToBuffer(2 * 1024 * 1024, 1024 * 1024)
      assert.equal(sha(got), sha(payload))
      const props = await blob.getProperties()
      assert.equal(props.contentLength, 8 * 1024 * 1024)

      // A page written through the SDK is visible to NBD clients and the CLI.
      const page = randomBytes(512)
      await blob.uploadPages(page, 0, 512)
      const out = join(dir, 'out.raw')
      const back = spawnSync('nbdcopy', [uri, out], { encoding: 'utf8' })
      assert.equal(back.status, 0, back.stderr)
      const whole = readFileSync(out)
      assert.equal(sha(whole.subarray(0, 512)), sha(page))
      assert.equal(sha(whole.subarray(2 * 1024 * 1024, 3 * 1024 * 1024)), sha(payload))
      const read = cairn([
        'disk',
        'read',
        'shared',
        '--offset',
        '0',
        '--length',
        '512',
        '--output',
        join(dir, 'p.bin'),
        '--url',
        svc.url,
      ])
      assert.equal(read.status, 0, read.stderr)
      assert.equal(sha(readFileSync(join(dir, 'p.bin'))), sha(page))
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
