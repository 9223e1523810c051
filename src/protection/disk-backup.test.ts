import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { FsVaultBackend, Vault } from '../vault/index.js'
import { backupDisks, restoreToDisk } from './disk-backup.js'

const MiB = 1024 * 1024

describe('disk-store backups into a vault', () => {
  it('reads allocated ranges first, then only the snapshot diff, and restores new and existing disks bit for bit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-disk-backup-'))
    const store = await LogDiskStore.open(join(dir, 'disks'))
    const vault = await Vault.create(new FsVaultBackend(join(dir, 'vault')), { workers: 1 })
    try {
      await store.createAccount('acct')
      await store.createContainer('acct', 'vhds')
      const os: DiskRef = { account: 'acct', container: 'vhds', disk: 'os' }
      const data: DiskRef = { account: 'acct', container: 'vhds', disk: 'data' }
      await store.createDisk(os, { size: 64 * MiB })
      await store.createDisk(data, { size: 32 * MiB })
      for (let i = 0; i < 6; i++) await store.writePages(os, i * 8 * MiB, randomBytes(MiB))
      await store.writePages(data, 3 * MiB, randomBytes(2 * MiB))
      const item = { kind: 'vm', name: 'web' }
      const disks = [
        { ref: os, lun: 0 },
        { ref: data, lun: 1 },
      ]

      const rp1 = await backupDisks(vault, store, disks, { item, consistency: 'CrashConsistent' })
      assert.deepEqual(
        rp1.disks.map((d) => [d.name, d.mode, d.bytesScanned]),
        [
          ['os', 'full', 6 * MiB],
          ['data', 'full', 2 * MiB],
        ],
      )

      for (let i = 0; i < 10; i++) await store.writePages(os, i * 5 * MiB + 4096, randomBytes(4096))
      await store.clearPages(os, 8 * MiB, MiB)
      const rp2 = await backupDisks(vault, store, disks, { item })
      const osDisk = rp2.disks.find((d) => d.name === 'os')!
      assert.equal(osDisk.mode, 'incremental')
      assert.equal(osDisk.bytesScanned, 10 * 4096)
      assert.equal(rp2.disks.find((d) => d.name === 'data')!.bytesScanned, 0)

      const expected = await store.read(os, 0, 64 * MiB, { snapshot: osDisk.snapshot! })
      const target: DiskRef = { account: 'acct', container: 'vhds', disk: 'os-restored' }
      await restoreToDisk(vault, store, rp2.id, 'os', target)
      assert.ok((await store.read(target, 0, 64 * MiB)).equals(expected))
      assert.equal(store.getDisk(target).usedBytes, store.getDisk(os, osDisk.snapshot!).usedBytes)

      // Over an existing disk: its old content goes, holes included.
      await store.writePages(target, 8 * MiB, randomBytes(MiB))
      await assert.rejects(restoreToDisk(vault, store, rp2.id, 'os', target), /exists/)
      await restoreToDisk(vault, store, rp2.id, 'os', target, { overwrite: true })
      assert.ok((await store.read(target, 0, 64 * MiB)).equals(expected))

      // When the previous snapshot is gone, the next backup compares checksums instead.
      await store.deleteSnapshot(os, osDisk.snapshot!)
      await store.writePages(os, 40 * MiB, randomBytes(4096))
      const rp3 = await backupDisks(vault, store, disks, { item })
      const os3 = rp3.disks.find((d) => d.name === 'os')!
      assert.equal(os3.mode, 'checksum')
      // Untouched 1 MiB chunks are reused; chunks the last incremental split into pieces are rewritten whole.
      assert.equal(os3.chunksReused, 3)
      const restored3: DiskRef = { account: 'acct', container: 'vhds', disk: 'os-3' }
      await restoreToDisk(vault, store, rp3.id, 'os', restored3)
      assert.ok(
        (await store.read(restored3, 0, 64 * MiB)).equals(
          await store.read(os, 0, 64 * MiB, { snapshot: os3.snapshot! }),
        ),
      )
    } finally {
      await vault.close()
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
  it('a restore from the vault leaves the zero runs inside a chunk unallocated, on a new disk and over an old one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-disk-holes-'))
    const store = await LogDiskStore.open(join(dir, 'disks'))
    const vault = await Vault.create(new FsVaultBackend(join(dir, 'vault')), { workers: 1 })
    try {
      await store.createAccount('acct')
      await store.createContainer('acct', 'vhds')
      const os: DiskRef = { account: 'acct', container: 'vhds', disk: 'os' }
      await store.createDisk(os, { size: 8 * MiB })
      // One written 4 MiB run (a guest's mkfs: data, zeros, data), so the zeros sit inside vault chunks.
      const written = Buffer.alloc(4 * MiB)
      randomBytes(64 * 1024).copy(written, 0)
      randomBytes(12 * 1024).copy(written, MiB + 4096)
      randomBytes(4096).copy(written, 4 * MiB - 4096)
      await store.writePages(os, 0, written)
      assert.deepEqual(store.pageRanges(os), [{ start: 0, end: 4 * MiB }])
      const rp = await backupDisks(vault, store, [{ ref: os }], { item: { kind: 'vm', name: 'web' } })

      const target: DiskRef = { account: 'acct', container: 'vhds', disk: 'restored' }
      const expectedRanges = [
        { start: 0, end: 64 * 1024 },
        { start: MiB + 4096, end: MiB + 16 * 1024 },
        { start: 4 * MiB - 4096, end: 4 * MiB },
      ]
      await restoreToDisk(vault, store, rp.id, 'os', target)
      assert.ok((await store.read(target, 0, 8 * MiB)).equals(await store.read(os, 0, 8 * MiB)))
      assert.deepEqual(store.pageRanges(target), expectedRanges)
      assert.equal(store.getDisk(target).usedBytes, 80 * 1024)

      // Over an old disk full of data: the zero runs become holes too.
      for (let o = 0; o < 8 * MiB; o += 4 * MiB) await store.writePages(target, o, randomBytes(4 * MiB))
      await restoreToDisk(vault, store, rp.id, 'os', target, { overwrite: true })
      assert.ok((await store.read(target, 0, 8 * MiB)).equals(await store.read(os, 0, 8 * MiB)))
      assert.deepEqual(store.pageRanges(target), expectedRanges)
    } finally {
      await vault.close()
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
