import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runner } from './_disk-cli.js'
import { startService } from './_service.js'

describe('cairn disk lease and sequence-number', () => {
  it('a leased disk refuses writes and deletion without its lease id; sequence numbers move as asked', async () => {
    const svc = await startService()
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lease-'))
    try {
      const { run, ok } = runner(svc.url)
      const page = join(dir, 'page.bin')
      writeFileSync(page, randomBytes(4096))
      ok('disk', 'create', 'leased', '--size', '1MiB')
      const lease = ok('disk', 'lease', 'leased', 'acquire', '--duration', '-1', '--json').json()
      assert.match(lease.id, /^[0-9a-f-]{36}$/)

      const refused = run('disk', 'write', 'leased', page)
      assert.equal(refused.status, 4)
      assert.match(refused.stderr, /LeaseIdMissing/)
      const wrong = run('disk', 'write', 'leased', page, '--lease-id', '00000000-0000-0000-0000-000000000000')
      assert.equal(wrong.status, 4)
      assert.match(wrong.stderr, /LeaseIdMismatch/)
      ok('disk', 'write', 'leased', page, '--lease-id', lease.id)
      assert.equal(run('disk', 'delete', 'leased').status, 4)
      assert.equal(run('disk', 'lease', 'leased', 'acquire').status, 4, 'a second acquire conflicts')

      const changed = ok(
        'disk',
        'lease',
        'leased',
        'change',
        '--lease-id',
        lease.id,
        '--proposed-id',
        '11111111-2222-3333-4444-555555555555',
        '--json',
      ).json()
      assert.equal(changed.id, '11111111-2222-3333-4444-555555555555')
      ok('disk', 'lease', 'leased', 'release', '--lease-id', changed.id)
      assert.equal(ok('disk', 'show', 'leased', '--json').json().lease.state, 'available')

      assert.equal(ok('disk', 'sequence-number', 'leased', 'update', '7', '--json').json().sequenceNumber, 7)
      assert.equal(ok('disk', 'sequence-number', 'leased', 'max', '3', '--json').json().sequenceNumber, 7)
      assert.equal(ok('disk', 'sequence-number', 'leased', 'increment', '--json').json().sequenceNumber, 8)
      assert.equal(run('disk', 'sequence-number', 'leased', 'update').status, 2, 'update needs a value')
      assert.equal(run('disk', 'lease', 'leased', 'steal').status, 2)
      ok('disk', 'delete', 'leased')
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
