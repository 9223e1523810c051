import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { CairnError } from '../util/index.js'
import { decodeRecord, encodeRecord } from './_record.js'
import { bufferSink, bufferSource, mixedImage, scatterWrites, textBytes } from './_testing.js'
import { fileSink } from './file-sink.js'
import { fileSource } from './file-source.js'
import type { BackupSource } from './types.js'
import { Vault } from './vault.js'
import {
  type BackendUnderTest,
  ENGINE_BACKENDS,
  FS_BACKEND,
  openPlace,
  S3_BACKEND,
} from './vault-backend.contract.js'
import type { VaultBackend } from './vault-backend.js'

const MiB = 1024 * 1024

/**
 * Runs `fn` with a new vault on `backend` and a temporary folder for files (sources, sinks); `reopen`
 * opens the same objects through another backend instance.
 */
async function withVault(
  backend: BackendUnderTest,
  fn: (v: Vault, dir: string, reopen: () => VaultBackend) => Promise<void>,
  options: { encrypted?: boolean; softDelete?: 'Disabled' } = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-vault-'))
  const place = await backend.place()
  const v = await Vault.create(openPlace(place), {
    ...(options.encrypted ? { encryption: { passphrase: 'correct horse' }, scryptN: 1024 } : {}),
    ...(options.softDelete ? { settings: { softDelete: { state: options.softDelete } } } : {}),
    packSize: 4 * MiB,
    workers: 2,
  })
  try {
    await fn(v, dir, () => openPlace(place))
  } finally {
    await v.close()
    await place.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

async function restored(v: Vault, rp: string, disk: string, size: number): Promise<Buffer> {
  const sink = bufferSink(size)
  await v.restore(rp, disk, sink)
  return sink.data
}

const item = { kind: 'disk', name: 'vm1' }

const patterns: [string, () => Buffer][] = [
  ['empty', () => Buffer.alloc(0)],
  ['one page of text', () => textBytes(512)],
  ['an odd size of random bytes', () => randomBytes(3 * MiB + 4608)],
  ['all zeros', () => Buffer.alloc(5 * MiB)],
  [
    'holes between data',
    () => {
      const b = Buffer.alloc(20 * MiB)
      randomBytes(4096).copy(b, 0)
      textBytes(2 * MiB).copy(b, 7 * MiB + 512)
      randomBytes(512).copy(b, 20 * MiB - 512)
      return b
    },
  ],
  ['mixed data across several index leaves', () => mixedImage(32 * MiB + 512)],
]

for (const backend of ENGINE_BACKENDS)
  for (const encrypted of [false, true]) {
    describe(`vault round trips (${encrypted ? 'encrypted' : 'unencrypted'}, ${backend.name})`, () => {
      for (const [name, make] of patterns) {
        it(`restores ${name} bit for bit`, async () => {
          await withVault(
            backend,
            async (v, dir) => {
              const data = make()
              const rp = await v.backup({ item, sources: [bufferSource('os', data)] })
              assert.equal(rp.disks[0]!.mode, 'full')
              assert.ok((await restored(v, rp.id, 'os', data.length)).equals(data))
              // Into a file, the workers read, open and write the chunks themselves.
              const sink = await fileSink(join(dir, 'out.raw'), { size: data.length })
              await v.restore(rp.id, 'os', sink)
              await sink.close?.()
              assert.ok((await readFile(join(dir, 'out.raw'))).equals(data))
            },
            { encrypted },
          )
        })
      }

      it('an incremental backup of scattered 4 KiB writes stores about the changed bytes and restores both points', async () => {
        await withVault(
          backend,
          async (v) => {
            const img = mixedImage(32 * MiB)
            const first = Buffer.from(img)
            const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
            const changed = scatterWrites(img, 160)
            const src = bufferSource('os', img, { changes: { changed, cleared: [] } })
            const rp2 = await v.backup({ item, base: rp1.id, sources: [src] })
            assert.equal(rp2.disks[0]!.mode, 'incremental')
            assert.equal(src.bytesRead, new Set(changed.map((r) => r.start)).size * 4096)
            const changedBytes = 160 * 4096
            assert.ok(
              rp2.bytesAdded < 2 * changedBytes,
              `added ${rp2.bytesAdded} for ${changedBytes} changed`,
            )
            assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(img))
            assert.ok((await restored(v, rp1.id, 'os', img.length)).equals(first))
          },
          { encrypted },
        )
      })
    })
  }

for (const backend of ENGINE_BACKENDS)
  describe(`vault backups (${backend.name})`, () => {
    it('records consistency with the reference names and keeps the manifest spelling of MANI v1', async () => {
      await withVault(backend, async (v) => {
        const rp = await v.backup({
          item,
          consistency: 'AppConsistent',
          sources: [bufferSource('os', textBytes(512))],
        })
        assert.equal(rp.consistency, 'AppConsistent')
        assert.equal((await v.getRecoveryPoint(rp.id)).consistency, 'AppConsistent')
        const stored = decodeRecord(await v.backend.get(`rp/${rp.id}`), 'MANI', 'manifest')
        assert.equal((stored.body as { consistency: string }).consistency, 'application-consistent')
        const crash = await v.backup({ item, sources: [bufferSource('os', textBytes(512))] })
        assert.equal((await v.getRecoveryPoint(crash.id)).consistency, 'CrashConsistent')
      })
    })

    it('cleared ranges of an incremental read back as zeros', async () => {
      await withVault(backend, async (v) => {
        const img = mixedImage(8 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        img.fill(0, 1000 * 512, 3000 * 512)
        const rp2 = await v.backup({
          item,
          base: rp1.id,
          sources: [
            bufferSource('os', img, {
              changes: { changed: [], cleared: [{ start: 1000 * 512, end: 3000 * 512 }] },
            }),
          ],
        })
        assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(img))
      })
    })

    it('an unchanged incremental adds no data and shares every index page', async () => {
      await withVault(backend, async (v) => {
        const img = mixedImage(24 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        const rp2 = await v.backup({
          item,
          base: rp1.id,
          sources: [bufferSource('os', img, { changes: { changed: [], cleared: [] } })],
        })
        assert.equal(rp2.bytesAdded, 0)
        assert.equal(rp2.disks[0]!.root, rp1.disks[0]!.root)
      })
    })

    it('a checksum backup without a change list stores only the chunks that differ', async () => {
      await withVault(backend, async (v) => {
        const img = mixedImage(32 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        img.writeUInt8(img.readUInt8(5 * MiB + 17) ^ 0xff, 5 * MiB + 17)
        const rp2 = await v.backup({ item, base: rp1.id, sources: [bufferSource('os', img)] })
        assert.equal(rp2.disks[0]!.mode, 'checksum')
        assert.equal(rp2.disks[0]!.chunksNew, 1)
        assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(img))
      })
    })

    it('a checksum backup stores only the changed pages of a changed chunk, over a full or a patched base', async () => {
      await withVault(backend, async (v) => {
        const img = mixedImage(32 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        // No change list: every chunk is hashed, the changed ones compared page by page with the base.
        const changed = scatterWrites(img, 200)
        img.fill(0, 12 * MiB + 8192, 12 * MiB + 12288) // a page of the base (random bytes) cleared to zeros
        const rp2 = await v.backup({ item, base: rp1.id, sources: [bufferSource('os', img)] })
        assert.equal(rp2.disks[0]!.mode, 'checksum')
        assert.ok(rp2.bytesAdded < 2 * changed.length * 4096, `added ${rp2.bytesAdded}`)
        assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(img))
        const atRp2 = Buffer.from(img)
        // Again on the patched base (extents into many chunks), and a chunk mostly rewritten is stored whole.
        scatterWrites(img, 100, 11)
        randomBytes(MiB - 4096).copy(img, 3 * MiB)
        const rp3 = await v.backup({ item, base: rp2.id, sources: [bufferSource('os', img)] })
        assert.ok(rp3.bytesAdded < 2 * (100 * 4096 + MiB), `added ${rp3.bytesAdded}`)
        assert.ok((await restored(v, rp3.id, 'os', img.length)).equals(img))
        assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(atRp2), 'the base point is untouched')
        assert.equal((await v.verify()).problems.length, 0)
      })
    })

    it('data repeated across disks is stored once', async () => {
      await withVault(backend, async (v) => {
        const img = randomBytes(8 * MiB)
        const rp = await v.backup({
          item,
          sources: [bufferSource('a', img, { lun: 0 }), bufferSource('b', img, { lun: 1 })],
        })
        assert.ok(rp.bytesAdded < 9 * MiB, `added ${rp.bytesAdded}`)
        assert.equal(rp.disks[1]!.lun, 1)
        assert.ok((await restored(v, rp.id, 'b', img.length)).equals(img))
      })
    })

    it('deleting the base keeps the incremental whole, also after gc', async () => {
      await withVault(backend, async (v) => {
        const img = mixedImage(24 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        const changed = scatterWrites(img, 50)
        const rp2 = await v.backup({
          item,
          base: rp1.id,
          sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
        })
        await v.deleteRecoveryPoint(rp1.id)
        const report = await v.gc()
        assert.equal(report.skipped, undefined)
        assert.ok((await restored(v, rp2.id, 'os', img.length)).equals(img))
        assert.equal((await v.verify()).problems.length, 0)
      })
    })

    it('gc reclaims the space of deleted recovery points when soft delete is off', async () => {
      await withVault(
        backend,
        async (v) => {
          const a = await v.backup({ item, sources: [bufferSource('os', randomBytes(6 * MiB))] })
          const keep = randomBytes(6 * MiB)
          const b = await v.backup({ item, sources: [bufferSource('os', keep)] })
          await v.deleteRecoveryPoint(a.id)
          const report = await v.gc()
          assert.ok(report.bytesReclaimed >= 6 * MiB, `reclaimed ${report.bytesReclaimed}`)
          assert.ok((await restored(v, b.id, 'os', keep.length)).equals(keep))
          const usage = await v.usage()
          assert.equal(usage.recoveryPoints, 1)
          assert.ok(usage.storedBytes < 7 * MiB)
        },
        { softDelete: 'Disabled' },
      )
    })

    it('prune keeps what the rules keep, gc frees the rest, and verify then finds every point whole', async () => {
      await withVault(backend, async (v, _dir, reopen) => {
        const imgs = [randomBytes(3 * MiB), randomBytes(3 * MiB), randomBytes(3 * MiB)]
        const ids: string[] = []
        for (const img of imgs) ids.push((await v.backup({ item, sources: [bufferSource('os', img)] })).id)
        const other = await v.backup({
          item: { kind: 'disk', name: 'vm2' },
          sources: [bufferSource('os', imgs[0]!)],
        })
        const dry = await v.prune({ policy: { keepLast: 1 }, item: item.name, dryRun: true })
        assert.deepEqual(dry.removed, [ids[0], ids[1]].sort())
        assert.equal((await v.listRecoveryPoints()).length, 4, 'a dry run removes nothing')
        const report = await v.prune({ policy: { keepLast: 1 }, item: item.name })
        assert.deepEqual(report.removed, [ids[0], ids[1]].sort())
        assert.deepEqual((await v.listRecoveryPoints()).map((p) => p.id).sort(), [ids[2], other.id].sort())
        const gc = await v.gc({ repackBelow: 1 })
        assert.ok(gc.bytesReclaimed >= 3 * MiB, `reclaimed ${gc.bytesReclaimed}`)
        assert.ok((await restored(v, ids[2]!, 'os', 3 * MiB)).equals(imgs[2]!))
        assert.ok((await restored(v, other.id, 'os', 3 * MiB)).equals(imgs[0]!), 'shared chunks survive gc')
        assert.deepEqual((await v.verify()).problems, [])
        // What the vault left is all there through a second backend on the same place.
        const packs = await reopen().list('packs/')
        assert.deepEqual(
          packs.map((o) => o.name),
          (await v.backend.list('packs/')).map((o) => o.name),
        )
      })
    })

    it('prune and gc running during a backup delete nothing it needs', async () => {
      await withVault(backend, async (v) => {
        const img = randomBytes(8 * MiB)
        let rounds = 0
        // Each read is slow, and the last one waits for two prune and gc rounds: however fast the
        // backend, they overlap the backup.
        const slow = (data: Buffer): BackupSource => ({
          name: 'os',
          size: data.length,
          read: async (o, l) => {
            await new Promise((r) => setTimeout(r, 120))
            while (o + l >= data.length && rounds < 2) await new Promise((r) => setTimeout(r, 20))
            return Buffer.from(data.subarray(o, o + l))
          },
          ranges: async () => [{ start: 0, end: data.length }],
        })
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        const img2 = Buffer.from(img)
        randomBytes(2 * MiB).copy(img2, 3 * MiB)
        // A checksum backup reuses rp1's chunks while prune tries to remove rp1 and gc repacks.
        const running = v.backup({ item, base: rp1.id, sources: [slow(img2)] })
        let settled = false
        void running.finally(() => {
          settled = true
        })
        while (!settled) {
          await v.prune({ policy: { keepLast: 1 } })
          await v.gc({ repackBelow: 1 })
          rounds++
        }
        const rp2 = await running
        assert.ok(rounds >= 2, `only ${rounds} prune and gc rounds overlapped the backup`)
        await v.prune({ policy: { keepLast: 1 } })
        await v.gc({ repackBelow: 1 })
        assert.deepEqual(
          (await v.listRecoveryPoints()).map((p) => p.id),
          [rp2.id],
        )
        assert.ok((await restored(v, rp2.id, 'os', img2.length)).equals(img2))
        assert.deepEqual((await v.verify()).problems, [])
      })
    })

    it('verify reports a pack that went missing from the backend, and a restore that needs it fails', async () => {
      await withVault(backend, async (v) => {
        const img = randomBytes(6 * MiB)
        const rp = await v.backup({ item, sources: [bufferSource('os', img)] })
        const packs = await v.backend.list('packs/')
        assert.ok(packs.length >= 2, `${packs.length} packs`)
        await v.backend.delete(packs[0]!.name)
        const report = await v.verify()
        assert.ok(report.problems.length > 0, 'verify found nothing wrong')
        await assert.rejects(
          restored(v, rp.id, 'os', img.length),
          (e: CairnError) => e.code === 'VaultObjectMissing' || e.code === 'VaultCorrupt',
        )
      })
    })

    it('a cancelled backup throws Cancelled and leaves no recovery point', async () => {
      await withVault(backend, async (v) => {
        const ac = new AbortController()
        const p = v.backup({
          item,
          sources: [bufferSource('os', randomBytes(32 * MiB))],
          signal: ac.signal,
          onProgress: () => ac.abort(),
        })
        await assert.rejects(p, (e: CairnError) => e.code === 'Cancelled')
        assert.equal((await v.listRecoveryPoints()).length, 0)
      })
    })

    it('progress reports bytes, rate and an ETA', async () => {
      await withVault(backend, async (v) => {
        const seen: number[] = []
        await v.backup({
          item,
          sources: [bufferSource('os', randomBytes(8 * MiB))],
          onProgress: (p) => seen.push(p.bytesDone),
        })
        assert.equal(seen.at(-1), 8 * MiB)
      })
    })

    it('backs up a raw file and restores it into a sparse file', async () => {
      await withVault(backend, async (v, dir) => {
        const img = mixedImage(12 * MiB)
        await writeFile(join(dir, 'disk.raw'), img)
        const src = await fileSource(join(dir, 'disk.raw'), { name: 'data' })
        const rp = await v.backup({ item, sources: [src] })
        await src.close?.()
        const sink = await fileSink(join(dir, 'out.raw'), { size: img.length })
        await v.restore(rp.id, 'data', sink)
        await sink.close?.()
        assert.ok((await readFile(join(dir, 'out.raw'))).equals(img))
        const st = await stat(join(dir, 'out.raw'))
        assert.ok(st.blocks * 512 < img.length, 'the zero quarter stays a hole')
      })
    })

    it('a full backup of a sparse raw file reads only its data, and restores bit for bit', async () => {
      await withVault(backend, async (v, dir) => {
        const path = join(dir, 'sparse.raw')
        const size = 24 * MiB
        const fh = await open(path, 'w')
        await fh.truncate(size)
        const a = randomBytes(3 * MiB + 4096)
        const b = textBytes(MiB)
        await fh.write(a, 0, a.length, 2 * MiB)
        await fh.write(b, 0, b.length, 20 * MiB)
        await fh.close()
        const src = await fileSource(path, { name: 'data' })
        const rp = await v.backup({ item, sources: [src] })
        await src.close?.()
        const scanned = rp.disks[0]!.bytesScanned
        assert.ok(scanned >= a.length + b.length && scanned <= 8 * MiB, `scanned ${scanned}`)
        const sink = await fileSink(join(dir, 'out.raw'), { size })
        await v.restore(rp.id, 'data', sink)
        await sink.close?.()
        assert.ok((await readFile(join(dir, 'out.raw'))).equals(await readFile(path)))
      })
    })

    it('an incremental of a raw file, whose changed runs the workers read, restores bit for bit', async () => {
      await withVault(backend, async (v, dir) => {
        const path = join(dir, 'disk.raw')
        const img = mixedImage(12 * MiB)
        await writeFile(path, img)
        const full = await fileSource(path, { name: 'data' })
        const rp1 = await v.backup({ item, sources: [full] })
        await full.close?.()
        const changed = scatterWrites(img, 120)
        // A run that became zeros, an unaligned one (widened to its page) and the last page of the disk.
        img.fill(0, 4 * MiB, 4 * MiB + 8192)
        img.write('changed', 5000)
        randomBytes(4096).copy(img, img.length - 4096)
        changed.push(
          { start: 4 * MiB, end: 4 * MiB + 8192 },
          { start: 5000, end: 5007 },
          { start: img.length - 4096, end: img.length },
        )
        await writeFile(path, img)
        const src = await fileSource(path, { name: 'data', changes: { changed, cleared: [] } })
        const rp2 = await v.backup({ item, base: rp1.id, sources: [src] })
        await src.close?.()
        assert.equal(rp2.disks[0]!.mode, 'incremental')
        assert.ok(rp2.bytesAdded < 2 * 123 * 4096, `added ${rp2.bytesAdded}`)
        const sink = await fileSink(join(dir, 'out.raw'), { size: img.length })
        await v.restore(rp2.id, 'data', sink)
        await sink.close?.()
        assert.ok((await readFile(join(dir, 'out.raw'))).equals(img))
      })
    })
  })

describe('vault on a folder', () => {
  it('gc removes temporary files a killed writer left behind', async () => {
    await withVault(FS_BACKEND, async (v) => {
      const { mkdir, utimes, readdir } = await import('node:fs/promises')
      const tmp = join(v.backend.location, '.tmp')
      await mkdir(tmp, { recursive: true })
      await writeFile(join(tmp, 'left-behind'), 'x')
      await utimes(join(tmp, 'left-behind'), new Date(0), new Date(0))
      const report = await v.gc()
      assert.equal(report.temporaryFilesRemoved, 1)
      assert.deepEqual(await readdir(tmp), [])
    })
  })

  it('gc deletes the lock files of killed backups once they expired, and leaves live ones', async () => {
    await withVault(FS_BACKEND, async (v) => {
      const { readdir } = await import('node:fs/promises')
      const backend = v.backend
      const lock = (id: string, at: Date) =>
        encodeRecord('LOCK', 1, {
          id,
          startedAt: at.toISOString(),
          updatedAt: at.toISOString(),
          bases: [],
          packs: [],
        })
      // What a backup killed 20 minutes ago leaves, and the lock of one running now.
      await backend.put('locks/killed', lock('killed', new Date(Date.now() - 20 * 60_000)))
      await backend.put('locks/running', lock('running', new Date()))
      const report = await v.gc()
      assert.equal(report.expiredLocksRemoved, 1)
      assert.deepEqual(await readdir(join(v.backend.location, 'locks')), ['running'])
      const again = await v.gc()
      assert.equal(again.expiredLocksRemoved, 0)
      assert.deepEqual(await readdir(join(v.backend.location, 'locks')), ['running'])
    })
  })

  it('a file sink that has flushed in the background while writing still holds every byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-sink-'))
    try {
      // 80 MiB passes the 64 MiB background-flush mark once; the last 16 MiB is left to close().
      const size = 80 * MiB
      const block = randomBytes(MiB)
      const sink = await fileSink(join(dir, 'out.raw'), { size })
      for (let o = 0; o < size; o += MiB) {
        block.writeUInt32LE(o / MiB, 0)
        await sink.write(o, block)
      }
      await sink.close?.()
      const out = await readFile(join(dir, 'out.raw'))
      assert.equal(out.length, size)
      for (let o = 0; o < size; o += MiB) {
        assert.equal(out.readUInt32LE(o), o / MiB)
        assert.ok(out.subarray(o + 4, o + MiB).equals(block.subarray(4)))
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

for (const backend of ENGINE_BACKENDS)
  describe(`vault keys (${backend.name})`, () => {
    it('a wrong passphrase is a clear error and a changed passphrase opens the same data', async () => {
      const place = await backend.place()
      try {
        const v = await Vault.create(openPlace(place), {
          encryption: { passphrase: 'one' },
          scryptN: 1024,
        })
        const img = randomBytes(MiB)
        const rp = await v.backup({ item, sources: [bufferSource('os', img)] })
        await v.changeKey({ passphrase: 'two' }, { scryptN: 1024 })
        await v.close()
        await assert.rejects(
          Vault.open(openPlace(place), { passphrase: 'one' }),
          (e: CairnError) => e.code === 'VaultKeyInvalid',
        )
        await assert.rejects(Vault.open(openPlace(place)), (e: CairnError) => e.code === 'VaultKeyRequired')
        const v2 = await Vault.open(openPlace(place), { passphrase: 'two' })
        assert.ok((await restored(v2, rp.id, 'os', img.length)).equals(img))
        await v2.changeKey({ keyFile: randomBytes(32) })
        await v2.close()
        await assert.rejects(
          Vault.open(openPlace(place), { passphrase: 'two' }),
          (e: CairnError) => e.code === 'VaultKeyRequired',
        )
      } finally {
        await place.cleanup()
      }
    })

    it('chunk ids of an encrypted vault differ from the plain SHA-256 of the data', async () => {
      await withVault(
        backend,
        async (v) => {
          const data = textBytes(MiB)
          await v.backup({ item, sources: [bufferSource('os', data)] })
          const { createHash } = await import('node:crypto')
          const plainId = createHash('sha256').update(data).digest('hex')
          const packs = await v.backend.list('packs/')
          assert.ok(packs.length > 0)
          for (const p of packs) assert.ok(!(await v.backend.get(p.name)).toString('hex').includes(plainId))
        },
        { encrypted: true },
      )
    })
  })

for (const backend of [FS_BACKEND, S3_BACKEND])
  describe(`gc on a store shared with running backups (${backend.name})`, () => {
    it('keeps packs newer than the oldest running backup of any instance and than the grace period, and collects them after', async () => {
      await withVault(
        backend,
        async (v, _dir, reopen) => {
          // Another service's backup on the same store, held open at its last read.
          const other = await Vault.open(reopen())
          let release: () => void = () => {}
          const held = new Promise<void>((r) => {
            release = r
          })
          const data = randomBytes(2 * MiB)
          const running = other.backup({
            item: { kind: 'disk', name: 'other' },
            sources: [
              {
                name: 'os',
                size: data.length,
                read: async (o, l) => {
                  if (o + l >= data.length) await held
                  return Buffer.from(data.subarray(o, o + l))
                },
                ranges: async () => [{ start: 0, end: data.length }],
              },
            ],
          })
          // Garbage made after that backup started: a point backed up, then deleted.
          await new Promise((r) => setTimeout(r, 1100))
          const rp = await v.backup({ item, sources: [bufferSource('os', randomBytes(3 * MiB))] })
          await v.deleteRecoveryPoint(rp.id)
          const during = await v.gc()
          assert.equal(during.packsDeleted, 0, 'nothing newer than the running backup is collected')
          assert.ok((during.packsKeptAsRecent ?? 0) > 0)
          release()
          const otherRp = await running
          await other.close()
          const graced = await v.gc({ graceMs: 60_000 })
          assert.equal(graced.packsDeleted, 0, 'nothing within the grace period is collected')
          const after = await v.gc()
          assert.ok(after.packsDeleted > 0, 'the garbage goes once no backup runs and no grace holds it')
          assert.deepEqual(
            (await v.listRecoveryPoints()).map((p) => p.id),
            [otherRp.id],
          )
          assert.ok((await restored(v, otherRp.id, 'os', data.length)).equals(data))
          assert.deepEqual((await v.verify()).problems, [])
        },
        { softDelete: 'Disabled' },
      )
    })
  })
