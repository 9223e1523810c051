import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generated, memoryOf, rawRequest } from './_raw-http.js'
import { startService } from './_service.js'

const MiB = 1024 * 1024
/** What a stack trace line looks like in any text a client could see. */
const STACK = /\n\s+at |\.(?:ts|js):\d+:\d+/

describe('management API limits', () => {
  it('refuses JSON bodies over 1 MiB with 413 PayloadTooLarge while reading, without keeping a chunked 100 MiB body', async () => {
    const svc = await startService()
    try {
      const url = `${svc.url}/api/v1/accounts`
      const json = { 'content-type': 'application/json' }
      // Declared too large: refused from the header alone, before a byte of the body is sent.
      const declared = await rawRequest(url, { method: 'POST', headers: json, declaredOnly: MiB + 1 })
      assert.equal(declared.status, 413)
      assert.equal(declared.code, 'PayloadTooLarge')

      // Chunked: no length up front; refused once past the limit, and nothing of it echoed back.
      const before = await memoryOf(svc.child.pid!)
      const chunked = await rawRequest(url, {
        method: 'POST',
        headers: { ...json, 'transfer-encoding': 'chunked' },
        body: generated(100 * MiB),
      })
      assert.equal(chunked.status, 413)
      assert.equal(chunked.code, 'PayloadTooLarge')
      assert.ok(chunked.text.length < 1000, `the answer echoes the body: ${chunked.text.length} chars`)
      const after = await memoryOf(svc.child.pid!)
      const grew = after.peak - before.peak
      assert.ok(grew < 48 * MiB, `peak memory grew by ${Math.round(grew / MiB)} MiB for a refused body`)

      // A body just under the limit is read (and then judged on its content).
      const under = await rawRequest(url, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'a'.repeat(MiB - 100) }),
      })
      assert.equal(under.status, 400)
      assert.equal(under.code, 'InvalidName')

      const health = await rawRequest(`${svc.url}/healthz`)
      assert.equal(health.status, 200)
    } finally {
      await svc.dispose()
    }
  })

  it('answers malformed JSON and bodies of the wrong shape with 400 and a code, never 500 or a stack trace', async () => {
    const svc = await startService()
    try {
      // Not JSON at all: InvalidRequest. JSON of the wrong shape: InvalidRequest or the resource's own
      // 400 code (VmInvalid, …). Never anything else.
      const malformed = ['{bad', '[1,2', '{"name":', '\u0000\u0001\u0002', '']
      const misshapen = ['"just a string"', '{"name": 5}', '[]', 'null']
      for (const body of [...malformed, ...misshapen]) {
        for (const path of ['/api/v1/accounts', '/api/v1/vaults', '/api/v1/vms']) {
          const r = await rawRequest(`${svc.url}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          })
          const what = `POST ${path} ${JSON.stringify(body)}: ${r.status} ${r.text}`
          assert.equal(r.status, 400, what)
          if (malformed.includes(body)) assert.equal(r.code, 'InvalidRequest', what)
          else assert.match(r.code ?? '', /^(InvalidRequest|VmInvalid)$/, what)
          assert.doesNotMatch(r.text, STACK)
        }
      }
      // A JSON route sent another content type does not read the body as JSON either.
      const plain = await rawRequest(`${svc.url}/api/v1/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: '{"name":"sneaky"}',
      })
      assert.equal(plain.status, 400)
      assert.equal(plain.code, 'InvalidRequest')
      assert.ok(!svc.logs.some((l) => l.includes('unhandled error')), 'a refusal was logged as unhandled')
    } finally {
      await svc.dispose()
    }
  })

  it('takes page uploads up to their own 4 MiB limit, above the JSON limit, and refuses more while reading', async () => {
    const svc = await startService()
    try {
      const disk = `${svc.url}/api/v1/accounts/devstoreaccount1/containers/disks/disks`
      const made = await rawRequest(`${disk}/big`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ size: '16MiB' }),
      })
      assert.equal(made.status, 201, made.text)
      const pages = `${disk}/big/pages?offset=0`
      const octet = { 'content-type': 'application/octet-stream' }
      const ok = await rawRequest(pages, { method: 'PUT', headers: octet, body: Buffer.alloc(4 * MiB, 7) })
      assert.equal(ok.status, 200, ok.text)
      const chunked = await rawRequest(pages, {
        method: 'PUT',
        headers: { ...octet, 'transfer-encoding': 'chunked' },
        body: generated(64 * MiB, 7),
      })
      assert.equal(chunked.status, 413, chunked.text)
      assert.equal(chunked.code, 'PayloadTooLarge')
      const declared = await rawRequest(pages, { method: 'PUT', headers: octet, declaredOnly: 4 * MiB + 512 })
      assert.equal(declared.status, 413)
      assert.equal(declared.code, 'WriteTooLarge')
    } finally {
      await svc.dispose()
    }
  })
})
