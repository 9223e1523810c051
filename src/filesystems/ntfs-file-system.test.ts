import assert from 'node:assert/strict'
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import {
  FileBlockSource,
  LONG_NAME,
  makeGptDisk,
  makeNtfsImage,
  makeTree,
  patch,
  placeAt,
  run,
  sha256,
  sourceEntries,
  TREE_MTIME,
  UNICODE_NAME,
} from './_test-images.js'
import { type FileSystem, openFileSystem, openVolumes } from './index.js'

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

async function open(image: string, latencyMs = 0): Promise<{ fs: FileSystem; src: FileBlockSource }> {
  const src = new FileBlockSource(image, { latencyMs })
  const vols = await openVolumes(src)
  const vol = vols.find((v) => v.type === 'ntfs')
  assert.ok(vol, 'an NTFS volume')
  return { fs: await openFileSystem(src, vol), src }
}

/** The names ntfsls lists in one directory (no `.`/`..`, no metadata files). */
function ntfsls(image: string, path: string): string[] {
  return run('ntfsls', ['-p', path, image])
    .split('\n')
    .filter((l) => l !== '' && l !== '.' && l !== '..')
}

/** The MFT record number of a path, as ntfsinfo sees it. */
function recordOf(image: string, path: string): number {
  return Number(/Dumping Inode (\d+)/.exec(run('ntfsinfo', ['-F', path, image]))![1])
}

/** A Windows symlink reparse buffer (IO_REPARSE_TAG_SYMLINK, relative) pointing at `target`. */
function symlinkReparse(target: string): Buffer {
  const name = Buffer.from(target, 'utf16le')
  const body = Buffer.alloc(12 + name.length * 2)
  body.writeUInt16LE(0, 0)
  body.writeUInt16LE(name.length, 2)
  body.writeUInt16LE(name.length, 4)
  body.writeUInt16LE(name.length, 6)
  body.writeUInt32LE(1, 8)
  name.copy(body, 12)
  name.copy(body, 12 + name.length)
  const head = Buffer.alloc(8)
  head.writeUInt32LE(0xa000000c, 0)
  head.writeUInt16LE(body.length, 4)
  return Buffer.concat([head, body])
}

/** A junction (IO_REPARSE_TAG_MOUNT_POINT) to an absolute Windows path. */
function junctionReparse(target: string): Buffer {
  const subst = Buffer.from(`\\??\\${target}\0`, 'utf16le')
  const print = Buffer.from(`${target}\0`, 'utf16le')
  const body = Buffer.alloc(8 + subst.length + print.length)
  body.writeUInt16LE(0, 0)
  body.writeUInt16LE(subst.length - 2, 2)
  body.writeUInt16LE(subst.length, 4)
  body.writeUInt16LE(print.length - 2, 6)
  subst.copy(body, 8)
  print.copy(body, 8 + subst.length)
  const head = Buffer.alloc(8)
  head.writeUInt32LE(0xa0000003, 0)
  head.writeUInt16LE(body.length, 4)
  return Buffer.concat([head, body])
}

function setXattr(path: string, name: string, value: Buffer): void {
  run('/usr/bin/python3', [
    '-c',
    'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))',
    path,
    name,
    value.toString('hex'),
  ])
}

/** Bytes of frag.bin: nearly all the free space left, once the volume is full of one-cluster holes. */
let fragBytes = 0
const COMPRESSIBLE = Array.from({ length: 20000 }, (_, i) => `line ${i} of a compressible file\n`).join('')

function pattern(bytes: number, seed: number): Buffer {
  const out = Buffer.alloc(bytes)
  for (let i = 0; i + 4 <= bytes; i += 4) out.writeUInt32LE(Math.imul(i + seed, 2654435761) >>> 0, i)
  return out
}

const STRIPES = 400

/** 4 KiB of data, then a 4 KiB hole, STRIPES times: 800 runs, more than one MFT record holds. */
function stripedBytes(): Buffer {
  const out = pattern(STRIPES * 8192, 5)
  for (let i = 0; i < STRIPES; i++) out.fill(0, i * 8192 + 4096, i * 8192 + 8192)
  return out.subarray(0, STRIPES * 8192 - 4096)
}

/** 4 KiB chunks that compress and chunks that do not, in turn: LZNT1 stores the latter raw. */
function mixed(): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < 40; i++)
    parts.push(i % 2 ? pattern(4096, i) : Buffer.from(COMPRESSIBLE.slice(i * 4096, i * 4096 + 4096)))
  return Buffer.concat([...parts, Buffer.from('tail')])
}

