// The Azure CLI (Debian azure-cli 2.45) and the Azure Storage SDK for Python v12 (Debian python3-azure,
// under /usr/bin/python3) run a page-blob scenario against `cairn serve`: upload, snapshot, managed-disk
// diff, incremental copy (az builds a host-style source URL with an https-only SAS), tags, SAS; tags
// survive a restart of the service.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { startService } from './_service.js'

const SCRIPT = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../test/testdata/python-page-blob-scenario.py',
)
const ACCOUNT = 'devstoreaccount1'
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

/** Runs a command without blocking the event loop (the service runs in a child of this process). */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => {
      stdout += d
    })
    p.stderr.on('data', (d) => {
      stderr += d
    })
    p.on('error', reject)
    p.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }))
  })
}

describe('Azure CLI and Python SDK against the blob API', () => {
  it('az storage blob: upload with tags, snapshot, incremental copy from a host-style URL, tag conditions, SAS download', async () => {
    const svc = await startService()
    const dir = mkdtempSync(join(tmpdir(), 'cairn-az-'))
    try {
      const endpoint = `${svc.listeners.blob}/${ACCOUNT}`
      const cs = `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};BlobEndpoint=${endpoint};`
      const env = {
        AZURE_CONFIG_DIR: join(dir, 'azure'),
        AZURE_CORE_COLLECT_TELEMETRY: 'false',
        AZURE_CORE_ONLY_SHOW_ERRORS: 'true',
      }
      const az = async (...args: string[]) => {
        const r = await run('az', ['storage', ...args, '--connection-string', cs, '-o', 'json'], env)
        return { ...r, json: r.code === 0 && r.stdout.trim() !== '' ? JSON.parse(r.stdout) : undefined }
      }
      const image = join(dir, 'disk.img')
      const data = randomBytes(1024 * 1024)
      writeFileSync(image, data)

      const created = await az('container', 'create', '-n', 'azdisks')
      assert.equal(created.code, 0, created.stderr)
      assert.equal(created.json.created, true)
      const up = await az(
        'blob',
        'upload',
        '-c',
        'azdisks',
        '-n',
        'disk.vhd',
        '-f',
        image,
        '--type',
        'page',
        '--tags',
        'project=cairn',
        'tier=gold',
      )
      assert.equal(up.code, 0, up.stderr)
      const snap = await az('blob', 'snapshot', '-c', 'azdisks', '-n', 'disk.vhd')
      assert.equal(snap.code, 0, snap.stderr)
      const snapshot = snap.json.snapshot as string
      assert.match(snapshot, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/)

      // az makes the source URL https://devstoreaccount1.blob.core.windows.net/… with an https-only SAS.
      const copy = await az(
        'blob',
        'incremental-copy',
        'start',
        '--source-container',
        'azdisks',
        '--source-blob',
        'disk.vhd',
        '--source-snapshot',
        snapshot,
        '--source-account-name',
        ACCOUNT,
        '--source-account-key',
        KEY,
        '-c',
        'azdisks',
        '-b',
        'backup.vhd',
      )
      assert.equal(copy.code, 0, copy.stderr)
      assert.equal(copy.json.status, 'success')

      const shown = await az(
        'blob',
        'show',
        '-c',
        'azdisks',
        '-n',
        'disk.vhd',
        '--tags-condition',
        `"tier"='gold'`,
      )
      assert.equal(shown.code, 0, shown.stderr)
      assert.equal(shown.json.tagCount, 2)
      assert.equal(shown.json.properties.blobType, 'PageBlob')
      const refused = await az(
        'blob',
        'show',
        '-c',
        'azdisks',
        '-n',
        'disk.vhd',
        '--tags-condition',
        `"tier"='silver'`,
      )
      assert.notEqual(refused.code, 0)
      assert.match(refused.stderr, /ConditionNotMet/)

      const backup = await az('blob', 'show', '-c', 'azdisks', '-n', 'backup.vhd')
      assert.equal(backup.code, 0, backup.stderr)
      assert.equal(backup.json.properties.copy.status, 'success')
      assert.doesNotMatch(backup.json.properties.copy.source, /sig=/)

      const sas = await az(
        'blob',
        'generate-sas',
        '-c',
        'azdisks',
        '-n',
        'disk.vhd',
        '--permissions',
        'r',
        '--expiry',
        new Date(Date.now() + 3600_000).toISOString().slice(0, 16) + 'Z',
      )
      assert.equal(sas.code, 0, sas.stderr)
      const out = join(dir, 'download.img')
      const down = await run(
        'az',
        [
          'storage',
          'blob',
          'download',
          '-c',
          'azdisks',
          '-n',
          'disk.vhd',
          '-f',
          out,
          '--account-name',
          ACCOUNT,
          '--sas-token',
          sas.json as string,
          '--blob-endpoint',
          endpoint,
          '-o',
          'none',
        ],
        env,
      )
      assert.equal(down.code, 0, down.stderr)
      assert.ok(readFileSync(out).equals(data), 'the SAS download holds the uploaded bytes')
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('Python SDK v12: managed-disk diff, incremental copy, tags, Find Blobs, SAS; tags survive a restart', async () => {
    const data = mkdtempSync(join(tmpdir(), 'cairn-py-'))
    let svc = await startService([], { data })
    try {
      const endpoint = `${svc.listeners.blob}/${ACCOUNT}`
      const cs = `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};BlobEndpoint=${endpoint};`
      const r = await run('/usr/bin/python3', [SCRIPT, cs, 'pydisks'], {})
      assert.equal(r.code, 0, r.stderr)
      const seen = JSON.parse(r.stdout) as Record<string, unknown>
      const diff = { pages: [{ start: 8192, end: 8703 }], cleared: [{ start: 0, end: 511 }] }
      assert.deepEqual(seen.managedDiff, diff, 'get_page_range_diff_for_managed_disk gives the exact diff')
      assert.deepEqual(seen.diff, diff)
      assert.deepEqual(seen.incrementalCopy, {
        status: 'success',
        second: 'success',
        destinationSnapshot: true,
        bytes: true,
      })
      assert.deepEqual(seen.tags, { vm: 'web1', tier: 'gold' })
      assert.equal(seen.tagCount, 2)
      assert.deepEqual(seen.found, ['pydisks/disk.vhd'])
      assert.deepEqual(seen.foundInContainer, ['disk.vhd'])
      assert.deepEqual(seen.ifTags, [412, 'ConditionNotMet'])
      assert.equal(seen.sasRead, true)
      assert.deepEqual(seen.sasExpired, [403, 'AuthenticationFailed'])

      await svc.stop()
      svc = await startService([], { data })
      const client = new BlobServiceClient(
        `${svc.listeners.blob}/${ACCOUNT}`,
        new StorageSharedKeyCredential(ACCOUNT, KEY),
        { retryOptions: { maxTries: 1 } },
      )
      const disk = client.getContainerClient('pydisks').getPageBlobClient('disk.vhd')
      assert.deepEqual((await disk.getTags()).tags, { vm: 'web1', tier: 'gold' })
      const found: string[] = []
      for await (const b of client.findBlobsByTags(`"vm"='web1'`)) found.push(b.name)
      assert.deepEqual(found, ['disk.vhd'])
    } finally {
      await svc.dispose()
      rmSync(data, { recursive: true, force: true })
    }
  })
})
