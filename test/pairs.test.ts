import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { EXIT } from '../src/util/index.js'
import { cairnAt, type RunningService, startService } from './_service.js'

// Paired sites between two real `cairn serve` processes on loopback, each with its own data folder:
// the second speaks HTTPS with its self-signed certificate. Pairs are made with the CLI, with a wrong
// token, an untrusted certificate, a token of another role, and survive restarts of either side.

/** A token of `role` made by the admin of `svc`. */
async function tokenOf(svc: RunningService, role: string, name: string): Promise<string> {
  const res = await insecure(() =>
    fetch(`${svc.url}/api/v1/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${svc.token}` },
      body: JSON.stringify({ role, name }),
    }),
  )
  assert.equal(res.status, 201, await res.clone().text())
  return ((await res.json()) as { token: string }).token
}

interface PairRow {
  name: string
  url: string
  peerSite: string
  health: { state: string; failures: number; lastError?: string }
}

describe('paired sites', () => {
  let east: RunningService
  let west: RunningService
  let siteToken: string

  before(async () => {
    ;[east, west] = await Promise.all([startService(), startService(['--tls', 'self-signed'])])
    siteToken = await tokenOf(west, 'Site Peer', 'pair-east')
  })
  after(async () => {
    await Promise.all([east?.dispose(), west?.dispose()])
  })

  const ca = () => join(west.data, 'tls', 'cert.pem')

  it('a Site Peer token reaches the site hello and nothing else', async () => {
    const hello = await fetchAs(west.url, '/api/v1/site', siteToken)
    assert.equal(hello.status, 200)
    assert.match(((await hello.json()) as { siteId: string }).siteId, /^[0-9a-f-]{36}$/)
    assert.equal((await fetchAs(west.url, '/api/v1/vaults', siteToken)).status, 403)
    assert.equal((await fetchAs(west.url, '/api/v1/pairs', siteToken)).status, 403)
  })

  it('pair add refuses a wrong token, a token without the Site Peer permission and an untrusted certificate, each by its code', async () => {
    const wrong = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url,
      '--token',
      'cairn_wrong',
      '--ca',
      ca(),
    ])
    assert.equal(wrong.code, EXIT.auth, wrong.stderr)
    assert.match(wrong.stderr, /PairAuthFailed/)
    const reader = await tokenOf(west, 'Reader', 'not-a-peer')
    const narrow = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url,
      '--token',
      reader,
      '--ca',
      ca(),
    ])
    assert.equal(narrow.code, EXIT.auth, narrow.stderr)
    assert.match(narrow.stderr, /PairAuthFailed/)
    const untrusted = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url,
      '--token',
      siteToken,
    ])
    assert.equal(untrusted.code, EXIT.auth, untrusted.stderr)
    assert.match(untrusted.stderr, /PairCertificateRejected/)
    const plain = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url.replace('https:', 'http:'),
      '--token',
      siteToken,
    ])
    assert.notEqual(plain.code, 0)
    const list = await cairnAt(east.url, ['pair', 'list'])
    assert.deepEqual(JSON.parse(list.stdout), [], 'no refused pair was stored')
  })

  it('a site cannot pair with itself', async () => {
    const own = await tokenOf(east, 'Site Peer', 'self')
    const r = await cairnAt(east.url, ['pair', 'add', 'me', '--peer-url', east.url, '--token', own])
    assert.equal(r.code, EXIT.usage, r.stderr)
    assert.match(r.stderr, /PairIsSelf/)
  })

  it('pair add with the right token and CA stores a healthy pair, once', async () => {
    const r = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url,
      '--token',
      siteToken,
      '--ca',
      ca(),
    ])
    assert.equal(r.code, 0, r.stderr)
    const hello = (await (await fetchAs(west.url, '/api/v1/site', siteToken)).json()) as { siteId: string }
    assert.equal((JSON.parse(r.stdout) as PairRow).peerSite, hello.siteId)
    const again = await cairnAt(east.url, [
      'pair',
      'add',
      'west',
      '--peer-url',
      west.url,
      '--token',
      siteToken,
      '--ca',
      ca(),
    ])
    assert.equal(again.code, EXIT.conflict)
    assert.match(again.stderr, /PairAlreadyExists/)
    const list = JSON.parse((await cairnAt(east.url, ['pair', 'list'])).stdout) as PairRow[]
    assert.equal(list.length, 1)
    assert.equal(list[0]!.health.state, 'Healthy')
  })

  it('the pair survives a restart of either side; a peer that is down is reported, then healthy again', async () => {
    await west.stop()
    let list = JSON.parse((await cairnAt(east.url, ['pair', 'list'])).stdout) as PairRow[]
    assert.equal(list[0]!.health.state, 'Unreachable')
    assert.ok(list[0]!.health.failures >= 1)
    assert.match(list[0]!.health.lastError ?? '', /PairUnreachable/)
    await east.stop()
    // Both come back on their data folders (west on the same port: the pair's URL names it).
    const port = new URL(west.url).port
    ;[east, west] = await Promise.all([
      startService([], { data: east.data }),
      startService(['--tls', 'self-signed', '--port', port], { data: west.data }),
    ])
    const shown = await cairnAt(east.url, ['pair', 'show', 'west'], { json: false })
    assert.match(shown.stdout, /Unreachable/, 'the last health was kept in the catalog')
    list = JSON.parse((await cairnAt(east.url, ['pair', 'list'])).stdout) as PairRow[]
    assert.deepEqual(
      list.map((p) => [p.name, p.health.state]),
      [['west', 'Healthy']],
      'the pair and the site token outlived the restarts',
    )
  })

  it('pair remove forgets the pair; an unknown pair is PairNotFound', async () => {
    const r = await cairnAt(east.url, ['pair', 'remove', 'west'])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse((await cairnAt(east.url, ['pair', 'list'])).stdout), [])
    const again = await cairnAt(east.url, ['pair', 'remove', 'west'])
    assert.equal(again.code, EXIT.notFound)
    assert.match(again.stderr, /PairNotFound/)
  })
})

/** GET with a bearer token (certificates of the test services are not checked: they are ours). */
function fetchAs(base: string, path: string, token: string): Promise<Response> {
  return insecure(() => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }))
}

/** Runs a fetch without checking the certificate of a test service (the body is read at once). */
async function insecure(send: () => Promise<Response>): Promise<Response> {
  const prev = process.env.NODE_TLS_REJECT_UNAUTHORIZED
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
  try {
    const res = await send()
    const text = await res.text()
    return new Response(text, { status: res.status, headers: res.headers })
  } finally {
    if (prev === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = prev
  }
}
