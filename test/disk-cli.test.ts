import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runner } from './_disk-cli.js'
import { startService } from './_service.js'

const MiB = 1024 * 1024

describe('cairn disk commands against a running service', () => {
  it('create, write, snapshot, diff, read, copy, promote and delete disks', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-disk-cli-'))
    const svc = await startService()
    try {
      const { run, ok } = runner(svc.url)
      const disk = ok('disk', 'create', 'os', '--size', '8MiB', '--json').json()
      assert.equal(disk.size, 8 * MiB)
      assert.deepEqual(disk.ref, { account: 'devstoreaccount1', container: 'disks', disk: 'os' })

      const first = Buffer.alloc(MiB, 0x11)
      writeFileSync(join(work, 'first.bin'), first)
      ok('disk', 'write', 'os', '--offset', '1MiB', join(work, 'first.bin'))
      const snap = ok('disk', 'snapshot', 'os', '--json').json().snapshot as string
      assert.match(snap, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/)
      writeFileSync(join(work, 'second.bin'), Buffer.alloc(4096, 0x22))
      ok('disk', 'write', 'os', join(work, 'second.bin'))

      const diff = ok('disk', 'diff', 'os', '--from', snap, '--json').json()
      assert.deepEqual(diff, { pageRanges: [[0, 4095]], clearRanges: [] })
      assert.match(ok('disk', 'diff', 'os', '--from', snap).stdout, /changed\s+0\s+4096/)

      ok('disk', 'read', 'os', '--offset', '1MiB', '--length', '4096', '-o', join(work, 'read.bin'))
      assert.ok(readFileSync(join(work, 'read.bin')).equals(Buffer.alloc(4096, 0x11)))

      // Export the snapshot: it has the first write but not the second.
      ok('disk', 'export', `os@${snap}`, join(work, 'snap.raw'))
      const snapRaw = readFileSync(join(work, 'snap.raw'))
      assert.ok(snapRaw.subarray(0, 4096).equals(Buffer.alloc(4096)))
      assert.ok(snapRaw.subarray(MiB, 2 * MiB).equals(first))
      // An existing file is replaced only with --overwrite, as rp download and the server-side export.
      const again = run('disk', 'export', 'os', join(work, 'snap.raw'))
      assert.equal(again.status, 2, again.stderr)
      assert.match(
        again.stderr,
        /^cairn: UsageError: Cannot write \S+snap\.raw: it exists \(--overwrite replaces it\)\n$/,
      )
      assert.ok(
        readFileSync(join(work, 'snap.raw')).equals(snapRaw),
        'the refused export left the file as it was',
      )
      ok('disk', 'export', 'os', join(work, 'snap.raw'), '--overwrite')
      assert.ok(readFileSync(join(work, 'snap.raw')).subarray(0, 4096).equals(Buffer.alloc(4096, 0x22)))

      ok('disk', 'copy', `os@${snap}`, 'os-restored')
      ok('disk', 'promote', `os@${snap}`)
      assert.deepEqual(ok('disk', 'diff', 'os', '--from', snap, '--json').json(), {
        pageRanges: [],
        clearRanges: [],
      })
      const snaps = ok('disk', 'snapshots', 'os', '--json').json() as { snapshot: string }[]
      assert.deepEqual(
        snaps.map((s) => s.snapshot),
        [snap],
      )
      const names = (ok('disk', 'list', '--json').json() as { ref: { disk: string } }[]).map(
        (d) => d.ref.disk,
      )
      assert.deepEqual(names, ['os', 'os-restored'])

      const refused = run('disk', 'delete', 'os')
      assert.equal(refused.status, 4)
      assert.match(refused.stderr, /DiskHasSnapshots/)
      ok('disk', 'delete', 'os', '--snapshots', 'include')
      const missing = run('disk', 'show', 'os')
      assert.equal(missing.status, 3)
      assert.match(missing.stderr, /DiskNotFound/)
      const misaligned = run('disk', 'create', 'bad', '--size', '1000')
      assert.equal(misaligned.status, 2)
      assert.match(misaligned.stderr, /InvalidDiskSize/)
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })
})
