// Overwrites in place through NBD (docs/diskstore.md, "Overwrites in place"), with nbdcopy: the disk
// is rewritten in place once its pages are its own, and a snapshot taken before keeps its bytes.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { type DiskRef, LogDiskStore, type LogDiskStoreOptions } from '../src/diskstore/index.js'
import { DiskStoreExports, NbdServer, nbdUri } from '../src/nbd/index.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const SIZE = 4 * MiB
const OS: DiskRef = { account: 'acct', container: 'vms', disk: 'os' }
const PAD: DiskRef = { account: 'acct', container: 'vms', disk: 'pad' }
// Small checkpoints, so that a few MiB of writes put pages behind two of them.
const OPTIONS: LogDiskStoreOptions = { compactIntervalMs: 0, segmentSize: MiB, checkpointBytes: 512 * 1024 }
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('NBD overwrites in place', () => {
  it('nbdcopy rewrites a disk in place, and a snapshot taken before keeps its bytes through NBD and a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-in-place-'))
    let store = await LogDiskStore.open(join(dir, 'store'), OPTIONS)
    let server: NbdServer | undefined
    try {
      await store.createAccount(OS.account)
      await store.createContainer(OS.account, OS.container)
      await store.createDisk(OS, { size: SIZE })
      await store.createDisk(PAD, { size: SIZE })
      /** Log written elsewhere, so that two checkpoints come after the disk's last pass. */
      const padLog = async () => {
        for (let at = 0; at < 3 * MiB; at += 256 * 1024) {
          await store.writePages(PAD, at, randomBytes(256 * 1024))
          await new Promise((r) => setTimeout(r, 5))
        }
      }
      server = new NbdServer(new DiskStoreExports(store))
      const port = await server.listen(0)
      const uri = (name: string) => nbdUri('127.0.0.1', port, name)
      const copyIn = async (name: string) => {
        const image = join(dir, name)
        const bytes = randomBytes(SIZE)
        writeFileSync(image, bytes)
        await run('nbdcopy', ['--flush', image, uri('acct/vms/os')])
        return bytes
      }
      const copyOut = async (name: string) => {
        const out = join(dir, `${name.replace(/[/@:]/g, '_')}.out`)
        await run('nbdcopy', [uri(name), out])
        return readFileSync(out)
      }
      await copyIn('a')
      await padLog()
      await copyIn('b')
      const before = await copyOut('acct/vms/os')
      const snap = (await store.snapshot(OS)).snapshot as string
      const inPlaceAtSnapshot = store.overwriteStats().inPlaceWrites
      assert.ok(inPlaceAtSnapshot > 0, 'the passes before the snapshot overwrote in place')
      let last = await copyIn('d')
      // Every page was shared with the snapshot: none of this pass went in place.
      assert.equal(store.overwriteStats().inPlaceWrites, inPlaceAtSnapshot)
      await padLog()
      last = await copyIn('e')
      assert.ok(store.overwriteStats().inPlaceWrites > inPlaceAtSnapshot, 'later passes overwrote in place')
      assert.equal(
        sha256(await copyOut(`acct/vms/os@${snap}`)),
        sha256(before),
        'the snapshot kept its bytes',
      )
      assert.equal(sha256(await copyOut('acct/vms/os')), sha256(last), 'the disk holds the last pass')
      await server.close()
      server = undefined
      await store.close()
      store = await LogDiskStore.open(join(dir, 'store'), OPTIONS)
      assert.equal(sha256(await store.read(OS, 0, SIZE, { snapshot: snap })), sha256(before))
      assert.equal(sha256(await store.read(OS, 0, SIZE)), sha256(last))
    } finally {
      await server?.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
