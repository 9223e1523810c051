import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import {
  DEEP_LEVELS,
  FileBlockSource,
  LONG_NAME,
  makeExtImage,
  makeGptDisk,
  makeTree,
  patch,
  run,
  sha256,
  sourceEntries,
  TREE_MTIME,
  UNICODE_NAME,
} from './_test-images.js'
import { type FileSystem, openFileSystem, openVolumes } from './index.js'

/** The entries debugfs lists for a directory: name → inode, mode, uid, gid, size. */
function debugfsList(
  image: string,
  dir: string,
): Map<string, { ino: number; mode: number; uid: number; gid: number; size: number }> {
  const out = run('debugfs', ['-R', `ls -l "${dir}"`, image])
  const map = new Map<string, { ino: number; mode: number; uid: number; gid: number; size: number }>()
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s(.*)$/.exec(line)
    if (!m) continue
    // debugfs prints bytes outside ASCII as \xNN.
    const name = Buffer.from(
      m[6]!.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
      'latin1',
    ).toString('utf8')
    if (name === '.' || name === '..') continue
    map.set(name, {
      ino: Number(m[1]),
      mode: Number.parseInt(m[2]!, 8),
      uid: Number(m[3]),
      gid: Number(m[4]),
      size: Number(m[5]),
    })
  }
  return map
}

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

async function openExt(image: string, latencyMs = 0): Promise<{ fs: FileSystem; src: FileBlockSource }> {
  const src = new FileBlockSource(image, { latencyMs })
  const [vol] = await openVolumes(src)
  return { fs: await openFileSystem(src, vol!), src }
}

