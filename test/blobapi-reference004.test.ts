// The reference's "incremental snapshots for backup and recovery of VM disks" procedure (reference/004),
// run unchanged with the official SDK against Cairn, comparing bytes at every step.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  BlobSASPermissions,
  BlobServiceClient,
  type PageBlobClient,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { type BlobApiHarness, pattern, startBlobApi } from './_blobapi-harness.js'

const KiB = 1024
const MiB = 1024 * KiB
const DISK = 16 * MiB

async function serviceFor(h: BlobApiHarness, name: string): Promise<BlobServiceClient> {
  const account = await h.store.createAccount(name)
  return new BlobServiceClient(`${h.url}/${name}`, new StorageSharedKeyCredential(name, account.keys[0]), {
    retryOptions: { maxTries: 1 },
  })
}

/** A read SAS URL of a blob or snapshot: a copy source in another account needs one, as on Azure. */
function readSas(b: PageBlobClient): Promise<string> {
  return b.generateSasUrl({
    permissions: BlobSASPermissions.parse('r'),
    expiresOn: new Date(Date.now() + 3600_000),
  })
}

/** Step 5 of the backup: apply the diff of `snapshot` since `prev` to the backup page blob. */
async function applyDiff(
  source: PageBlobClient,
  snapshot: string,
  prev: string,
  backup: PageBlobClient,
): Promise<number> {
  let moved = 0
  const diff = await source.withSnapshot(snapshot).getPageRangesDiff(0, DISK, prev)
  for (const r of diff.pageRange ?? []) {
    const end = r.offset + r.count! + 1
    for (let at = r.offset; at < end; at += 4 * MiB) {
      const n = Math.min(4 * MiB, end - at)
      const data = await source.withSnapshot(snapshot).downloadToBuffer(at, n)
      await backup.uploadPages(data, at, n)
      moved += n
    }
  }
  for (const r of diff.clearRange ?? []) await backup.clearPages(r.offset, r.count! + 1)
  return moved
}

async function bytes(b: PageBlobClient): Promise<Buffer> {
  return b.downloadToBuffer()
}

