// A running blob API over a real LogDiskStore in a temporary folder, with SDK clients for the development
// account, for the end-to-end tests of the blob API.

import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobServiceClient, RestError, StorageSharedKeyCredential } from '@azure/storage-blob'
import { BlobApiServer, DEVELOPMENT_ACCOUNT } from '../src/blobapi/index.js'
import { LogDiskStore } from '../src/diskstore/index.js'

/** One running service for a test file. */
export interface BlobApiHarness {
  store: LogDiskStore
  server: BlobApiServer
  /** `http://127.0.0.1:PORT` */
  url: string
  /** `http://127.0.0.1:PORT/devstoreaccount1` */
  accountUrl: string
  service: BlobServiceClient
  credential: StorageSharedKeyCredential
  close(): Promise<void>
}

/** Starts a blob API over a fresh store; call close() in `finally` (it removes the folder). */
export async function startBlobApi(): Promise<BlobApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-blobapi-'))
  try {
    const store = await LogDiskStore.open(dir)
    // The SDK below never retries (maxTries 1), so a keep-alive socket the server closes after its idle
    // deadline just as the client reuses it would fail a test with ECONNRESET (seen on a loaded machine,
    // where a round of requests outlasts the 5 s default); a long idle deadline takes that race away.
    const server = new BlobApiServer(store, { developmentAccount: true, limits: { idleTimeoutMs: 120_000 } })
    const port = await server.listen(0, '127.0.0.1')
    const url = `http://127.0.0.1:${port}`
    const accountUrl = `${url}/${DEVELOPMENT_ACCOUNT.name}`
    const credential = new StorageSharedKeyCredential(DEVELOPMENT_ACCOUNT.name, DEVELOPMENT_ACCOUNT.key)
    const service = new BlobServiceClient(accountUrl, credential, { retryOptions: { maxTries: 1 } })
    return {
      store,
      server,
      url,
      accountUrl,
      service,
      credential,
      async close() {
        try {
          await server.close()
          await store.close()
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** A raw request, signed with Shared Key like the SDK does unless `sign` is false. */
export async function rawRequest(
  h: BlobApiHarness,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer; sign?: boolean; key?: string } = {},
): Promise<{ status: number; headers: Headers; text: string; code: string | undefined }> {
  const headers: Record<string, string> = {
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': '2025-01-05',
    ...options.headers,
  }
  const url = new URL(`${h.accountUrl}${path}`)
  if (options.body !== undefined) headers['content-length'] = String(options.body.length)
  if (options.sign !== false) headers.authorization = sharedKey(method, url, headers, options.key)
  const res = await fetch(url, {
    method,
    headers,
    ...(options.body !== undefined ? { body: options.body } : {}),
  })
  const text = await res.text()
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? res.headers.get('x-ms-error-code') ?? undefined
  return { status: res.status, headers: res.headers, text, code }
}

/** The Authorization header of a request of the development account, signed like the SDK signs it. */
export function sharedKey(method: string, url: URL, headers: Record<string, string>, key?: string): string {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  const get = (n: string) => (n === 'content-length' && lower[n] === '0' ? '' : (lower[n] ?? ''))
  const canonicalHeaders = Object.keys(lower)
    .filter((n) => n.startsWith('x-ms-'))
    .sort()
    .map((n) => `${n}:${lower[n]}\n`)
    .join('')
  const params = [...url.searchParams.keys()].map((k) => k.toLowerCase()).sort()
  const query = params.map((k) => `\n${k}:${url.searchParams.get(k)}`).join('')
  const text = [
    method,
    ...[
      'content-encoding',
      'content-language',
      'content-length',
      'content-md5',
      'content-type',
      'date',
      'if-modified-since',
      'if-match',
      'if-none-match',
      'if-unmodified-since',
      'range',
    ].map(get),
  ].join('\n')
  const toSign = `${text}\n${canonicalHeaders}/${DEVELOPMENT_ACCOUNT.name}${url.pathname}${query}`
  const sig = createHmac('sha256', Buffer.from(key ?? DEVELOPMENT_ACCOUNT.key, 'base64'))
    .update(toSign, 'utf8')
    .digest('base64')
  return `SharedKey ${DEVELOPMENT_ACCOUNT.name}:${sig}`
}

/** Bytes with a recognisable pattern: every 512-byte page starts with its index and `seed`. */
export function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i += 4) b.writeUInt32LE(((i * 2654435761) ^ seed) >>> 0, i)
  return b
}

/** The status and Azure error code of an SDK call that must fail; anything but a RestError fails the test. */
export async function errorOf(p: Promise<unknown>): Promise<{ code: string | undefined; status: number }> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof RestError, String(err))
    return { code: err.code, status: err.statusCode ?? 0 }
  }
  assert.fail('expected the request to fail')
}
