// Every Put Page the blob API acknowledged survives kill -9 of its process, with many in flight: group
// commit (one fdatasync for several waiting Put Pages, and overlapping rounds, _segment-log.ts) must
// never answer a Put Page before its bytes and every record before them are written and synced.
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
import { LogDiskStore } from '../src/diskstore/index.js'

const KILLS = Number(process.env.CAIRN_BLOB_KILLS ?? 2)
/** 256 KiB Put Pages (whole 4 KiB blocks: written past the page cache, as 4 MiB ones are). */
const PAGE = 256 * 1024
const LANES = 8
/** Pages per lane: each lane rewrites its own pages in turn, with a new version each time. */
const PAGES_PER_LANE = 4
const ref = { account: DEVELOPMENT_ACCOUNT.name, container: 'kill', disk: 'disk.vhd' }

/** A page's bytes for one version: every 8 bytes hold the page number and the version. */
function pageData(page: number, version: number): Buffer {
  const b = Buffer.allocUnsafe(PAGE)
  for (let o = 0; o < PAGE; o += 8) {
    b.writeUInt32LE(page, o)
    b.writeUInt32LE(version, o + 4)
  }
  return b
}

/** Uploads until the process is killed; answers, per page, the last version acknowledged. */
async function uploadUntilKilled(dir: string, killAfter: number): Promise<Map<number, number>> {
  const script = fileURLToPath(new URL('./_blob-api-child.js', import.meta.url))
  const child = spawn(process.execPath, [script, dir], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const acked = new Map<number, number>()
  try {
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const port = Number((await lines.next()).value)
    const credential = new StorageSharedKeyCredential(DEVELOPMENT_ACCOUNT.name, DEVELOPMENT_ACCOUNT.key)
    const service = new BlobServiceClient(
      `http://127.0.0.1:${port}/${DEVELOPMENT_ACCOUNT.name}`,
      credential,
      {
        retryOptions: { maxTries: 1 },
      },
    )
    const container = service.getContainerClient(ref.container)
    await container.create()
    const blob = container.getPageBlobClient(ref.disk)
    await blob.create(LANES * PAGES_PER_LANE * PAGE)
    let answered = 0
    let killed = false
    const lane = async (l: number) => {
      for (let version = 1; !killed; version++) {
        const page = l * PAGES_PER_LANE + (version % PAGES_PER_LANE)
        try {
          await blob.uploadPages(pageData(page, version), page * PAGE, PAGE)
        } catch (err) {
          if (killed) return
          throw err
        }
        acked.set(page, version)
        if (++answered === killAfter) {
          killed = true
          child.kill('SIGKILL')
        }
      }
    }
    await Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)))
    return acked
  } finally {
    child.kill('SIGKILL')
    await exited
  }
}

describe('blob API under kill -9', () => {
  it(`keeps every acknowledged Put Page across ${KILLS} kill -9 with ${LANES} in flight`, async () => {
    for (let round = 0; round < KILLS; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-blobkill-'))
      try {
        // Killed after 40 to 160 answers, while the other lanes' Put Pages are on their way.
        const acked = await uploadUntilKilled(dir, 40 + ((round * 53) % 120))
        const store = await LogDiskStore.open(dir)
        try {
          for (const [page, version] of acked) {
            const got = await store.read(ref, page * PAGE, PAGE)
            // The acknowledged version, or the next one of that page's lane if it was on its way
            // (a lane writes its pages in turn, so that is version + PAGES_PER_LANE).
            const seen = got.readUInt32LE(4)
            const whole = got.equals(pageData(page, seen))
            assert.ok(
              whole && (seen === version || seen === version + PAGES_PER_LANE),
              `round ${round}: page ${page} was acknowledged at version ${version}; after kill -9 it holds ${whole ? `version ${seen}` : 'torn or foreign bytes'}`,
            )
          }
        } finally {
          await store.close()
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  })
})
