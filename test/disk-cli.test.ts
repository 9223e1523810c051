import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { cairn, startService } from './_service.js'

const MiB = 1024 * 1024

describe('cairn disk and account commands against a running service', () => {
  it('create, write, snapshot, diff, read, import, export, copy, promote and delete disks', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-disk-cli-'))
    const svc = await startService()
    try {
      const run = (...args: string[]) => {
        const r = cairn([...args, '--url', svc.url])
        return { ...r, json: () => JSON.parse(r.stdout) }
      }
      const ok = (...args: string[]) => {
        const r = run(...args)
        assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
        return r
      }

      const accounts = ok('account', 'list', '--json').json() as { name: string; keys: string[] }[]
      assert.deepEqual(
        accounts.map((a) => a.name),
        ['devstoreaccount1'],
      )
      assert.equal(
        accounts[0]!.keys[0],
        'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
      )

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

      // Import a sparse image through the API and export it back.
      const image = Buffer.alloc(10 * MiB + 512)
      image.fill(0x33, 512, 8192)
      image.fill(0x44, 9 * MiB, 9 * MiB + 4096)
      writeFileSync(join(work, 'image.raw'), image)
      const imported = ok('disk', 'import', 'img', join(work, 'image.raw'), '--json').json()
      assert.equal(imported.size, image.length)
      assert.equal(imported.usedBytes, 8192 - 512 + 4096)
      ok('disk', 'export', 'img', join(work, 'back.raw'))
      assert.ok(readFileSync(join(work, 'back.raw')).equals(image))
      assert.ok(statSync(join(work, 'back.raw')).blocks * 512 < MiB, 'the export is sparse')

      // Export the snapshot: it has the first write but not the second.
      ok('disk', 'export', `os@${snap}`, join(work, 'snap.raw'))
      const snapRaw = readFileSync(join(work, 'snap.raw'))
      assert.ok(snapRaw.subarray(0, 4096).equals(Buffer.alloc(4096)))
      assert.ok(snapRaw.subarray(MiB, 2 * MiB).equals(first))

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
      assert.deepEqual(names, ['img', 'os', 'os-restored'])

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

      ok('account', 'create', 'prodeu1', '--redundancy', 'GRS')
      ok('container', 'create', 'prodeu1/vhds')
      ok('disk', 'create', 'prodeu1/vhds/web1-os', '--size', '1TiB')
      const big = ok('disk', 'show', 'prodeu1/vhds/web1-os', '--json').json()
      assert.equal(big.size, 1024 ** 4)
      assert.match(ok('account', 'show', 'prodeu1').stdout, /redundancy:\s+GRS/)

      // Everything survives a restart of the service.
      const data = svc.data
      await svc.stop()
      const again = await startService([], { data })
      try {
        const r = cairn([
          'disk',
          'read',
          'os-restored',
          '--offset',
          '1MiB',
          '--length',
          '512',
          '--url',
          again.url,
        ])
        assert.equal(r.status, 0, r.stderr)
        assert.equal(Buffer.from(r.stdout, 'latin1').length, 512)
        const shown = JSON.parse(cairn(['disk', 'show', 'img', '--json', '--url', again.url]).stdout)
        assert.equal(shown.usedBytes, imported.usedBytes)
      } finally {
        await again.stop()
      }
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })
})
