import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { type RunningService, startService } from './_service.js'

// The portal's static files on the management listener: public, typed, cached, with a strict CSP; the
// API's own paths keep answering the API's JSON errors.
describe('the portal is served at / on the management listener', () => {
  let svc: RunningService
  let html: string
  before(async () => {
    svc = await startService()
  })
  after(() => svc.dispose())

  it('GET / answers the page without credentials, with a strict Content-Security-Policy and no caching', async () => {
    const res = await fetch(`${svc.url}/`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.equal(res.headers.get('cache-control'), 'no-cache')
    const csp = res.headers.get('content-security-policy') ?? ''
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline or remote script')
    assert.match(csp, /frame-ancestors 'none'/)
    assert.doesNotMatch(csp, /unsafe|https?:|\*/, 'nothing but this origin')
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    html = await res.text()
    assert.match(html, /<div id="app">/)
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script in the page')
    assert.doesNotMatch(html, /https?:\/\//, 'no CDN, no external font: every URL is of this origin')
  })

  it('scripts and styles are served with their types, gzip, an ETag and a year of immutable caching', async () => {
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!)
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), assets.join())
    for (const a of assets) {
      const res = await fetch(`${svc.url}${a}`, { headers: { 'accept-encoding': 'identity' } })
      assert.equal(res.status, 200, a)
      const type = res.headers.get('content-type')
      if (a.endsWith('.js')) assert.equal(type, 'text/javascript; charset=utf-8')
      if (a.endsWith('.css')) assert.equal(type, 'text/css; charset=utf-8')
      if (a.endsWith('.svg')) assert.equal(type, 'image/svg+xml')
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable')
      const plain = Buffer.from(await res.arrayBuffer())
      const etag = res.headers.get('etag')!
      assert.ok(etag, 'an ETag')
      const again = await fetch(`${svc.url}${a}`, { headers: { 'if-none-match': etag } })
      assert.equal(again.status, 304, `${a} is not sent again when unchanged`)
      if (!a.endsWith('.js')) continue
      // Node's fetch decodes gzip itself: ask with a raw request to see the encoding.
      const { request } = await import('node:http')
      const gz = await new Promise<{ enc?: string; body: Buffer }>((resolve, reject) => {
        request(`${svc.url}${a}`, { headers: { 'accept-encoding': 'gzip' } }, (r) => {
          const parts: Buffer[] = []
          r.on('data', (d: Buffer) => parts.push(d))
          r.on('end', () => resolve({ enc: r.headers['content-encoding'], body: Buffer.concat(parts) }))
        })
          .on('error', reject)
          .end()
      })
      assert.equal(gz.enc, 'gzip')
      assert.ok(gunzipSync(gz.body).equals(plain), 'the gzip copy is the same file')
    }
  })

  it('the portal holds no data: every API route still needs credentials, and unknown paths answer JSON errors', async () => {
    const vms = await fetch(`${svc.url}/api/v1/vms`)
    assert.equal(vms.status, 401)
    const unknown = await fetch(`${svc.url}/api/v1/no-such-route`)
    assert.equal(unknown.status, 401, 'an unknown API path is not the portal page')
    assert.equal(unknown.headers.get('content-type'), 'application/json')
    const signedIn = await fetch(`${svc.url}/api/v1/no-such-route`, {
      headers: { authorization: `Bearer ${svc.token}` },
    })
    assert.equal(signedIn.status, 404)
    assert.equal(((await signedIn.json()) as { error: { code: string } }).error.code, 'RouteNotFound')
    const missing = await fetch(`${svc.url}/assets/no-such-file.js`)
    assert.equal(missing.status, 404)
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'RouteNotFound')
    const deep = await fetch(`${svc.url}/assets/../src/main.js`)
    assert.notEqual(deep.status, 200, 'no path outside the built assets')
    const other = await fetch(`${svc.url}/vms`)
    assert.equal(other.status, 401, 'the portal is one page at /: other paths are the API’s')
    const post = await fetch(`${svc.url}/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${svc.token}` },
    })
    assert.equal(post.status, 404)
  })

  it('a request for the portal from a re-pointed domain is refused like any other (DNS rebinding)', async () => {
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      request(`${svc.url}/`, { headers: { host: 'evil.example' } }, (r) => {
        r.resume()
        resolve(r.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
    assert.equal(status, 421)
  })
})