describe('ext4 on a GPT disk made by mkfs.ext4 -d and sgdisk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ext-'))
  const tree = join(dir, 'tree')
  const fsImage = join(dir, 'fs.img')
  const disk = join(dir, 'disk.img')
  let src: FileBlockSource
  let fs: FileSystem

  before(async () => {
    makeTree(tree)
    makeExtImage(fsImage, tree, 96, ['-L', 'cairn-root'])
    run('debugfs', ['-w', '-R', 'rm /deleted.txt', fsImage])
    // Rebuild the directories as hash trees (htree), as a long-lived ext4 has them.
    try {
      run('e2fsck', ['-fyD', fsImage])
    } catch {
      // e2fsck exits 1 when it changed something, which -D always does.
    }
    makeGptDisk(disk, fsImage, 100)
    src = new FileBlockSource(disk)
    const vols = await openVolumes(src)
    fs = await openFileSystem(src, vols[0]!)
  })
  after(() => {
    src?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('finds the GPT partition with its name, offset, type and label', async () => {
    const vols = await openVolumes(src)
    assert.equal(vols.length, 1)
    const v = vols[0]!
    assert.equal(v.scheme, 'gpt')
    assert.equal(v.partition, 1)
    assert.equal(v.start, 1024 * 1024)
    assert.equal(v.size, 96 * 1024 * 1024)
    assert.equal(v.partitionName, 'cairn-root')
    assert.equal(v.partitionType, '0FC63DAF-8483-4772-8E79-3D69D8477DE4')
    assert.equal(v.type, 'ext')
    assert.equal(v.fsType, 'ext4')
    assert.equal(v.label, 'cairn-root')
    assert.equal(v.supported, true)
  })

  it('lists every directory as debugfs does: names, inodes, modes, owners and sizes', async () => {
    const dirs = ['/', '/dir with spaces', '/many', '/level0/level1']
    for (const d of dirs) {
      const expected = debugfsList(fsImage, d)
      const page = await fs.list(d)
      assert.equal(page.total, expected.size, d)
      for (const e of page.entries) {
        const want = expected.get(e.name)
        assert.ok(want, `${d}: ${e.name} not listed by debugfs`)
        assert.equal(Number(e.id), want.ino, e.path)
        assert.equal(e.mode, want.mode, e.path)
        assert.equal(e.uid, want.uid, e.path)
        assert.equal(e.gid, want.gid, e.path)
        assert.equal(e.size, want.size, e.path)
      }
    }
  })

  it('reads every file byte-exact and every symlink target, with the times and kinds of the source tree', async () => {
    let files = 0
    for (const { path, stat } of sourceEntries(tree)) {
      if (path === 'deleted.txt') continue
      const e = await fs.stat(`/${path}`)
      assert.equal(e.path, `/${path}`)
      if (stat.isSymbolicLink()) {
        assert.equal(e.type, 'symlink')
        assert.equal(await fs.readlink(e.path), readlinkSync(join(tree, path)))
        assert.equal(e.target, undefined)
        continue
      }
      assert.equal(e.mtime, TREE_MTIME.getTime(), path)
      assert.equal(e.mode & 0o7777, Number(stat.mode) & 0o7777, path)
      if (stat.isDirectory()) {
        assert.equal(e.type, 'dir')
        continue
      }
      assert.equal(e.type, 'file')
      assert.equal(e.size, Number(stat.size))
      const data = await fs.read(e, 0, e.size)
      assert.equal(sha256(data), sha256(readFileSync(join(tree, path))), path)
      files++
    }
    assert.ok(files > 10_000)
  })

  it('reads pieces at any offset, zeros in holes, and nothing past the end', async () => {
    const big = readFileSync(join(tree, 'big.bin'))
    for (const [off, len] of [
      [0, 1],
      [4095, 2],
      [1234567, 3 * 1024 * 1024],
      [big.length - 10, 100],
    ] as const) {
      assert.deepEqual(await fs.read('/big.bin', off, len), big.subarray(off, off + len))
    }
    assert.equal((await fs.read('/big.bin', big.length, 10)).length, 0)
    const sparse = await fs.read('/sparse.bin', 3 * 1024 * 1024, 200)
    assert.deepEqual(sparse.subarray(0, 100), Buffer.alloc(100))
    assert.equal(sparse.toString('utf8', 100, 117), 'middle of sparse\n')
    assert.equal((await fs.read('/empty', 0, 10)).length, 0)
  })

  it('shows hard links as one id and does not list a deleted file', async () => {
    const a = await fs.stat('/hard-a')
    const b = await fs.stat('/dir with spaces/hard-b')
    assert.equal(a.id, b.id)
    assert.equal(a.nlink, 2)
    const root = await fs.list('/')
    assert.ok(!root.entries.some((e) => e.name === 'deleted.txt'))
    await expectCode(fs.stat('/deleted.txt'), 'FileSystemPathNotFound')
    assert.ok(root.entries.some((e) => e.name === UNICODE_NAME))
    assert.ok(root.entries.some((e) => e.name === LONG_NAME))
  })

  it('keeps .. and absolute paths inside the file system', async () => {
    assert.equal((await fs.stat('/../../..')).path, '/')
    assert.equal((await fs.stat('../../hello.txt')).path, '/hello.txt')
    assert.equal(
      (await fs.stat('/many/../../../dir with spaces/./file.txt')).path,
      '/dir with spaces/file.txt',
    )
    const deep = `/${Array.from({ length: DEEP_LEVELS }, (_, i) => `level${i}`).join('/')}/bottom.txt`
    assert.equal((await fs.read(deep, 0, 100)).toString(), 'at the bottom\n')
    await expectCode(fs.list('/hello.txt'), 'FileSystemWrongType')
    await expectCode(fs.read('/many', 0, 1), 'FileSystemWrongType')
    await expectCode(fs.readlink('/hello.txt'), 'FileSystemWrongType')
    await expectCode(fs.stat('/hello.txt/x'), 'FileSystemWrongType')
  })

  it('pages a listing and walks the whole tree', async () => {
    const first = await fs.list('/many', { limit: 100 })
    assert.equal(first.total, 10_000)
    assert.equal(first.entries.length, 100)
    assert.equal(first.next, 100)
    const last = await fs.list('/many', { start: 9_950, limit: 100 })
    assert.equal(last.entries.length, 50)
    assert.equal(last.next, undefined)
    assert.equal(last.entries.at(-1)!.name, '09999-file.txt')
    let count = 0
    for await (const w of fs.walk('/')) {
      if (w.entry.name === 'bottom.txt') assert.equal(w.depth, DEEP_LEVELS + 1)
      count++
    }
    const expected = sourceEntries(tree).length - 1 + 1 // minus deleted.txt, plus lost+found
    assert.equal(count, expected)
  })

  it('lists a 10,000-entry htree directory cold from a slow source in few reads, and warm in none', async () => {
    // How fast this is belongs to the benchmarks (npm run bench -- filerecovery); here only the number of
    // source reads, which does not depend on how busy the machine is.
    const ext = run('debugfs', ['-R', 'stat /many', fsImage])
    assert.match(ext, /Flags: 0x[0-9a-f]*1[0-9a-f]{3}\b/, 'the directory is indexed (htree)')
    const { fs: cold, src: slow } = await openExt(disk, 20)
    try {
      const before = slow.reads
      const page = await cold.list('/many')
      const reads = slow.reads - before
      assert.equal(page.total, 10_000)
      assert.ok(reads <= 20, `${reads} source reads`)
      const warm = await cold.list('/many')
      assert.equal(warm.total, 10_000)
      assert.equal(slow.reads - before, reads, 'a warm listing reads nothing')
    } finally {
      slow.close()
    }
  })
})