/**
 * What goes in beside the tree: a file fragmented over ~1,000 one-cluster holes that also has long hard
 * links, so it needs an $ATTRIBUTE_LIST; a striped sparse file whose runs fill several MFT records;
 * LZNT1-compressed files; a Win32 name with a DOS twin; a Windows symlink reparse point; a deleted file.
 */
function fillExtras(mnt: string): void {
  rmSync(join(mnt, 'deleted.txt'))
  writeFileSync(join(mnt, 'frag.bin'), '')
  for (let i = 0; i < 12; i++)
    run('ln', [join(mnt, 'frag.bin'), join(mnt, `frag-link-${'x'.repeat(60)}-${i}`)])
  mkdirSync(join(mnt, 'fill'))
  for (let i = 0; i < 2400; i++) writeFileSync(join(mnt, 'fill', String(i)), Buffer.alloc(4096, 1))
  const filler = openSync(join(mnt, 'filler'), 'w')
  for (const chunk of [Buffer.alloc(1 << 20, 2), Buffer.alloc(4096, 2)]) {
    try {
      for (;;) writeSync(filler, chunk)
    } catch {
      // ENOSPC: the volume is full
    }
  }
  closeSync(filler)
  for (let i = 0; i < 2400; i += 2) rmSync(join(mnt, 'fill', String(i)))
  const free = statfsSync(mnt)
  fragBytes = (free.bavail - 100) * free.bsize
  writeFileSync(join(mnt, 'frag.bin'), pattern(fragBytes, 1))
  rmSync(join(mnt, 'filler'))
  const striped = openSync(join(mnt, 'striped.bin'), 'w')
  const stripes = stripedBytes()
  for (let i = 0; i < STRIPES; i++) writeSync(striped, stripes, i * 8192, 4096, i * 8192)
  closeSync(striped)
  rmSync(join(mnt, 'fill'), { recursive: true })
  mkdirSync(join(mnt, 'compressed'))
  setXattr(join(mnt, 'compressed'), 'system.ntfs_attrib_be', Buffer.from('00000800', 'hex'))
  writeFileSync(join(mnt, 'compressed', 'text.txt'), COMPRESSIBLE)
  writeFileSync(join(mnt, 'compressed', 'random.bin'), pattern(300_000, 7))
  writeFileSync(join(mnt, 'compressed', 'mixed.bin'), mixed())
  // A Win32 name with a DOS 8.3 twin, as Windows makes them: two index entries, one file.
  writeFileSync(join(mnt, 'Long File Name.txt'), 'dos twin\n')
  setXattr(join(mnt, 'Long File Name.txt'), 'system.ntfs_dos_name', Buffer.from('LONGFI~1.TXT'))
  writeFileSync(join(mnt, 'winlink'), '')
  setXattr(join(mnt, 'winlink'), 'system.ntfs_reparse_data', symlinkReparse('hello.txt'))
  mkdirSync(join(mnt, 'junction'))
  setXattr(join(mnt, 'junction'), 'system.ntfs_reparse_data', junctionReparse('C:\\Users\\Public'))
}

