import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { readBody } from './_blob-context.js'

/** Serves one request with `readBody(req, limit)` and hands its outcome back; the client sends `send`. */
async function received(
  limit: number,
  send: (port: number) => void,
): Promise<{ body?: Buffer; error?: unknown }> {
  let outcome: Promise<{ body?: Buffer; error?: unknown }> | undefined
  const got = new Promise<IncomingMessage>((resolve) => {
    const server = createServer((req, res) => {
      outcome = readBody(req, limit).then(
        (body) => ({ body }),
        (error: unknown) => ({ error }),
      )
      void outcome.then(() => res.writeHead(204).end())
      resolve(req)
      server.close()
    })
    server.listen(0, '127.0.0.1', () => send((server.address() as AddressInfo).port))
  })
  await got
  return outcome!
}

function azureCode(err: unknown): string | undefined {
  return err instanceof CairnError ? (err.details as { azureCode?: string }).azureCode : undefined
}

/** Sends `pieces` as one request body, one write each, with or without a Content-Length. */
function post(port: number, pieces: Buffer[], contentLength: boolean): void {
  const total = pieces.reduce((n, p) => n + p.length, 0)
  const headers = contentLength ? { 'content-length': total } : { 'transfer-encoding': 'chunked' }
  const r = request({ port, host: '127.0.0.1', method: 'PUT', path: '/', headers })
  r.on('error', () => {})
  r.on('response', (res) => res.resume())
  for (const p of pieces) r.write(p)
  r.end()
}

describe('readBody', () => {
  it('receives a body sent in many pieces into one buffer of its Content-Length', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 512)
    const pieces = Array.from({ length: 50 }, (_, i) => data.subarray(i * 64_000, (i + 1) * 64_000))
    pieces.push(data.subarray(50 * 64_000))
    const r = await received(4 * 1024 * 1024, (port) => post(port, pieces, true))
    assert.equal(r.error, undefined)
    assert.ok(r.body!.equals(data))
  })

  it('gathers a chunked body that declares no length', async () => {
    const data = randomBytes(200_000)
    const r = await received(1024 * 1024, (port) =>
      post(port, [data.subarray(0, 1000), data.subarray(1000)], false),
    )
    assert.ok(r.body!.equals(data))
  })

  it('answers an empty body with an empty buffer', async () => {
    const r = await received(1024, (port) => post(port, [], true))
    assert.equal(r.body!.length, 0)
  })

  it('refuses a declared length over the limit before reading', async () => {
    const r = await received(1000, (port) => post(port, [Buffer.alloc(1001)], true))
    assert.equal(azureCode(r.error), 'RequestBodyTooLarge')
  })

  it('refuses a chunked body once it grows over the limit', async () => {
    const r = await received(1000, (port) => post(port, [Buffer.alloc(600), Buffer.alloc(600)], false))
    assert.equal(azureCode(r.error), 'RequestBodyTooLarge')
  })

  it('fails when the client leaves before the end of the body', async () => {
    const r = await received(1024 * 1024, (port) => {
      const c = request({
        port,
        host: '127.0.0.1',
        method: 'PUT',
        path: '/',
        headers: { 'content-length': 100_000 },
      })
      c.on('error', () => {})
      c.write(Buffer.alloc(1000), () => setTimeout(() => c.destroy(), 50))
    })
    assert.equal(azureCode(r.error), 'InvalidInput')
    assert.match(String(r.error), /after \d+ bytes/)
  })
})
