import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { cairn, startService } from './_service.js'

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

      for (const [location, pattern] of [
        ['s3://bucket/vaults/a', /s3:\/\/ object stores are not supported yet/],
        ['azblob://account/container/a', /azblob:\/\/ object stores are not supported yet/],
        ['memory://a', /memory vaults are for tests only/],
      ] as const) {
        const r = cairn(['vault', 'create', 'refused', '--location', location, '--url', service.url])
        assert.equal(r.status, 2, `${location}: ${r.stderr}`)
        assert.match(r.stderr, /\[UnsupportedVaultLocation\]/)
        assert.match(r.stderr, pattern)
        const api = await fetch(`${service.url}/api/v1/vaults`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'refused', location }),
        })
        assert.equal(api.status, 400)
        assert.equal(
          ((await api.json()) as { error: { code: string } }).error.code,
          'UnsupportedVaultLocation',
        )
      }
      const listed = (await (await fetch(`${service.url}/api/v1/vaults`)).json()) as {
        items: { name: string }[]
      }
      assert.deepEqual(
        listed.items.map((v) => v.name),
        ['offsite'],
        'a refused location registers nothing',
      )
    } finally {
      await service.dispose()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