describe('ext2 and ext4 variants', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ext-var-'))
  const tree = join(dir, 'tree')
  before(() => makeTree(tree, { many: 300, bigBytes: 5 * 1024 * 1024 + 123 }))
  after(() => rmSync(dir, { recursive: true, force: true }))

  for (const [name, args] of [
    ['ext2 with 1 KiB blocks (indirect blocks up to double indirect)', ['-t', 'ext2', '-b', '1024']],
    ['ext3 with a journal', ['-t', 'ext3']],
    ['ext4 with inline data', ['-O', 'inline_data']],
    ['ext4 without 64bit and with 64 KiB blocks', ['-O', '^64bit', '-b', '65536']],
  ] as const) {
    it(`reads ${name} byte-exact`, async () => {
      const image = join(dir, 'fs.img')
      makeExtImage(image, tree, 48, [...args])
      const { fs, src } = await openExt(image)
      try {
        for (const { path, stat } of sourceEntries(tree)) {
          const e = await fs.stat(`/${path}`)
          if (stat.isSymbolicLink()) assert.equal(await fs.readlink(e.path), readlinkSync(join(tree, path)))
          else if (stat.isFile()) {
            assert.equal(
              sha256(await fs.read(e, 0, e.size)),
              sha256(readFileSync(join(tree, path))),
              `${name}: ${path}`,
            )
          } else assert.equal(e.type, 'dir')
        }
        const listed = (await fs.list('/many')).entries.map((e) => e.name)
        assert.equal(listed.length, 300)
      } finally {
        src.close()
        rmSync(image, { force: true })
      }
    })
  }

  it('reads inline files and directories as inline data', async () => {
    const small = join(dir, 'small')
    makeTree(small, { many: 3, bigBytes: 4096 })
    const image = join(dir, 'inline.img')
    makeExtImage(image, small, 16, ['-O', 'inline_data', '-I', '512'])
    const out = run('debugfs', ['-R', 'stat /hello.txt', image])
    assert.match(out, /Flags: 0x1[0-9a-f]{7}/, 'hello.txt is stored inline')
    const { fs, src } = await openExt(image)
    try {
      assert.equal((await fs.read('/hello.txt', 0, 100)).toString(), 'hello, world\n')
      assert.deepEqual(
        (await fs.list('/many')).entries.map((e) => e.name),
        ['00000-file.txt', '00001-file.txt', '00002-file.txt'],
      )
    } finally {
      src.close()
    }
  })
})

describe('ext damage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ext-bad-'))
  const tree = join(dir, 'tree')
  const image = join(dir, 'fs.img')
  before(() => makeTree(tree, { many: 50, bigBytes: 2 * 1024 * 1024 }))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const fresh = () => makeExtImage(image, tree, 16, ['-b', '4096'])

  it('refuses a superblock with impossible geometry as FileSystemCorrupt', async () => {
    fresh()
    const sb = Buffer.alloc(4)
    sb.writeUInt32LE(0, 0)
    patch(image, 1024 + 40, sb) // s_inodes_per_group = 0
    const src = new FileBlockSource(image)
    try {
      const [vol] = await openVolumes(src)
      assert.equal(vol!.type, 'ext')
      const err = await expectCode(openFileSystem(src, vol!), 'FileSystemCorrupt')
      assert.match(err.message, /inodes-per-group/)
    } finally {
      src.close()
    }
  })

  it('calls a volume whose superblock magic is gone unknown and refuses to open it', async () => {
    fresh()
    patch(image, 1024 + 56, Buffer.from([0, 0]))
    const src = new FileBlockSource(image)
    try {
      const [vol] = await openVolumes(src)
      assert.equal(vol!.type, 'unknown')
      assert.equal(vol!.supported, false)
      await expectCode(openFileSystem(src, vol!), 'FileSystemUnsupported')
    } finally {
      src.close()
    }
  })

  it('refuses a file whose extents point past the end of the disk', async () => {
    fresh()
    // i_block[5] is ee_start_lo of the first extent.
    run('debugfs', ['-w', '-R', 'sif /big.bin block[5] 0x7fffff00', image])
    const { fs, src } = await openExt(image)
    try {
      const err = await expectCode(fs.read('/big.bin', 0, 10), 'FileSystemCorrupt')
      assert.match(err.message, /past the end/)
      assert.equal((await fs.read('/hello.txt', 0, 5)).toString(), 'hello')
    } finally {
      src.close()
    }
  })

  it('stops a walk at a directory that loops back to its ancestor', async () => {
    fresh()
    run('debugfs', ['-w', '-R', 'ln /level0 /level0/level1/back-to-level0', image])
    const { fs, src } = await openExt(image)
    try {
      const listed = await fs.list('/level0/level1')
      assert.ok(listed.entries.some((e) => e.name === 'back-to-level0'))
      const walking = (async () => {
        for await (const _ of fs.walk('/')) {
          // drain
        }
      })()
      const err = await expectCode(walking, 'FileSystemCorrupt')
      assert.match(err.message, /loops/)
    } finally {
      src.close()
    }
  })

  it('answers random damage to the metadata with clear errors, never a crash or a hang', async () => {
    fresh()
    const pristine = readFileSync(image)
    let seed = 42
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
      const damagedImage = Buffer.from(pristine)
      for (let i = 0; i < 200; i++) damagedImage[1024 + (rnd() % (1024 * 1024))] = rnd() & 0xff
      writeFileSync(image, damagedImage)
      const src = new FileBlockSource(image)
      try {
        const work = (async () => {
          const vols = await openVolumes(src)
          if (!vols[0]?.supported) return
          const fs = await openFileSystem(src, vols[0])
          for await (const w of fs.walk('/', { maxEntries: 100_000 })) {
            if (w.entry.type === 'file') await fs.read(w.entry, 0, 64 * 1024)
            if (w.entry.type === 'symlink') await fs.readlink(w.entry.path)
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
    assert.ok(statSync(image).size > 0)
  })
})
