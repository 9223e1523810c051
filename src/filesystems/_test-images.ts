// Test helper: real disk images made by real tools (mkfs.ext4 -d, sgdisk, sfdisk, mkfs.vfat + mcopy,
// mkntfs + ntfs-3g), a source tree to compare them with, and a file-backed BlockSource that counts reads
// and can be made slow.
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import type { BlockSource } from './types.js'

/** Runs a tool, failing with its stderr. */
export function run(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8', ...options.env },
    ...(options.input === undefined ? {} : { input: options.input }),
  })
}

/** A BlockSource over an image file; counts reads, and waits `latencyMs` per read when asked. */
export class FileBlockSource implements BlockSource {
  readonly size: number
  reads = 0
  bytes = 0
  readonly #fd: number
  readonly #latencyMs: number

  constructor(path: string, options: { latencyMs?: number } = {}) {
    this.#fd = openSync(path, 'r')
    this.size = statSync(path).size
    this.#latencyMs = options.latencyMs ?? 0
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (offset < 0 || offset + length > this.size)
      throw new Error(`read ${offset}+${length} past ${this.size}`)
    this.reads++
    this.bytes += length
    if (this.#latencyMs > 0) await new Promise((r) => setTimeout(r, this.#latencyMs))
    const buf = into?.subarray(0, length) ?? Buffer.alloc(length)
    let done = 0
    while (done < length) {
      const n = readSync(this.#fd, buf, done, length - done, offset + done)
      if (n === 0) break
      done += n
    }
    return buf
  }

  close(): void {
    closeSync(this.#fd)
  }
}

/** Writes `data` into an image file at `offset` (dd conv=notrunc). */
export function patch(path: string, offset: number, data: Buffer): void {
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, data, 0, data.length, offset)
  } finally {
    closeSync(fd)
  }
}

/** Copies a file system image into a disk image at a byte offset. */
export function placeAt(disk: string, offset: number, image: string): void {
  run('dd', [
    `if=${image}`,
    `of=${disk}`,
    'bs=1M',
    `seek=${offset}`,
    'oflag=seek_bytes',
    'conv=notrunc,sparse',
    'status=none',
  ])
}

/** A fixed mtime for the tree (whole seconds + ms, even seconds so FAT keeps it). */
export const TREE_MTIME = new Date('2024-05-06T07:08:10.000Z')

export const UNICODE_NAME = 'ünïcødé-ñandú-日本語-🙂.txt'
export const LONG_NAME = `${'long-name-'.repeat(20)}end.txt`
export const DEEP_LEVELS = 30

/** What makeTree puts where (the names the tests look for). */
export interface TreeOptions {
  /** Files in many/ (default 10,000). */
  many?: number
  /** Bytes of big.bin (default 20 MiB). */
  bigBytes?: number
  symlinks?: boolean
  hardLinks?: boolean
  /** The unicode file name (mtools cannot write characters outside the BMP). */
  unicodeName?: string
}

/** Builds the source tree every file-system test compares against. */
export function makeTree(root: string, options: TreeOptions = {}): void {
  const many = options.many ?? 10_000
  const bigBytes = options.bigBytes ?? 20 * 1024 * 1024
  mkdirSync(root, { recursive: true })
  writeFileSync(join(root, 'hello.txt'), 'hello, world\n')
  writeFileSync(join(root, 'empty'), '')
  writeFileSync(join(root, options.unicodeName ?? UNICODE_NAME), 'unicode content ✓\n')
  writeFileSync(join(root, LONG_NAME), 'long name\n')
  const big = Buffer.alloc(Math.ceil(bigBytes / 4) * 4)
  let x = 0x12345678
  for (let i = 0; i < big.length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    big.writeInt32LE(x | 0, i)
  }
  writeFileSync(join(root, 'big.bin'), big.subarray(0, bigBytes))
  // Sparse: 8 MiB, data at 0, at 3 MiB + 100 and in the last bytes.
  const sparse = join(root, 'sparse.bin')
  writeFileSync(sparse, 'start of sparse\n')
  truncateSync(sparse, 8 * 1024 * 1024)
  const fd = openSync(sparse, 'r+')
  writeSync(fd, Buffer.from('middle of sparse\n'), 0, 17, 3 * 1024 * 1024 + 100)
  writeSync(fd, Buffer.from('end\n'), 0, 4, 8 * 1024 * 1024 - 4)
  closeSync(fd)
  mkdirSync(join(root, 'many'))
  for (let i = 0; i < many; i++)
    writeFileSync(join(root, 'many', `${String(i).padStart(5, '0')}-file.txt`), `${i}\n`)
  let deep = root
  for (let i = 0; i < DEEP_LEVELS; i++) deep = join(deep, `level${i}`)
  mkdirSync(deep, { recursive: true })
  writeFileSync(join(deep, 'bottom.txt'), 'at the bottom\n')
  mkdirSync(join(root, 'dir with spaces'))
  writeFileSync(join(root, 'dir with spaces', 'file.txt'), 'spaces\n')
  writeFileSync(join(root, 'deleted.txt'), 'to be deleted\n')
  if (options.hardLinks !== false) {
    writeFileSync(join(root, 'hard-a'), 'same inode\n')
    linkSync(join(root, 'hard-a'), join(root, 'dir with spaces', 'hard-b'))
  }
  if (options.symlinks !== false) {
    symlinkSync('hello.txt', join(root, 'link-to-hello'))
    symlinkSync(`/${'x'.repeat(100)}/target`, join(root, 'long-link'))
    symlinkSync('../hello.txt', join(root, 'dir with spaces', 'up-link'))
  }
  setTreeTimes(root)
}

/** Gives every entry of the tree TREE_MTIME (symlinks keep theirs: utimes follows links). */
export function setTreeTimes(root: string): void {
  for (const e of readdirSync(root, { withFileTypes: true })) {
    const p = join(root, e.name)
    if (e.isDirectory()) setTreeTimes(p)
    if (!e.isSymbolicLink()) utimesSync(p, TREE_MTIME, TREE_MTIME)
  }
  utimesSync(root, TREE_MTIME, TREE_MTIME)
}

/** The sha256 of a host file or buffer. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Every path of the source tree (relative, `/`-separated) with its lstat. */
export function sourceEntries(root: string, rel = ''): Array<{ path: string; stat: Stats }> {
  const out: Array<{ path: string; stat: Stats }> = []
  for (const name of readdirSync(join(root, rel))) {
    const p = rel === '' ? name : `${rel}/${name}`
    const st = lstatSync(join(root, p))
    out.push({ path: p, stat: st })
    if (st.isDirectory()) out.push(...sourceEntries(root, p))
  }
  return out
}

/** An ext file system image of `megabytes` made by mkfs.ext4 -d (extra mke2fs arguments allowed). */
export function makeExtImage(image: string, tree: string, megabytes: number, args: string[] = []): void {
  const type = args.includes('-t') ? [] : ['-t', 'ext4']
  run('mke2fs', ['-q', '-F', ...type, '-E', 'root_owner=0:0', ...args, '-d', tree, image, `${megabytes}M`])
}

/** A GPT disk (sgdisk) of `megabytes` with one partition starting at 1 MiB holding `fsImage`. */
export function makeGptDisk(disk: string, fsImage: string, megabytes: number): { start: number } {
  writeFileSync(disk, '')
  truncateSync(disk, megabytes * 1024 * 1024)
  const fsBytes = statSync(fsImage).size
  run('sgdisk', ['-n', `1:2048:${2048 + fsBytes / 512 - 1}`, '-t', '1:8300', '-c', '1:cairn-root', disk])
  placeAt(disk, 1024 * 1024, fsImage)
  return { start: 1024 * 1024 }
}

/** A unicode name mtools can write (no characters outside the BMP). */
export const BMP_UNICODE_NAME = 'ünïcødé-ñandú-日本語.txt'

/** A FAT image (mkfs.vfat -F bits) of `megabytes` holding the tree (mcopy -s -m keeps mtimes). */
export function makeFatImage(image: string, tree: string, megabytes: number, bits: 12 | 16 | 32): void {
  rmSync(image, { force: true })
  run('mkfs.vfat', ['-C', '-F', String(bits), '-n', `CAIRN${bits}`, image, String(megabytes * 1024)])
  const names = readdirSync(tree).map((n) => join(tree, n))
  run('mcopy', ['-s', '-m', '-Q', '-i', image, ...names, '::/'])
}

/**
 * An NTFS image (mkntfs) of `megabytes` holding the tree, copied in through an ntfs-3g FUSE mount (needs
 * root and /dev/fuse); `fill` runs with the mount point before it is unmounted.
 */
export async function makeNtfsImage(
  image: string,
  tree: string,
  megabytes: number,
  options: { mountOptions?: string[]; fill?: (mnt: string) => void } = {},
): Promise<void> {
  rmSync(image, { force: true })
  writeFileSync(image, '')
  truncateSync(image, megabytes * 1024 * 1024)
  run('mkntfs', ['-F', '-Q', '-q', '-L', 'CAIRNNTFS', '-H', '0', '-S', '0', '-p', '0', image])
  await withNtfsMount(image, options.mountOptions ?? [], (mnt) => {
    if (readdirSync(tree).length > 0) run('cp', ['-a', '--sparse=always', `${tree}/.`, mnt])
    options.fill?.(mnt)
  })
}

/**
 * Mounts an NTFS image read-write with ntfs-3g, runs `work` on the mount point and unmounts. ntfs-3g
 * stays in the foreground (`no_detach`), so the image is complete once its process has exited.
 */
export async function withNtfsMount(
  image: string,
  mountOptions: string[],
  work: (mnt: string) => void,
): Promise<void> {
  const mnt = `${image}.mnt`
  mkdirSync(mnt, { recursive: true })
  const opts = ['no_detach', ...mountOptions].join(',')
  const child = spawn('ntfs-3g', ['-o', opts, image, mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const mounted = () => readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)
  try {
    for (let i = 0; !mounted(); i++) {
      if (child.exitCode !== null || i > 200) throw new Error(`ntfs-3g did not mount ${image}: ${stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    work(mnt)
  } finally {
    if (mounted()) run('umount', [mnt])
    else child.kill()
    await exited
    rmSync(mnt, { recursive: true, force: true })
  }
}
