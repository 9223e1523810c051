// Uploads through the blob API reuse the memory of received bodies (src/util/retain-freed-heap.ts):
// node:http copies every body chunk into a fresh buffer, and with glibc's defaults the freed heap went
// back to the system at once, so every page of every body was faulted in again. The same upload runs
// against a server with the default (CAIRN_RETAIN_HEAP=0) as the control that shows what is measured.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { DEVELOPMENT_ACCOUNT } from '../src/blobapi/index.js'
import { retainFreedHeap } from '../src/util/index.js'

const PAGE = 4 * 1024 * 1024
/** Bytes uploaded per round; the first rounds warm the heap up, the last ones are counted. */
const ROUND = 64 * 1024 * 1024
const ROUNDS = 4
const COUNTED = 2
/** Put Pages in flight. */
const LANES = 8

/** Minor page faults of the blob API's process per MiB uploaded in the counted rounds. */
async function faultsPerMiB(env: NodeJS.ProcessEnv): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-blobheap-'))
  const script = fileURLToPath(new URL('./_blob-api-child.js', import.meta.url))
  const child = spawn(process.execPath, [script, dir], { stdio: ['pipe', 'pipe', 'inherit'], env })
  try {
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const next = async () => Number((await lines.next()).value)
    const port = await next()
    const credential = new StorageSharedKeyCredential(DEVELOPMENT_ACCOUNT.name, DEVELOPMENT_ACCOUNT.key)
    const service = new BlobServiceClient(
      `http://127.0.0.1:${port}/${DEVELOPMENT_ACCOUNT.name}`,
      credential,
      {
        retryOptions: { maxTries: 1 },
      },
    )
    const container = service.getContainerClient('heap')
    await container.create()
    const blob = container.getPageBlobClient('disk.vhd')
    await blob.create(ROUND)
    const data = Buffer.alloc(PAGE, 0x5a)
    let counted = 0
    for (let round = 0; round < ROUNDS; round++) {
      child.stdin!.write('\n')
      const before = await next()
      // Several Put Pages in flight, as a client uploading a disk keeps them.
      let page = 0
      const lane = async () => {
        for (let p = page++; p < ROUND / PAGE; p = page++) await blob.uploadPages(data, p * PAGE, PAGE)
      }
      await Promise.all(Array.from({ length: LANES }, lane))
      child.stdin!.write('\n')
      if (round >= ROUNDS - COUNTED) counted += (await next()) - before
    }
    return counted / ((COUNTED * ROUND) / 1024 / 1024)
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.stdin!.end()
    await exited
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('blob API uploads and the heap', () => {
  it('a warm upload faults in a fraction of the pages it does with the C library defaults', async (t) => {
    if (!retainFreedHeap()) {
      t.skip('native/heap.c was not built or the C library is not glibc')
      return
    }
    // Through node:http's body reading (Put Page bodies are otherwise read off the socket into the page
    // buffer, without the chunk copies this is about: src/blobapi/_direct-body.ts).
    const viaHttp = { ...process.env, CAIRN_BLOB_DIRECT_BODY: '0' }
    // Measured under load: 12-17 faults per MiB retained against 53-202 with the defaults (a page is
    // 4 KiB, so 256 per MiB is every page of every body). Since the page buffers lie on huge pages
    // their own faults are gone from both sides, and a quiet fresh-clone run measured 24.9 against 38.7:
    // the margin asked is a quarter, well above the noise, well below what the retained heap saves.
    // Page faults move with the collector's timing on a loaded machine (37.3 against 42.9 once, at load
    // 22), so a pair that misses the margin is measured again, up to three pairs: a heap that is not
    // retained misses it every time.
    const pairs: string[] = []
    for (let pair = 0; pair < 3; pair++) {
      const retained = await faultsPerMiB({ ...viaHttp, CAIRN_RETAIN_HEAP: '1' })
      const defaults = await faultsPerMiB({ ...viaHttp, CAIRN_RETAIN_HEAP: '0' })
      pairs.push(`${retained.toFixed(1)} retained, ${defaults.toFixed(1)} with the defaults`)
      t.diagnostic(`faults per MiB: ${pairs.at(-1)}`)
      if (retained * 1.25 < defaults) return
    }
    assert.fail(
      `uploads faulted as many pages per MiB with the freed heap retained as without: ${pairs.join('; ')}`,
    )
  })
})
