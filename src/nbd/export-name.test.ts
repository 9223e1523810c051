import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LogDiskStore } from '../diskstore/index.js'
import { DiskStoreExports } from './disk-store-exports.js'
import { formatExportName, nbdUri, parseExportName } from './export-name.js'

describe('export names', () => {
  it('parseExportName() reads the whole rest as a disk first, then splits at the last @', () => {
    assert.deepEqual(parseExportName('acct/vms/os'), [
      { ref: { account: 'acct', container: 'vms', disk: 'os' } },
    ])
    assert.deepEqual(parseExportName('acct/vms/dir/os@x@2026-01-01T00:00:00.0000000Z'), [
      { ref: { account: 'acct', container: 'vms', disk: 'dir/os@x@2026-01-01T00:00:00.0000000Z' } },
      {
        ref: { account: 'acct', container: 'vms', disk: 'dir/os@x' },
        snapshot: '2026-01-01T00:00:00.0000000Z',
      },
    ])
  })

  it('parseExportName() gives no reading for names without account, container and disk', () => {
    for (const bad of ['', 'acct', 'acct/vms', 'acct/vms/', '/vms/os', 'acct//os']) {
      assert.deepEqual(parseExportName(bad), [], bad)
    }
  })

  it('formatExportName() and nbdUri() build what parseExportName() and URI parsers read back', () => {
    const name = formatExportName(
      { account: 'a', container: 'b', disk: 'c d' },
      '2026-01-01T00:00:00.0000000Z',
    )
    assert.equal(name, 'a/b/c d@2026-01-01T00:00:00.0000000Z')
    const uri = nbdUri('127.0.0.1', 10809, name)
    assert.equal(uri, 'nbd://127.0.0.1:10809/a/b/c%20d%402026-01-01T00%3A00%3A00.0000000Z')
    assert.equal(decodeURIComponent(new URL(uri).pathname.slice(1)), name)
  })

  it('DiskStoreExports opens disks whose names hold / and @, and their snapshots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-names-'))
    const store = await LogDiskStore.open(dir)
    try {
      await store.createAccount('acct')
      await store.createContainer('acct', 'vms')
      const ref = { account: 'acct', container: 'vms', disk: 'web/os@blue' }
      await store.createDisk(ref, { size: 4096 })
      const snap = (await store.snapshot(ref)).snapshot as string
      const exports = new DiskStoreExports(store)
      const disk = await exports.open('acct/vms/web/os@blue')
      assert.equal(disk.readOnly, false)
      const snapshot = await exports.open(`acct/vms/web/os@blue@${snap}`)
      assert.equal(snapshot.readOnly, true)
      assert.match(snapshot.description, /snapshot of web\/os@blue/)
      await assert.rejects(exports.open('acct/vms/web/os@green'), { code: 'NbdExportNotFound' })
      await assert.rejects(exports.open('nope'), { code: 'NbdExportNotFound' })
      assert.deepEqual(
        exports.list(10).map((e) => e.name),
        [`acct/vms/web/os@blue@${snap}`, 'acct/vms/web/os@blue'],
      )
      assert.equal(exports.list(1).length, 1)
      await disk.close()
      await snapshot.close()
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
