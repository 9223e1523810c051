// The NBD server against the real Debian clients: nbdinfo, nbdcopy, qemu-img and qemu-io.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { type DiskRef, LogDiskStore } from '../src/diskstore/index.js'
import { DiskStoreExports, NbdServer, nbdUri } from '../src/nbd/index.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const OS: DiskRef = { account: 'acct', container: 'vms', disk: 'os' }
const DATA: DiskRef = { account: 'acct', container: 'vms', disk: 'data' }

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

describe('NBD with real clients', () => {
  let dir: string
  let store: LogDiskStore
  let server: NbdServer
  let uri: (name: string) => string
  let SNAP: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-'))
    store = await LogDiskStore.open(join(dir, 'store'))
    await store.createAccount(OS.account)
    await store.createContainer(OS.account, OS.container)
    await store.createDisk(OS, { size: 64 * MiB })
    await store.createDisk(DATA, { size: 32 * MiB })
    await store.writePages(OS, 0, Buffer.alloc(MiB, 0x5a))
    SNAP = (await store.snapshot(OS)).snapshot as string
    server = new NbdServer(new DiskStoreExports(store))
    const port = await server.listen(0)
    uri = (name) => nbdUri('127.0.0.1', port, name)
  })
  after(async () => {
    try {
      await server.close()
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  /** A sparse raw image: random runs at a few places, unaligned ones included, holes elsewhere. */
  function sparseImage(path: string, size: number): void {
    truncateSync(openAndClose(path), size)
    const fd = openSync(path, 'r+')
    try {
      for (const [at, len] of [
        [0, 3 * MiB],
        [10 * MiB + 777, 100_000],
        [20 * MiB, 4 * MiB],
        [size - 4096, 4096],
      ] as const) {
        writeSync(fd, randomBytes(len), 0, len, at)
      }
    } finally {
      closeSync(fd)
    }
  }

  it('nbdinfo --list shows every disk and snapshot with its description', async () => {
    const { stdout } = await run('nbdinfo', ['--list', '--json', uri('')])
    const exports = JSON.parse(stdout).exports as {
      'export-name': string
      description: string
      is_read_only: boolean
    }[]
    const byName = new Map(exports.map((e) => [e['export-name'], e]))
    assert.match(byName.get('acct/vms/os')?.description ?? '', /disk, 64\.0 MiB/)
    assert.equal(byName.get(`acct/vms/os@${SNAP}`)?.is_read_only, true)
    assert.ok(byName.has('acct/vms/data'))
  })

  it('nbdcopy copies a sparse image in and out unchanged, and nbdinfo --map reports its holes', async () => {
    const input = join(dir, 'in.raw')
    const output = join(dir, 'out.raw')
    sparseImage(input, 32 * MiB)
    await run('nbdcopy', [input, uri('acct/vms/data')])
    await run('nbdcopy', [uri('acct/vms/data'), output])
    assert.equal(sha256(output), sha256(input))
    const { stdout } = await run('nbdinfo', ['--map', '--json', uri('acct/vms/data')])
    const map = JSON.parse(stdout) as { offset: number; length: number; type: number }[]
    const holes = map.filter((e) => e.type === 3)
    assert.ok(
      holes.some((h) => h.offset <= 5 * MiB && h.offset + h.length >= 9 * MiB),
      'the gap after 3 MiB is a hole',
    )
    assert.deepEqual(map[0], { offset: 0, length: 3 * MiB, type: 0, description: 'data' })
  })

  it('qemu-img convert reads an export into a raw file and qemu-img compare finds them identical', async () => {
    const input = join(dir, 'in.raw')
    const output = join(dir, 'convert.raw')
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri('acct/vms/data'), output])
    assert.equal(sha256(output), sha256(input))
    const { stdout } = await run('qemu-img', [
      'compare',
      '-f',
      'raw',
      '-F',
      'raw',
      input,
      uri('acct/vms/data'),
    ])
    assert.match(stdout, /Images are identical/)
  })

  it('qemu-io writes land in the disk store and read back through NBD', async () => {
    await run('qemu-io', [
      '-f',
      'raw',
      '-c',
      'write -P 0xab 0 64k',
      '-c',
      'write -P 0xcd 70000 3333',
      uri('acct/vms/os'),
    ])
    const { stdout } = await run('qemu-io', [
      '-f',
      'raw',
      '-c',
      'read -P 0xab 0 64k',
      '-c',
      'read -P 0xcd 70000 3333',
      '-c',
      'read -P 0x5a 73333 100000',
      uri('acct/vms/os'),
    ])
    assert.doesNotMatch(stdout, /Pattern verification failed/)
    const stored = await store.read(OS, 0, 73333)
    assert.ok(stored.subarray(0, 65536).equals(Buffer.alloc(65536, 0xab)))
    assert.ok(stored.subarray(70000).equals(Buffer.alloc(3333, 0xcd)))
  })

  it('writes made to the store directly are read through NBD, and snapshots keep their content', async () => {
    await store.writePages(OS, 8 * MiB, Buffer.alloc(4096, 0x11))
    await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x11 8M 4k', uri('acct/vms/os')]).then(
      ({ stdout }) => assert.doesNotMatch(stdout, /verification failed/),
    )
    const snapOut = join(dir, 'snap.raw')
    await run('nbdcopy', [uri(`acct/vms/os@${SNAP}`), snapOut])
    const snap = readFileSync(snapOut)
    assert.ok(snap.subarray(0, MiB).equals(Buffer.alloc(MiB, 0x5a)))
    assert.ok(snap.subarray(MiB).equals(Buffer.alloc(63 * MiB)))
  })

  it('qemu-io cannot write to a snapshot export', async () => {
    await assert.rejects(
      run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x01 0 4k', uri(`acct/vms/os@${SNAP}`)]),
      /Permission denied|read-only|Operation not permitted/i,
    )
  })

  it('several nbdcopy clients run at once against different exports', async () => {
    const outs = [0, 1, 2, 3].map((i) => join(dir, `multi-${i}.raw`))
    await Promise.all(outs.map((o, i) => run('nbdcopy', [uri(i % 2 ? 'acct/vms/data' : 'acct/vms/os'), o])))
    assert.equal(sha256(outs[1] as string), sha256(join(dir, 'in.raw')))
    assert.equal(sha256(outs[0] as string), sha256(outs[2] as string))
  })
})

function openAndClose(path: string): string {
  closeSync(openSync(path, 'w'))
  return path
}
