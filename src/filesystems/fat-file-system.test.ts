import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import {
  BMP_UNICODE_NAME,
  FileBlockSource,
  LONG_NAME,
  makeFatImage,
  makeTree,
  patch,
  run,
  sha256,
  sourceEntries,
  TREE_MTIME,
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

/** Every path mdir lists below a directory (bare, recursive), without the `::` prefix. */
function mdirPaths(image: string): Set<string> {
  const out = run('mdir', ['-/', '-b', '-i', image, '::/'])
  return new Set(
    out
      .split('\n')
      .filter((l) => l.startsWith('::/'))
      .map((l) => l.slice(2).replace(/\/$/, '')),
  )
}

async function open(image: string, latencyMs = 0): Promise<{ fs: FileSystem; src: FileBlockSource }> {
  const src = new FileBlockSource(image, { latencyMs })
  const [vol] = await openVolumes(src)
  return { fs: await openFileSystem(src, vol!), src }
}

describe('FAT32 made by mkfs.vfat and mcopy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-fat-'))
  const tree = join(dir, 'tree')
  const image = join(dir, 'fat.img')
  let fs: FileSystem
  let src: FileBlockSource

  before(async () => {
    makeTree(tree, { symlinks: false, hardLinks: false, unicodeName: BMP_UNICODE_NAME })
    makeFatImage(image, tree, 64, 32)
    run('mdel', ['-i', image, '::/deleted.txt'])
    ;({ fs, src } = await open(image))
  })
  after(() => {
    src?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('detects a whole-disk FAT32 volume with its label', async () => {
    const [v] = await openVolumes(src)
    assert.equal(v!.partition, null)
    assert.equal(v!.type, 'fat')
    assert.equal(v!.fsType, 'fat32')
    assert.equal(v!.label, 'CAIRN32')
  })

  it('lists exactly the paths mdir lists: long and unicode names, no deleted file', async () => {
    const expected = mdirPaths(image)
    const seen = new Set<string>()
    for await (const w of fs.walk('/')) seen.add(w.entry.path)
    assert.deepEqual([...seen].sort(), [...expected].sort())
    assert.ok(seen.has(`/${LONG_NAME}`))
    assert.ok(seen.has(`/${BMP_UNICODE_NAME}`))
    assert.ok(!seen.has('/deleted.txt'))
    assert.equal((await fs.list('/many')).total, 10_000)
  })

  it('reads every file byte-exact with its mtime', async () => {
    for (const { path, stat } of sourceEntries(tree)) {
      if (path === 'deleted.txt') continue
      const e = await fs.stat(`/${path}`)
      assert.equal(e.mtime, TREE_MTIME.getTime(), path)
      if (stat.isDirectory()) {
        assert.equal(e.type, 'dir')
        continue
      }
      assert.equal(e.size, Number(stat.size), path)
      assert.equal(sha256(await fs.read(e, 0, e.size)), sha256(readFileSync(join(tree, path))), path)
    }
    const mtype = run('mtype', ['-i', image, '::/hello.txt'])
    assert.equal((await fs.read('/hello.txt', 0, 100)).toString(), mtype)
  })

  it('matches names case-insensitively as Windows does, and never leaves the root', async () => {
    assert.equal((await fs.stat('/HELLO.TXT')).path, '/hello.txt')
    assert.equal((await fs.stat('/../../Many/../hello.txt')).path, '/hello.txt')
    await expectCode(fs.stat('/nope'), 'FileSystemPathNotFound')
  })

  it('lists the 10,000-entry directory cold from a slow source in few reads', async () => {
    // How fast this is belongs to the benchmarks; here only the number of source reads.
    const { fs: cold, src: slow } = await open(image, 20)
    try {
      const before = slow.reads
      const page = await cold.list('/many')
      const reads = slow.reads - before
      assert.equal(page.total, 10_000)
      assert.ok(reads <= 40, `${reads} source reads`)
    } finally {
      slow.close()
    }
  })
})

describe('FAT12 and FAT16', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-fat-small-'))
  const tree = join(dir, 'tree')
  before(() =>
    makeTree(tree, {
      many: 100,
      bigBytes: 300_001,
      symlinks: false,
      hardLinks: false,
      unicodeName: BMP_UNICODE_NAME,
    }),
  )
  after(() => rmSync(dir, { recursive: true, force: true }))

  for (const [bits, mb] of [
    [12, 4],
    [16, 32],
  ] as const) {
    it(`reads FAT${bits} byte-exact`, async () => {
      const image = join(dir, `fat${bits}.img`)
      // A 4 MiB FAT12 holds the tree without the 8 MiB sparse file.
      if (bits === 12) rmSync(join(tree, 'sparse.bin'), { force: true })
      makeFatImage(image, tree, mb, bits)
      const { fs, src } = await open(image)
      try {
        assert.equal(fs.fsType, `fat${bits}`)
        for (const { path, stat } of sourceEntries(tree)) {
          const e = await fs.stat(`/${path}`)
          if (stat.isFile())
            assert.equal(sha256(await fs.read(e, 0, e.size)), sha256(readFileSync(join(tree, path))), path)
          else assert.equal(e.type, 'dir')
        }
        assert.equal((await fs.list('/many')).total, 100)
      } finally {
        src.close()
      }
    })
  }
})

describe('FAT damage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-fat-bad-'))
  const tree = join(dir, 'tree')
  const image = join(dir, 'fat.img')
  before(() =>
    makeTree(tree, {
      many: 20,
      bigBytes: 100_000,
      symlinks: false,
      hardLinks: false,
      unicodeName: BMP_UNICODE_NAME,
    }),
  )
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('refuses a cluster chain that loops', async () => {
    makeFatImage(image, tree, 40, 32)
    // The first cluster of big.bin, from its directory entry: make its first FAT entry point to itself.
    const info = run('mshowfat', ['-i', image, '::/big.bin'])
    const cluster = Number(/<(\d+)/.exec(info)![1])
    const boot = readFileSync(image).subarray(0, 512)
    const fatStart = boot.readUInt16LE(14) * boot.readUInt16LE(11)
    const loop = Buffer.alloc(4)
    loop.writeUInt32LE(cluster, 0)
    patch(image, fatStart + cluster * 4, loop)
    const again = await open(image)
    try {
      const err = await expectCode(again.fs.read('/big.bin', 0, 100_000), 'FileSystemCorrupt')
      assert.match(err.message, /loops/)
      assert.equal((await again.fs.read('/hello.txt', 0, 5)).toString(), 'hello')
    } finally {
      again.src.close()
    }
  })

  it('answers random damage with clear errors, never a crash or a hang', async () => {
    makeFatImage(image, tree, 40, 32)
    const pristine = readFileSync(image)
    let seed = 7
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
      for (let i = 0; i < 200; i++) bad[rnd() % (2 * 1024 * 1024)] = rnd() & 0xff
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
