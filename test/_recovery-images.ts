import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { apiFetch, cairnAt, type RunningService } from './_service.js'

/** Runs a tool; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], options: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error ?? ''}`)
  return r.stdout
}

/**
 * A small source tree: nested folders, a unicode and a long name, a symlink, a hard link, an empty
 * file, a sparse file, fixed modes and mtimes.
 */
export function makeTree(dir: string): void {
  mkdirSync(join(dir, 'etc/app'), { recursive: true })
  mkdirSync(join(dir, 'home/ana/docs/deep/er/still'), { recursive: true })
  writeFileSync(join(dir, 'etc/app/config.yaml'), 'listen: 0.0.0.0:8080\nworkers: 4\n')
  writeFileSync(join(dir, 'home/ana/docs/report.txt'), Buffer.alloc(300_000, 'cairn report line\n'))
  writeFileSync(join(dir, 'home/ana/docs/deep/er/still/bottom.bin'), pseudoRandom(1_234_567, 7))
  writeFileSync(join(dir, 'home/ana/café ☕ notes.md'), '# ünïcödé\n')
  writeFileSync(join(dir, `home/ana/${'l'.repeat(200)}.txt`), 'long name\n')
  writeFileSync(join(dir, 'home/ana/empty'), '')
  const fd = openSync(join(dir, 'home/ana/sparse.img'), 'w')
  closeSync(fd)
  spawnSync('truncate', ['-s', '8M', join(dir, 'home/ana/sparse.img')])
  const sfd = openSync(join(dir, 'home/ana/sparse.img'), 'r+')
  writeSync(sfd, Buffer.from('middle'), 0, 6, 4 * 1024 * 1024)
  closeSync(sfd)
  symlinkSync('docs/report.txt', join(dir, 'home/ana/report-link'))
  linkSync(join(dir, 'home/ana/docs/report.txt'), join(dir, 'home/ana/report-hardlink.txt'))
  spawnSync('chmod', ['0600', join(dir, 'etc/app/config.yaml')])
  spawnSync('chmod', ['0750', join(dir, 'home/ana/docs')])
  const t = new Date('2024-03-05T06:07:08Z')
  for (const f of walk(dir)) if (!lstatSync(f).isSymbolicLink()) utimesSync(f, t, t)
}

/** Deterministic bytes. */
export function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

/** Every path under `dir` (not `dir`), parents first. */
export function walk(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    out.push(p)
    if (e.isDirectory()) out.push(...walk(p))
  }
  return out
}

/** What a tree holds, path by path: type, mode, mtime (s), size, sha256 or link target. */
export function describeTree(dir: string, options: { skip?: string[] } = {}): Map<string, string> {
  const out = new Map<string, string>()
  for (const p of walk(dir)) {
    const rel = p.slice(dir.length + 1)
    if (options.skip?.some((s) => rel === s || rel.startsWith(`${s}/`))) continue
    const st = lstatSync(p)
    const mode = (st.mode & 0o7777).toString(8)
    const mtime = Math.floor(st.mtimeMs / 1000)
    if (st.isSymbolicLink()) out.set(rel, `link ${readlinkSync(p)}`)
    else if (st.isDirectory()) out.set(rel, `dir ${mode} ${mtime}`)
    else out.set(rel, `file ${mode} ${mtime} ${st.size} ${sha256(readFileSync(p))}`)
  }
  return out
}

export const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex')

/** sha256 of a file, read in pieces. */
export function sha256File(path: string): string {
  const h = createHash('sha256')
  const fd = openSync(path, 'r')
  const buf = Buffer.alloc(4 * 1024 * 1024)
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return h.digest('hex')
}

/**
 * A GPT disk image of `diskMiB` with one Linux partition from 1 MiB holding an ext4 file system made
 * by `mkfs.ext4 -d tree` (`fsMiB` large). Answers the image path.
 */
export function gptExt4Disk(work: string, tree: string, diskMiB: number, fsMiB: number): string {
  const part = join(work, 'part.img')
  const disk = join(work, 'disk.img')
  run('mkfs.ext4', ['-q', '-F', '-L', 'cairnroot', '-d', tree, part, `${fsMiB}M`])
  run('truncate', ['-s', `${diskMiB}M`, disk])
  run('sgdisk', ['-n', '1:2048:0', '-t', '1:8300', '-c', '1:root', disk])
  run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none'])
  return disk
}

/** Writes a disk image into a new disk-store disk through the management API (zero pieces stay holes). */
export async function uploadDisk(
  fetchApi: (path: string, init?: RequestInit) => Promise<Response>,
  disk: string,
  image: string,
  options: { create?: boolean; previous?: string } = {},
): Promise<void> {
  const base = `/api/v1/accounts/devstoreaccount1/containers/disks/disks/${disk}`
  const bytes = readFileSync(image)
  const previous = options.previous ? readFileSync(options.previous) : undefined
  if (options.create !== false) {
    const res = await fetchApi(base, {
      method: 'PUT',
      body: JSON.stringify({ size: bytes.length }),
      headers: { 'content-type': 'application/json' },
    })
    if (res.status !== 201) throw new Error(`cannot create disk ${disk}: ${res.status} ${await res.text()}`)
  }
  const piece = 4 * 1024 * 1024
  for (let o = 0; o < bytes.length; o += piece) {
    const part = bytes.subarray(o, o + piece)
    if (options.create !== false && part.every((b) => b === 0)) continue
    if (previous?.subarray(o, o + piece).equals(part)) continue
    const put = () =>
      fetchApi(`${base}/pages?offset=${o}`, {
        method: 'PUT',
        body: new Uint8Array(part),
        headers: { 'content-type': 'application/octet-stream' },
      })
    // A keep-alive connection the service closed while idle fails the first write on it: once more.
    const res = await put().catch(() => put())
    if (res.status >= 300)
      throw new Error(`cannot write disk ${disk} at ${o}: ${res.status} ${await res.text()}`)
  }
}

/**
 * What the file-recovery tests call on a running service: `ok` runs the CLI with --json and answers its
 * parsed output (failing on a non-zero exit), `get` a GET of the API, `getJson` one that must answer 200.
 */
export function recoveryCalls(service: () => RunningService) {
  const ok = async (args: string[]) => {
    const r = await cairnAt(service().url, [...args, '--json'])
    assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined
  }
  const get = (path: string, init: RequestInit = {}) => apiFetch(`${service().url}${path}`, init)
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await get(path)
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`)
    return (await res.json()) as T
  }
  return { ok, get, getJson }
}

/** The `?path=` query of the browse routes, with more parameters after it. */
export const pathQuery = (path: string, extra = '') => `?path=${encodeURIComponent(path)}${extra}`
