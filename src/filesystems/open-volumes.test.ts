import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import {
  FileBlockSource,
  makeExtImage,
  makeFatImage,
  makeGptDisk,
  patch,
  placeAt,
  run,
} from './_test-images.js'
import { openFileSystem, openVolumes } from './index.js'

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  try {
    await promise
  } catch (err) {
    assert.ok(isCairnError(err), `expected a CairnError ${code}, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return err
  }
  assert.fail(`expected ${code}, got success`)
}

const MiB = 1024 * 1024

describe('openVolumes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-vol-'))
  const tree = join(dir, 'tree')
  const ext = join(dir, 'ext.img')
  const fat = join(dir, 'fat.img')
  before(() => {
    run('mkdir', ['-p', join(tree, 'sub')])
    writeFileSync(join(tree, 'hello.txt'), 'hello from a partition\n')
    writeFileSync(join(tree, 'sub', 'inner.txt'), 'inner\n')
    makeExtImage(ext, tree, 8)
    makeFatImage(fat, tree, 8, 12)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('reads an MBR with two primary partitions and logical ones in an extended partition (sfdisk)', async () => {
    const disk = join(dir, 'mbr.img')
    writeFileSync(disk, '')
    truncateSync(disk, 40 * MiB)
    // 1: ext4 at 1 MiB, 2: FAT16 at 9 MiB, 3: extended from 17 MiB with logical 5 (ext4) and 6 (swap).
    run('sfdisk', ['-q', disk], {
      input:
        'label: dos\nstart=2048, size=16384, type=83\nstart=18432, size=16384, type=1\nstart=34816, size=40960, type=5\nstart=36864, size=16384, type=83\nstart=55296, size=8192, type=82\n',
    })
    placeAt(disk, 1 * MiB, ext)
    placeAt(disk, 9 * MiB, fat)
    placeAt(disk, 18 * MiB, ext)
    const swap = join(dir, 'swap.img')
    writeFileSync(swap, '')
    truncateSync(swap, 4 * MiB)
    run('mkswap', ['-q', swap])
    placeAt(disk, 27 * MiB, swap)
    const src = new FileBlockSource(disk)
    try {
      const vols = await openVolumes(src)
      const sf = JSON.parse(run('sfdisk', ['--json', disk])) as {
        partitiontable: { partitions: Array<{ node: string; start: number; size: number }> }
      }
      const expected = sf.partitiontable.partitions.filter((p) => !p.node.endsWith('3'))
      assert.deepEqual(
        vols.map((v) => [v.partition, v.start, v.size]),
        expected.map((p) => [Number(/(\d+)$/.exec(p.node)![1]), p.start * 512, p.size * 512]),
      )
      assert.deepEqual(
        vols.map((v) => [v.scheme, v.type, v.fsType, v.supported]),
        [
          ['mbr', 'ext', 'ext4', true],
          ['mbr', 'fat', 'fat12', true],
          ['mbr', 'ext', 'ext4', true],
          ['mbr', 'swap', 'swap', false],
        ],
      )
      assert.equal(vols[3]!.partitionType, '0x82')
      for (const v of vols.slice(0, 3)) {
        const fs = await openFileSystem(src, v)
        assert.equal((await fs.read('/sub/inner.txt', 0, 100)).toString(), 'inner\n')
      }
      const err = await expectCode(openFileSystem(src, vols[3]!), 'FileSystemUnsupported')
      assert.match(err.message, /swap/)
    } finally {
      src.close()
    }
  })

  it('refuses an extended partition whose chain of boot records loops', async () => {
    const disk = join(dir, 'mbr-loop.img')
    writeFileSync(disk, '')
    truncateSync(disk, 20 * MiB)
    run('sfdisk', ['-q', disk], {
      input:
        'label: dos\nstart=2048, size=30000, type=5\nstart=4096, size=4096, type=83\nstart=10240, size=4096, type=83\n',
    })
    // The second EBR links back to itself.
    const image = readFileSync(disk)
    const ebr1 = 2048 * 512
    const next = image.readUInt32LE(ebr1 + 446 + 16 + 8)
    const ebr2 = ebr1 + next * 512
    const self = Buffer.alloc(4)
    self.writeUInt32LE(next, 0)
    patch(disk, ebr2 + 446 + 16 + 8, self)
    patch(disk, ebr2 + 446 + 16 + 4, Buffer.from([5]))
    const src = new FileBlockSource(disk)
    try {
      const err = await expectCode(openVolumes(src), 'FileSystemCorrupt')
      assert.match(err.message, /loops/)
    } finally {
      src.close()
    }
  })

  it('reads a whole-disk file system without a partition table', async () => {
    const src = new FileBlockSource(ext)
    try {
      const vols = await openVolumes(src)
      assert.deepEqual(
        vols.map((v) => [v.partition, v.start, v.size, v.scheme, v.fsType]),
        [[null, 0, 8 * MiB, 'none', 'ext4']],
      )
    } finally {
      src.close()
    }
  })

  it('falls back to the backup GPT header when the primary is damaged, and refuses when both are', async () => {
    const disk = join(dir, 'gpt.img')
    makeGptDisk(disk, ext, 12)
    patch(disk, 512 + 24, Buffer.from([9])) // current LBA: covered by the header CRC
    const src = new FileBlockSource(disk)
    try {
      const vols = await openVolumes(src)
      assert.equal(vols.length, 1)
      assert.equal(vols[0]!.fsType, 'ext4')
      assert.equal(vols[0]!.start, MiB)
    } finally {
      src.close()
    }
    patch(disk, 12 * MiB - 512 + 24, Buffer.from([9]))
    const both = new FileBlockSource(disk)
    try {
      const err = await expectCode(openVolumes(both), 'FileSystemCorrupt')
      assert.match(err.message, /primary GPT header has a bad CRC32.*backup GPT header/)
    } finally {
      both.close()
    }
  })

  it('refuses a truncated disk clearly: a cut partition table, a partition past the end', async () => {
    const disk = join(dir, 'cut.img')
    makeGptDisk(disk, ext, 12)
    truncateSync(disk, 5 * MiB)
    const src = new FileBlockSource(disk)
    try {
      const [v] = await openVolumes(src)
      assert.equal(v!.supported, false)
      assert.match(v!.reason!, /past the end of the disk/)
      await expectCode(openFileSystem(src, v!), 'FileSystemCorrupt')
    } finally {
      src.close()
    }
    truncateSync(disk, 4096)
    const cut = new FileBlockSource(disk)
    try {
      const err = await expectCode(openVolumes(cut), 'FileSystemCorrupt')
      assert.match(err.message, /GPT/)
    } finally {
      cut.close()
    }
  })

  it('names LVM, XFS, btrfs, LUKS and BitLocker volumes as not supported instead of reading garbage', async () => {
    // No pvcreate or mkfs.xfs on the test machine: their signatures are written as blkid reads them.
    const disk = join(dir, 'others.img')
    writeFileSync(disk, '')
    truncateSync(disk, 20 * MiB)
    const parts = ['lvm', 'xfs', 'btrfs', 'luks', 'bitlocker']
    run(
      'sgdisk',
      parts.flatMap((_, i) => ['-n', `${i + 1}:${2048 + i * 4096}:${2048 + i * 4096 + 4095}`]).concat([disk]),
    )
    const at = (i: number) => MiB + i * 2 * MiB
    patch(disk, at(0) + 512, Buffer.from('LABELONE'))
    patch(disk, at(0) + 512 + 24, Buffer.from('LVM2 001'))
    patch(disk, at(1), Buffer.from('XFSB'))
    patch(disk, at(2) + 0x10040, Buffer.from('_BHRfS_M'))
    patch(disk, at(3), Buffer.from('LUKS\xba\xbe', 'latin1'))
    patch(disk, at(4) + 3, Buffer.from('-FVE-FS-'))
    const src = new FileBlockSource(disk)
    try {
      const vols = await openVolumes(src)
      assert.deepEqual(
        vols.map((v) => [v.type, v.fsType, v.supported]),
        [
          ['lvm', 'LVM2_member', false],
          ['xfs', 'xfs', false],
          ['btrfs', 'btrfs', false],
          ['luks', 'crypto_LUKS', false],
          ['bitlocker', 'BitLocker', false],
        ],
      )
      for (const v of vols) {
        const err = await expectCode(openFileSystem(src, v), 'FileSystemUnsupported')
        assert.match(err.message, /not supported/)
      }
    } finally {
      src.close()
    }
  })

  it('answers random bytes, with and without a boot signature, without a crash', async () => {
    const disk = join(dir, 'garbage.img')
    for (let round = 0; round < 40; round++) {
      const bytes = randomBytes(2 * MiB)
      if (round % 2 === 0) bytes.writeUInt16LE(0xaa55, 510)
      if (round % 4 === 0) bytes[446 + 4] = 0xee
      if (round % 4 === 2) bytes[446 + 4] = 0x05
      writeFileSync(disk, bytes)
      const src = new FileBlockSource(disk)
      try {
        const vols = await openVolumes(src).catch((err: unknown) => {
          if (isCairnError(err) && err.code === 'FileSystemCorrupt') return []
          throw err
        })
        for (const v of vols) {
          await openFileSystem(src, v).catch((err: unknown) => {
            if (!isCairnError(err) || !['FileSystemCorrupt', 'FileSystemUnsupported'].includes(err.code))
              throw err
          })
        }
      } finally {
        src.close()
      }
    }
  })
})
