import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { StorageSharedKeyCredential } from '@azure/storage-blob'
import { RawClient } from '../src/nbd/_raw-client.js'
import { closedWithin, rawRequest, silentSocket } from './_raw-http.js'
import { cairn, startService } from './_service.js'

const OPT_LIST = 3
const REP_ACK = 1
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

const hostPort = (url: string) => {
  const u = new URL(url.replace(/^nbd:/, 'http:'))
  return { host: u.hostname, port: Number(u.port) }
}

describe('listeners', () => {
  it('binds the management API, the blob API and NBD to their own addresses, loopback by default', async () => {
    const plain = await startService()
    try {
      for (const url of Object.values(plain.listeners)) assert.equal(hostPort(url).host, '127.0.0.1')
    } finally {
      await plain.dispose()
    }
    const svc = await startService([
      '--host',
      '127.0.0.2',
      '--api-host',
      '127.0.0.1',
      '--nbd-host',
      '127.0.0.3',
    ])
    try {
      const api = hostPort(svc.listeners.api!)
      const blob = hostPort(svc.listeners.blob!)
      const nbd = hostPort(svc.listeners.nbd!)
      assert.deepEqual([api.host, blob.host, nbd.host], ['127.0.0.1', '127.0.0.2', '127.0.0.3'])
      // Each port answers on its own address only: exposing the blob API does not expose the others.
      await assert.rejects(silentSocket('127.0.0.2', api.port), /ECONNREFUSED/)
      await assert.rejects(silentSocket('127.0.0.1', blob.port), /ECONNREFUSED/)
      await assert.rejects(silentSocket('127.0.0.2', nbd.port), /ECONNREFUSED/)
      const health = await rawRequest(`${svc.url}/healthz`)
      assert.equal(health.status, 200)
    } finally {
      await svc.dispose()
    }
  })

  it('answers the management API only under its own names: other Host headers get 421 HostNotAllowed', async () => {
    const svc = await startService(['--api-allowed-host', 'cairn.example.internal'])
    try {
      const { port } = hostPort(svc.url)
      const get = (host: string) => rawRequest(`${svc.url}/api/v1/info`, { headers: { host } })
      for (const host of [
        `127.0.0.1:${port}`,
        `localhost:${port}`,
        `[::1]:${port}`,
        'cairn.example.internal',
      ]) {
        const r = await get(host)
        assert.equal(r.status, 200, `Host ${host}: ${r.text}`)
      }
      // A rebound DNS name, a name that only ends like an allowed one, one that starts like localhost.
      for (const host of [
        `attacker.example:${port}`,
        'evil-cairn.example.internal',
        'localhost.attacker.example',
      ]) {
        const r = await get(host)
        assert.equal(r.status, 421, `Host ${JSON.stringify(host)}: ${r.text}`)
        assert.equal(r.code, 'HostNotAllowed')
      }
      // Node itself refuses a request without a Host.
      assert.equal((await get('')).status, 400)
      // State changes under a wrong Host are refused too, and change nothing.
      const made = await rawRequest(`${svc.url}/api/v1/accounts`, {
        method: 'POST',
        headers: { host: 'attacker.example', 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'rebound' }),
      })
      assert.equal(made.status, 421)
      const list = await rawRequest(`${svc.url}/api/v1/accounts`)
      assert.ok(!list.text.includes('rebound'))
    } finally {
      await svc.dispose()
    }
  })

  it('refuses state changes a browser sends from another site (Origin, Sec-Fetch-Site) with 403 CrossSiteRequest', async () => {
    const svc = await startService(['--api-allowed-host', 'portal.example.internal'])
    try {
      const create = (name: string, headers: Record<string, string>) =>
        rawRequest(`${svc.url}/api/v1/accounts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ name }),
        })
      const refused: [string, Record<string, string>][] = [
        ['xorigin1', { origin: 'http://attacker.example' }],
        ['xorigin2', { origin: 'null' }],
        ['xorigin3', { origin: 'http://127.0.0.1:1' }],
        ['xorigin4', { 'sec-fetch-site': 'cross-site' }],
        ['xorigin5', { 'sec-fetch-site': 'same-site', origin: svc.url }],
      ]
      for (const [name, headers] of refused) {
        const r = await create(name, headers)
        assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.text}`)
        assert.equal(r.code, 'CrossSiteRequest')
      }
      const del = await rawRequest(`${svc.url}/api/v1/accounts/devstoreaccount1`, {
        method: 'DELETE',
        headers: { origin: 'http://attacker.example', 'sec-fetch-site': 'cross-site' },
      })
      assert.equal(del.status, 403)
      // Its own origin, a configured one, and clients that are not browsers pass.
      const allowed: [string, Record<string, string>][] = [
        ['sameorigin1', { origin: svc.url, 'sec-fetch-site': 'same-origin' }],
        ['sameorigin2', { origin: 'https://portal.example.internal' }],
        ['sameorigin3', {}],
      ]
      for (const [name, headers] of allowed) {
        const r = await create(name, headers)
        assert.equal(r.status, 201, `${JSON.stringify(headers)}: ${r.text}`)
      }
      // Reading stays possible (a browser cannot read the answer across origins anyway).
      const read = await rawRequest(`${svc.url}/api/v1/accounts`, {
        headers: { 'sec-fetch-site': 'cross-site' },
      })
      assert.equal(read.status, 200)
      const names = (JSON.parse(read.text) as { items: { name: string }[] }).items.map((a) => a.name).sort()
      assert.deepEqual(names, ['devstoreaccount1', 'sameorigin1', 'sameorigin2', 'sameorigin3'])
    } finally {
      await svc.dispose()
    }
  })

  it('never answers account keys outside the keys route; cairn account keys still gives a working connection string', async () => {
    const svc = await startService()
    try {
      const created = await rawRequest(`${svc.url}/api/v1/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'second' }),
      })
      assert.equal(created.status, 201)
      const keys = JSON.parse((await rawRequest(`${svc.url}/api/v1/accounts/second/keys`)).text) as {
        keys: string[]
      }
      assert.equal(keys.keys.length, 2)
      const secrets = [DEV_KEY, ...keys.keys]
      for (const path of [
        '/api/v1/accounts',
        '/api/v1/accounts/second',
        '/api/v1/accounts/devstoreaccount1',
      ]) {
        const r = await rawRequest(`${svc.url}${path}`)
        assert.equal(r.status, 200)
        for (const k of secrets) assert.ok(!r.text.includes(k), `${path} shows a key`)
        assert.ok(!r.text.includes('"keys"'), `${path} has a keys field`)
      }
      assert.ok(!created.text.includes('"keys"'))
      const shown = cairn(['account', 'show', 'second', '--url', svc.url])
      assert.equal(shown.status, 0, shown.stderr)
      for (const k of secrets) assert.ok(!shown.stdout.includes(k))

      const cli = cairn(['account', 'keys', 'devstoreaccount1', '--json', '--url', svc.url])
      assert.equal(cli.status, 0, cli.stderr)
      const printed = JSON.parse(cli.stdout) as { key1: string; connectionString: string }
      assert.equal(printed.key1, DEV_KEY)
      const { BlobServiceClient } = await import('@azure/storage-blob')
      const client = BlobServiceClient.fromConnectionString(printed.connectionString)
      const containers = []
      for await (const c of client.listContainers()) containers.push(c.name)
      assert.deepEqual(containers, ['disks'])
      // A wrong key is refused, so the check above proves the key.
      const wrong = new BlobServiceClient(
        `${svc.listeners.blob}/devstoreaccount1`,
        new StorageSharedKeyCredential('devstoreaccount1', keys.keys[0]!),
        { retryOptions: { maxTries: 1 } },
      )
      await assert.rejects(wrong.getAccountInfo(), /AuthenticationFailed|authenticate/)
    } finally {
      await svc.dispose()
    }
  })
})

describe('connection caps and deadlines', () => {
  it('keeps the management API responsive while idle blob sockets and silent NBD clients fill their listeners, and frees them', async () => {
    const svc = await startService([
      '--blob-max-connections',
      '20',
      '--nbd-max-connections',
      '8',
      '--http-header-timeout',
      '6',
      '--http-idle-timeout',
      '6',
      '--nbd-handshake-timeout',
      '2',
    ])
    const sockets: Socket[] = []
    try {
      const blob = hostPort(svc.listeners.blob!)
      const nbd = hostPort(svc.listeners.nbd!)
      // Twice the cap of each: the excess is closed at once, the rest when their deadline passes.
      // Each blob socket's lifetime is taken from its own connect, so a slow machine cannot blur
      // "at once" into "at the 6 s deadline" (the deadlines are long enough for a loaded machine to tell).
      const lifetimes: Promise<number>[] = []
      for (let i = 0; i < 40; i++) {
        const s = await silentSocket(blob.host, blob.port)
        const opened = performance.now()
        lifetimes.push(closedWithin(s, 30_000).then(() => performance.now() - opened))
        sockets.push(s)
      }
      const nbdSockets: Socket[] = []
      for (let i = 0; i < 16; i++) nbdSockets.push(await silentSocket(nbd.host, nbd.port))
      sockets.push(...nbdSockets)

      const started = performance.now()
      const health = await rawRequest(`${svc.url}/api/v1/info`, { timeoutMs: 5000 })
      assert.equal(health.status, 200)
      assert.ok(performance.now() - started < 4000, 'the management API stalled until the sockets went')

      // Every silent socket is gone within the deadline plus the check period.
      await Promise.all(sockets.map((s) => closedWithin(s, 20_000)))
      const lived = await Promise.all(lifetimes)
      assert.ok(
        lived.filter((ms) => ms < 3000).length >= 19,
        `connections over the blob cap were not closed at once: lifetimes ${lived.map(Math.round).join(' ')} ms`,
      )

      // A client that keeps negotiating (an option every 300 ms) without choosing an export is
      // dropped at the handshake deadline all the same.
      const busy = await RawClient.handshake(nbd.port)
      const began = performance.now()
      let options = 0
      try {
        while (performance.now() - began < 10_000) {
          const replies = await busy.option(OPT_LIST)
          assert.equal(replies.at(-1)!.type, REP_ACK)
          options++
          await new Promise((r) => setTimeout(r, 300))
        }
      } catch {
        // the server closed the connection
      }
      const lasted = performance.now() - began
      assert.ok(options >= 2 && lasted < 6000, `negotiated for ${Math.round(lasted)} ms (${options} options)`)

      // The listeners serve again: a real blob request and a real NBD negotiation.
      const { BlobServiceClient } = await import('@azure/storage-blob')
      const client = new BlobServiceClient(
        `${svc.listeners.blob}/devstoreaccount1`,
        new StorageSharedKeyCredential('devstoreaccount1', DEV_KEY),
      )
      assert.ok((await client.getAccountInfo()).skuName !== undefined)
      const nbdClient = await RawClient.handshake(nbd.port)
      assert.equal((await nbdClient.option(OPT_LIST)).at(-1)!.type, REP_ACK)
      nbdClient.socket.destroy()
    } finally {
      for (const s of sockets) s.destroy()
      await svc.dispose()
    }
  })
})