describe('NTFS made by mkntfs and filled through ntfs-3g', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ntfs-'))
  const tree = join(dir, 'tree')
  const image = join(dir, 'ntfs.img')
  let fs: FileSystem
  let src: FileBlockSource

  before(async () => {
    makeTree(tree, { many: 2000, bigBytes: 3 * 1024 * 1024 + 123 })
    await makeNtfsImage(image, tree, 40, { mountOptions: ['compression'], fill: fillExtras })
    ;({ fs, src } = await open(image))
  })
  after(() => {
    src?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('detects a whole-disk NTFS volume with its label and opens it', async () => {
    const [v] = await openVolumes(src)
    assert.equal(v!.partition, null)
    assert.equal(v!.type, 'ntfs')
    assert.equal(v!.supported, true)
    assert.equal(fs.label, 'CAIRNNTFS')
    assert.equal(fs.type, 'ntfs')
  })

  it('lists what ntfsls lists: unicode and long names, no deleted file, no metadata files', async () => {
    for (const path of ['/', '/many', '/dir with spaces', '/compressed']) {
      const page = await fs.list(path)
      assert.deepEqual(page.entries.map((e) => e.name).sort(), ntfsls(image, path).sort(), path)
    }
    const root = (await fs.list('/')).entries.map((e) => e.name)
    assert.ok(root.includes(UNICODE_NAME))
    assert.ok(root.includes(LONG_NAME))
    assert.ok(!root.includes('deleted.txt'))
    assert.ok(!root.some((n) => n.startsWith('$')))
    assert.ok(root.includes('Long File Name.txt'))
    assert.ok(!root.includes('LONGFI~1.TXT'))
    assert.match(run('ntfsinfo', ['-F', '/Long File Name.txt', image]), /Namespace:\s+DOS/)
    assert.equal((await fs.stat('/long file name.txt')).nlink, 1)
    const many = await fs.list('/many')
    assert.equal(many.total, 2000)
    assert.equal(many.entries[0]!.name, '00000-file.txt')
    assert.equal(many.entries[1999]!.name, '01999-file.txt')
  })

  it('walks exactly the paths fls (sleuthkit) lists (deleted entries, metadata files and streams aside)', async () => {
    const expected = run('fls', ['-r', '-p', image])
      .split('\n')
      .filter((l) => l.includes('\t') && !/^\S+ \*/.test(l))
      .map((l) => `/${l.slice(l.indexOf('\t') + 1)}`)
      .filter((p) => !p.startsWith('/$') && !p.includes(':'))
    const seen: string[] = []
    for await (const w of fs.walk('/')) seen.push(w.entry.path)
    assert.deepEqual(seen.sort(), [...new Set(expected)].sort())
    assert.ok(seen.length > 2000)
  })

  it('reads every file of the tree byte-exact with its mtime, symlink targets and hard links', async () => {
    let files = 0
    for (const { path, stat } of sourceEntries(tree)) {
      if (path === 'deleted.txt') continue
      const e = await fs.stat(`/${path}`)
      if (stat.isSymbolicLink()) {
        assert.equal(e.type, 'symlink', path)
        assert.equal(await fs.readlink(`/${path}`), readlinkSync(join(tree, path)), path)
        assert.equal(e.target, readlinkSync(join(tree, path)))
        continue
      }
      assert.equal(e.mtime, TREE_MTIME.getTime(), path)
      if (stat.isDirectory()) {
        assert.equal(e.type, 'dir', path)
        continue
      }
      assert.equal(e.type, 'file', path)
      assert.equal(e.size, Number(stat.size), path)
      assert.equal(sha256(await fs.read(e, 0, e.size)), sha256(readFileSync(join(tree, path))), path)
      files++
    }
    assert.ok(files > 2000)
    const a = await fs.stat('/hard-a')
    const b = await fs.stat('/dir with spaces/hard-b')
    assert.equal(a.id, b.id)
    assert.equal(a.nlink, 2)
  })

  it('reads sparse holes as zeros, a fragmented file with an attribute list, and a compressed file', async () => {
    const sparse = await fs.read('/sparse.bin', 3 * 1024 * 1024, 200)
    assert.equal(sparse.subarray(100, 117).toString(), 'middle of sparse\n')
    assert.ok(sparse.subarray(0, 100).every((b) => b === 0))
    const info = run('ntfsinfo', ['-v', '-F', '/frag.bin', image])
    const runs = Number(/Total runs: (\d+)/.exec(info)![1])
    assert.ok(runs >= 20, `frag.bin has ${runs} runs`)
    assert.match(info, /\$ATTRIBUTE_LIST/)
    // striped.bin's runs do not fit one record: its $DATA is split into extents in several MFT records.
    const stripedInfo = run('ntfsinfo', ['-v', '-F', '/striped.bin', image])
    assert.ok(stripedInfo.match(/Dumping attribute \$DATA/g)!.length >= 2, 'striped.bin has one $DATA extent')
    const striped = await fs.stat('/striped.bin')
    assert.equal(sha256(await fs.read(striped, 0, striped.size)), sha256(stripedBytes()))
    assert.equal(
      (await fs.read(striped, 1_000_000, 100_000)).toString('hex'),
      stripedBytes().subarray(1_000_000, 1_100_000).toString('hex'),
    )
    const frag = await fs.stat('/frag.bin')
    assert.equal(frag.nlink, 13)
    assert.equal(sha256(await fs.read(frag, 0, frag.size)), sha256(pattern(fragBytes, 1)))
    assert.equal(
      (await fs.read('/frag.bin', 777_777, 5000)).toString('hex'),
      pattern(fragBytes, 1).subarray(777_777, 782_777).toString('hex'),
    )
    assert.match(run('ntfsinfo', ['-v', '-F', '/compressed/text.txt', image]), /COMPRESSED/)
    assert.equal((await fs.read('/compressed/text.txt', 0, 10_000_000)).toString(), COMPRESSIBLE)
    assert.equal(
      (await fs.read('/compressed/text.txt', 65_530, 20)).toString(),
      COMPRESSIBLE.slice(65_530, 65_550),
    )
    const mix = await fs.stat('/compressed/mixed.bin')
    assert.equal(sha256(await fs.read(mix, 0, mix.size)), sha256(mixed()))
    assert.equal(sha256(await fs.read(mix, 70_000, 30_000)), sha256(mixed().subarray(70_000, 100_000)))
    const random = await fs.stat('/compressed/random.bin')
    assert.equal(sha256(await fs.read(random, 0, random.size)), sha256(pattern(300_000, 7)))
  })

  it('reports Windows symlinks and junctions (reparse points) as symlinks, never followed', async () => {
    const e = await fs.stat('/winlink')
    assert.equal(e.type, 'symlink')
    assert.equal(e.target, 'hello.txt')
    await expectCode(fs.read('/winlink', 0, 10), 'FileSystemWrongType')
    const j = await fs.stat('/junction')
    assert.equal(j.type, 'symlink')
    assert.equal(await fs.readlink('/junction'), 'C:\\Users\\Public')
    await expectCode(fs.list('/junction'), 'FileSystemWrongType')
  })

  it('matches names case-insensitively as Windows does, and never leaves the root', async () => {
    assert.equal((await fs.stat('/HELLO.TXT')).path, '/hello.txt')
    assert.equal((await fs.stat('/MANY/00042-FILE.TXT')).path, '/many/00042-file.txt')
    assert.equal((await fs.stat('/../../Many/../hello.txt')).path, '/hello.txt')
    await expectCode(fs.stat('/$MFT'), 'FileSystemPathNotFound')
    await expectCode(fs.stat('/deleted.txt'), 'FileSystemPathNotFound')
  })

  it('lists the 2,000-entry directory cold from a slow source in few reads, in pages', async () => {
    const { fs: cold, src: slow } = await open(image, 5)
    try {
      const before = slow.reads
      const page = await cold.list('/many', { start: 1000, limit: 500 })
      const reads = slow.reads - before
      assert.equal(page.total, 2000)
      assert.equal(page.entries.length, 500)
      assert.equal(page.next, 1500)
      assert.equal(page.entries[0]!.name, '01000-file.txt')
      assert.ok(reads <= 30, `${reads} source reads`)
    } finally {
      slow.close()
    }
  })

  it('reads the same volume on an MBR and a GPT disk', async () => {
    const gpt = join(dir, 'gpt.img')
    makeGptDisk(gpt, image, 44)
    const mbr = join(dir, 'mbr.img')
    writeFileSync(mbr, '')
    run('truncate', ['-s', '44M', mbr])
    run('sfdisk', ['-q', mbr], { input: 'label: dos\nstart=4096, size=81920, type=7\n' })
    placeAt(mbr, 2 * 1024 * 1024, image)
    for (const [disk, scheme] of [
      [gpt, 'gpt'],
      [mbr, 'mbr'],
    ] as const) {
      const { fs: part, src: s } = await open(disk)
      try {
        const [v] = await openVolumes(s)
        assert.equal(v!.scheme, scheme)
        assert.equal(v!.partition, 1)
        assert.equal(v!.type, 'ntfs')
        assert.equal((await part.list('/many')).total, 2000)
        const big = await part.stat('/big.bin')
        assert.equal(sha256(await part.read(big, 0, big.size)), sha256(readFileSync(join(tree, 'big.bin'))))
      } finally {
        s.close()
      }
      rmSync(disk)
    }
  })
})

describe('NTFS damage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ntfs-bad-'))
  const tree = join(dir, 'tree')
  const image = join(dir, 'ntfs.img')
  let pristine: Buffer
  before(async () => {
    makeTree(tree, { many: 60, bigBytes: 200_000 })
    await makeNtfsImage(image, tree, 16)
    pristine = readFileSync(image)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  /** The byte offset of an MFT record in the image (the $MFT is contiguous on a fresh small volume). */
  function recordOffset(record: number): number {
    const boot = pristine.subarray(0, 512)
    const cluster = boot.readUInt16LE(11) * boot[13]!
    return Number(boot.readBigUInt64LE(0x30)) * cluster + record * 1024
  }

  it('refuses an MFT record whose update sequence does not match (a torn write)', async () => {
    writeFileSync(image, pristine)
    const at = recordOffset(recordOf(image, '/dir with spaces/file.txt'))
    patch(image, at + 510, Buffer.from([0xde, 0xad]))
    const { fs, src } = await open(image)
    try {
      // The damaged file is still listed (from its index key), its siblings read; reading it is refused.
      const names = (await fs.list('/dir with spaces')).entries.map((e) => e.name).sort()
      assert.deepEqual(names, ['file.txt', 'hard-b', 'up-link'])
      const e = await fs.stat('/dir with spaces/file.txt')
      assert.equal(e.size, 7)
      assert.equal(e.mtime, TREE_MTIME.getTime())
      const err = await expectCode(fs.read(e, 0, 7), 'FileSystemCorrupt')
      assert.match(err.message, /update sequence/)
      assert.equal((await fs.read('/dir with spaces/hard-b', 0, 4)).toString(), 'same')
      assert.equal((await fs.read('/hello.txt', 0, 5)).toString(), 'hello')
    } finally {
      src.close()
    }
  })

  it('refuses to list a directory whose MFT record was reused by another file', async () => {
    writeFileSync(image, pristine)
    // The sequence number in the record no longer matches the reference in the parent's index.
    const at = recordOffset(recordOf(image, '/dir with spaces'))
    const seq = Buffer.alloc(2)
    seq.writeUInt16LE(pristine.readUInt16LE(at + 0x10) + 1)
    patch(image, at + 0x10, seq)
    const { fs, src } = await open(image)
    try {
      assert.equal((await fs.stat('/dir with spaces')).type, 'dir')
      const err = await expectCode(fs.list('/dir with spaces'), 'FileSystemCorrupt')
      assert.match(err.message, /another file/)
      assert.equal((await fs.list('/many')).total, 60)
    } finally {
      src.close()
    }
  })

  it('refuses to read an encrypted file and still reads the others', async () => {
    writeFileSync(image, pristine)
    const record = recordOf(image, '/hello.txt')
    const rec = pristine.subarray(recordOffset(record), recordOffset(record) + 1024)
    // The $STANDARD_INFORMATION's file attributes (value offset + 32) get FILE_ATTRIBUTE_ENCRYPTED.
    const attr = rec.readUInt16LE(0x14)
    assert.equal(rec.readUInt32LE(attr), 0x10)
    const field = attr + rec.readUInt16LE(attr + 0x14) + 32
    const flags = Buffer.alloc(4)
    flags.writeUInt32LE(rec.readUInt32LE(field) | 0x4000)
    patch(image, recordOffset(record) + field, flags)
    const { fs, src } = await open(image)
    try {
      assert.equal((await fs.stat('/hello.txt')).size, 13)
      const err = await expectCode(fs.read('/hello.txt', 0, 5), 'FileSystemUnsupported')
      assert.match(err.message, /encrypted/)
      assert.equal((await fs.read('/empty', 0, 5)).length, 0)
      assert.equal((await fs.read('/many/00001-file.txt', 0, 5)).toString(), '1\n')
    } finally {
      src.close()
    }
  })

  it('refuses a boot sector that claims more sectors than the volume has', async () => {
    writeFileSync(image, pristine)
    const sectors = Buffer.alloc(8)
    sectors.writeBigUInt64LE(BigInt(pristine.length))
    patch(image, 0x28, sectors)
    const src = new FileBlockSource(image)
    try {
      const [v] = await openVolumes(src)
      const err = await expectCode(openFileSystem(src, v!), 'FileSystemCorrupt')
      assert.match(err.message, /truncated/)
    } finally {
      src.close()
    }
  })

  it('answers random damage with clear errors, never a crash or a hang', async () => {
    const mft = recordOffset(0)
    let seed = 11
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed
    }
    const allowed = new Set([
      'FileSystemCorrupt',
      'FileSystemUnsupported',
      'FileSystemPathNotFound',
      'FileSystemWrongType',
    ])
    for (let round = 0; round < 25; round++) {
      const bad = Buffer.from(pristine)
      // Half the hits on the $MFT (records, attributes, runs), the rest anywhere (index blocks, data).
      for (let i = 0; i < 60; i++) bad[mft + (rnd() % (256 * 1024))] = rnd() & 0xff
      for (let i = 0; i < 60; i++) bad[rnd() % bad.length] = rnd() & 0xff
      if (round % 5 === 0) bad[rnd() % 512] = rnd() & 0xff
      writeFileSync(image, bad)
      const src = new FileBlockSource(image)
      try {
        const work = (async () => {
          const vols = await openVolumes(src)
          if (!vols[0]?.supported) return
          const fs = await openFileSystem(src, vols[0])
          for await (const w of fs.walk('/', { maxEntries: 100_000 })) {
            if (w.entry.type === 'file') await fs.read(w.entry, 0, 64 * 1024)
          }
        })()
        const timeout = new Promise((_, reject) =>
          setTimeout(() => reject(new Error('hang')), 20_000).unref(),
        )
        await Promise.race([work, timeout]).catch((err: unknown) => {
          if (!isCairnError(err) || !allowed.has(err.code)) throw err
        })
      } finally {
        src.close()
      }
    }
  })
})
