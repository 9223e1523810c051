import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { authHeaders, cairn, startService } from './_service.js'

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes
type Json = any

/** One API call on a connection of its own (the CLI runs between calls can outlast keep-alive). */
function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      `${base}${path}`,
      {
        method,
        agent: false,
        headers: { ...authHeaders(base), ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          text += d
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

describe('vault locations through cairn serve and the CLI', () => {
  it('a vault goes where a file:/// URL says; object stores and memory locations are refused by name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vault-backends-'))
    const service = await startService()
    try {
      const folder = join(dir, 'off site')
      const made = cairn([
        'vault',
        'create',
        'offsite',
        '--location',
        pathToFileURL(folder).href,
        '--url',
        service.url,
        '--json',
      ])
      assert.equal(made.status, 0, made.stderr)
      const info = JSON.parse(made.stdout) as { backend: string; location: string }
      assert.deepEqual([info.backend, info.location], ['fs', folder])
      assert.match((await readFile(join(folder, 'config'))).toString('latin1'), /^CRN1CONF/)

      for (const [location, pattern] of [['memory://a', /memory vaults are for tests only/]] as const) {
        const r = cairn(['vault', 'create', 'refused', '--location', location, '--url', service.url])
        assert.equal(r.status, 2, `${location}: ${r.stderr}`)
        assert.match(r.stderr, /^cairn: UnsupportedVaultLocation: /)
        assert.match(r.stderr, pattern)
        const r2 = await api(service.url, 'POST', '/api/v1/vaults', { name: 'refused', location })
        assert.equal(r2.status, 400)
        assert.equal(r2.body.error.code, 'UnsupportedVaultLocation')
      }
      const listed = await api(service.url, 'GET', '/api/v1/vaults')
      assert.deepEqual(
        listed.body.items.map((v: Json) => v.name),
        ['offsite'],
        'a refused location registers nothing',
      )
    } finally {
      await service.dispose()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