describe('reference/004: VM disk backup and restore with incremental snapshots', () => {
  it('backs up a premium disk to a standard account by diffs and restores it, bytes equal at each step', async () => {
    const h = await startBlobApi()
    try {
      const premium = await serviceFor(h, 'mypremiumaccount')
      const standard = await serviceFor(h, 'mybackupstdaccount')
      const vhds = premium.getContainerClient('vhds')
      const backups = standard.getContainerClient('backups')
      await vhds.create()
      await backups.create()

      // The VM's disk with some data on it.
      const disk = vhds.getPageBlobClient('mypremiumdisk')
      await disk.create(DISK)
      const expected = Buffer.alloc(DISK)
      const write = async (at: number, data: Buffer) => {
        await disk.uploadPages(data, at, data.length)
        data.copy(expected, at)
      }
      const clear = async (at: number, n: number) => {
        await disk.clearPages(at, n)
        expected.fill(0, at, at + n)
      }
      await write(0, pattern(4 * MiB, 1))
      await write(8 * MiB, pattern(1 * MiB, 2))

      // Backup 1: snapshot, copy the snapshot to the backup account, snapshot the backup blob.
      const ss1 = (await disk.createSnapshot()).snapshot!
      const atSs1 = Buffer.from(expected)
      const backup = backups.getPageBlobClient('mybackupstdpageblob')
      const copy = await (
        await backup.beginCopyFromURL(await readSas(disk.withSnapshot(ss1)))
      ).pollUntilDone()
      assert.equal(copy.copyStatus, 'success')
      assert.deepEqual(await bytes(backup), atSs1)
      const bss1 = (await backup.createSnapshot()).snapshot!
      assert.deepEqual(await bytes(backup.withSnapshot(bss1)), atSs1)

      // The VM keeps writing; backup 2 sends only the difference.
      await write(1 * MiB, pattern(512 * KiB, 3))
      await clear(8 * MiB, 256 * KiB)
      await write(15 * MiB, pattern(4 * KiB, 4))
      const ss2 = (await disk.createSnapshot()).snapshot!
      const atSs2 = Buffer.from(expected)
      const moved2 = await applyDiff(disk, ss2, ss1, backup)
      assert.equal(moved2, 512 * KiB + 4 * KiB)
      const bss2 = (await backup.createSnapshot()).snapshot!
      assert.deepEqual(await bytes(backup.withSnapshot(bss2)), atSs2)
      await disk.withSnapshot(ss1).delete()

      // Backup 3, after more writes.
      await write(2 * MiB, pattern(64 * KiB, 5))
      await clear(0, 64 * KiB)
      const ss3 = (await disk.createSnapshot()).snapshot!
      const atSs3 = Buffer.from(expected)
      const moved3 = await applyDiff(disk, ss3, ss2, backup)
      assert.equal(moved3, 64 * KiB)
      const bss3 = (await backup.createSnapshot()).snapshot!
      assert.deepEqual(await bytes(backup.withSnapshot(bss3)), atSs3)
      await disk.withSnapshot(ss2).delete()
      // Older backup points still read as they were.
      assert.deepEqual(await bytes(backup.withSnapshot(bss1)), atSs1)
      assert.deepEqual(await bytes(backup.withSnapshot(bss2)), atSs2)

      // Restore to backup point 2: promote the snapshot as a new backup base blob and snapshot it.
      const restoredBackup = backups.getPageBlobClient('mybackupstdpageblobrestored')
      await (await restoredBackup.beginCopyFromURL(await readSas(backup.withSnapshot(bss2)))).pollUntilDone()
      assert.deepEqual(await bytes(restoredBackup), atSs2)
      const rbss1 = (await restoredBackup.createSnapshot()).snapshot!

      // Copy the restored backup blob to the premium account as the new disk; snapshot it.
      const restored = vhds.getPageBlobClient('mypremiumdiskrestored')
      await (await restored.beginCopyFromURL(await readSas(restoredBackup))).pollUntilDone()
      assert.deepEqual(await bytes(restored), atSs2)
      const rss1 = (await restored.createSnapshot()).snapshot!
      assert.deepEqual(await bytes(restored.withSnapshot(rss1)), atSs2)

      // The restored disk runs and is backed up incrementally to the restored backup blob.
      const after = Buffer.from(atSs2)
      const change = pattern(8 * KiB, 6)
      await restored.uploadPages(change, 12 * MiB, change.length)
      change.copy(after, 12 * MiB)
      const rss2 = (await restored.createSnapshot()).snapshot!
      assert.equal(await applyDiff(restored, rss2, rss1, restoredBackup), 8 * KiB)
      const rbss2 = (await restoredBackup.createSnapshot()).snapshot!
      assert.deepEqual(await bytes(restoredBackup.withSnapshot(rbss2)), after)
      assert.deepEqual(await bytes(restoredBackup.withSnapshot(rbss1)), atSs2)
      // The original disk is untouched by the restore.
      assert.deepEqual(await bytes(disk), expected)
    } finally {
      await h.close()
    }
  })

  it('keeps the same backups with Incremental Copy Blob across accounts', async () => {
    const h = await startBlobApi()
    try {
      const premium = await serviceFor(h, 'premium')
      const standard = await serviceFor(h, 'standard')
      const vhds = premium.getContainerClient('vhds')
      const backups = standard.getContainerClient('backups')
      await vhds.create()
      await backups.create()
      const disk = vhds.getPageBlobClient('disk')
      await disk.create(DISK)
      await disk.uploadPages(pattern(2 * MiB, 1), 0, 2 * MiB)
      const points: { source: string; bytes: Buffer }[] = []
      const backup = backups.getPageBlobClient('disk-backup')
      for (let round = 0; round < 3; round++) {
        if (round > 0) {
          await disk.uploadPages(pattern(256 * KiB, 10 + round), round * 3 * MiB, 256 * KiB)
          await disk.clearPages(round * 64 * KiB, 64 * KiB)
        }
        const s = (await disk.createSnapshot()).snapshot!
        points.push({ source: s, bytes: await bytes(disk.withSnapshot(s)) })
        const r = await backup.startCopyIncremental(await readSas(disk.withSnapshot(s)))
        assert.equal(r.copyStatus, 'success')
      }
      const kept: string[] = []
      for await (const b of backups.listBlobsFlat({ includeSnapshots: true }))
        if (b.snapshot) kept.push(b.snapshot)
      assert.equal(kept.length, 3)
      for (let i = 0; i < 3; i++)
        assert.deepEqual(await bytes(backup.withSnapshot(kept[i]!)), points[i]!.bytes)
      // Restore from the second point: copy the backup snapshot back as a new disk.
      const restored = vhds.getPageBlobClient('disk-restored')
      await restored.syncCopyFromURL(await readSas(backup.withSnapshot(kept[1]!)))
      assert.deepEqual(await bytes(restored), points[1]!.bytes)
    } finally {
      await h.close()
    }
  })
})
