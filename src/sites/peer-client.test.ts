import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { CairnError } from '../util/index.js'
import { PeerClient, type PeerHealth } from './peer-client.js'

// The peer client against a real HTTP server on loopback that fails on purpose.

describe('PeerClient', () => {
  let server: Server
  let url: string
  let failFirst = 0
  let seen = 0
  before(async () => {
    server = createServer((req, res) => {
      seen++
      if (req.headers.authorization !== 'Bearer good') {
        res.writeHead(401, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'unknown token' } }))
      }
      if (failFirst > 0) {
        failFirst--
        res.writeHead(503, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'busy' } }))
      }
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: { code: 'VaultNotFound', message: 'no vault' } }))
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ok: true }))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(() => server.close())

  it('retries 5xx answers with backoff and reports the link healthy after the success', async () => {
    const states: string[] = []
    const c = new PeerClient({ url, token: 'good', backoffMs: 1, onHealth: (h) => states.push(h.state) })
    failFirst = 2
    seen = 0
    assert.deepEqual(await c.json('GET', '/x'), { ok: true })
    assert.equal(seen, 3)
    assert.deepEqual(states, ['Unreachable', 'Unreachable', 'Healthy'])
    assert.equal(c.health.failures, 0)
    c.close()
  })

  it('gives up after the attempts with PairUnreachable and counts the failures', async () => {
    const c = new PeerClient({ url, token: 'good', backoffMs: 1, attempts: 3 })
    failFirst = 10
    await assert.rejects(c.request('GET', '/x'), (e: CairnError) => e.code === 'PairUnreachable')
    assert.equal(c.health.state, 'Unreachable')
    assert.equal(c.health.failures, 3)
    failFirst = 0
    c.close()
  })

  it('a refused token is PairAuthFailed at once (no retry), other 4xx answers keep the peer code', async () => {
    let last: PeerHealth | undefined
    const c = new PeerClient({ url, token: 'bad', backoffMs: 1, onHealth: (h) => (last = h) })
    seen = 0
    await assert.rejects(c.request('GET', '/x'), (e: CairnError) => e.code === 'PairAuthFailed')
    assert.equal(seen, 1)
    assert.equal(last?.state, 'Unauthorized')
    const good = new PeerClient({ url, token: 'good' })
    await assert.rejects(good.request('GET', '/missing'), (e: CairnError) => e.code === 'VaultNotFound')
    assert.equal(good.health.state, 'Healthy')
    c.close()
    good.close()
  })

  it('a closed port is PairUnreachable after the retries; plain http to a non-loopback host is refused', async () => {
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as AddressInfo).port
    await new Promise((r) => probe.close(r))
    const c = new PeerClient({ url: `http://127.0.0.1:${port}`, token: 'good', backoffMs: 1, attempts: 2 })
    await assert.rejects(c.request('GET', '/x'), (e: CairnError) => e.code === 'PairUnreachable')
    assert.equal(c.health.failures, 2)
    assert.throws(() => new PeerClient({ url: 'http://example.com', token: 't' }), /https/)
  })
})
