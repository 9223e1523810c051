import { randomFillSync } from 'node:crypto'
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { type DiskRef, LogDiskStore } from '../../src/diskstore/index.js'
import { cairnAt, type RunningService, startService } from '../../test/_service.js'
import { run } from '../_util.js'
import type { BenchContext, BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const TiB = 1024 * GiB

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits

function result(metric: string, value: number, unit: string, extra: Partial<BenchResult> = {}): BenchResult {
  return { scenario: 'diskstore', subject: 'cairn', metric, value, unit, ...extra }
}

/** Random 4 KiB-aligned offsets in `size` bytes, all different. */
function scattered(count: number, size: number, seed = 1): number[] {
  // mulberry32: exact in 32-bit integer arithmetic, so it never falls into a short cycle.
  let a = seed >>> 0
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const pages = Math.floor(size / 4096)
  const set = new Set<number>()
  while (set.size < count) set.add(Math.floor(rnd() * pages) * 4096)
  return [...set]
}

/** Median snapshot latency over `n` snapshots, each after one small write; snapshots are deleted again. */
async function snapshotMs(store: LogDiskStore, ref: DiskRef, n: number, size: number): Promise<number> {
  const page = Buffer.alloc(4096, 7)
  const times: number[] = []
  const offsets = scattered(n, size, 99)
  for (let i = 0; i < n; i++) {
    await store.writePages(ref, offsets[i]!, page)
    const t = performance.now()
    const s = await store.snapshot(ref)
    times.push(performance.now() - t)
    await store.deleteSnapshot(ref, s.snapshot!)
  }
  return median(times)
}

async function snapshots(ctx: BenchContext, store: LogDiskStore): Promise<BenchResult[]> {
  const out: BenchResult[] = []
  const n = ctx.quick ? 10 : 30
  const data = Buffer.alloc(4096, 1)
  for (const [label, size] of [
    ['1 GiB', GiB],
    ['1 TiB', TiB],
  ] as const) {
    const ref = { account: 'bench', container: 'disks', disk: `snap-${label.replace(' ', '')}` }
    await store.createDisk(ref, { size })
    for (const off of scattered(ctx.quick ? 2000 : 10_000, size))
      await store.writePages(ref, off, data, { durable: false })
    await store.flush()
    await store.snapshot(ref)
    const ms = await snapshotMs(store, ref, n, size)
    out.push(
      result(`snapshot, ${label} disk, 1 existing`, round(ms), 'ms', { target: '< 10 ms', pass: ms < 10 }),
    )
    if (size === TiB) {
      const page = Buffer.alloc(4096, 3)
      const offs = scattered(400, size, 5)
      for (let i = 0; i < 399; i++) {
        await store.writePages(ref, offs[i]!, page, { durable: false })
        await store.snapshot(ref)
      }
      const ms400 = await snapshotMs(store, ref, n, size)
      out.push(
        result(`snapshot, ${label} disk, 400 existing`, round(ms400), 'ms', {
          target: '< 10 ms',
          pass: ms400 < 10,
        }),
      )
    }
  }
  return out
}

async function diffs(ctx: BenchContext, store: LogDiskStore): Promise<BenchResult[]> {
  const ref = { account: 'bench', container: 'disks', disk: 'diff-1TiB' }
  await store.createDisk(ref, { size: TiB })
  const page = Buffer.alloc(4096, 5)
  for (const off of scattered(10_000, TiB, 11)) await store.writePages(ref, off, page, { durable: false })
  const from = (await store.snapshot(ref)).snapshot!
  const changed = scattered(10_000, TiB, 12)
  for (const off of changed) await store.writePages(ref, off, page, { durable: false })
  const to = (await store.snapshot(ref)).snapshot!
  const times: number[] = []
  let extents = 0
  for (let i = 0; i < (ctx.quick ? 3 : 7); i++) {
    const t = performance.now()
    const d = store.diff(ref, { from, to })
    times.push(performance.now() - t)
    extents = d.pageRanges.length
  }
  const ms = median(times)
  ctx.log(`diff found ${extents} changed extents`)
  return [
    result('diff of 10,000 changed extents, 1 TiB disk', round(ms), 'ms', {
      target: '< 200 ms',
      pass: ms < 200,
    }),
  ]
}

async function sequential(ctx: BenchContext, store: LogDiskStore): Promise<BenchResult[]> {
  const total = ctx.quick ? 256 * MiB : GiB
  const chunk = 4 * MiB
  const buf = randomFillSync(Buffer.alloc(chunk))
  // Plain file I/O: the same 4 MiB writes into one file, one fsync at the end; then read it back.
  const plainPath = join(ctx.dir, 'plain.bin')
  const fd = openSync(plainPath, 'w+')
  let t = performance.now()
  for (let at = 0; at < total; at += chunk) writeSync(fd, buf, 0, chunk, at)
  fsyncSync(fd)
  const plainWrite = total / MiB / ((performance.now() - t) / 1000)
  const rbuf = Buffer.alloc(chunk)
  t = performance.now()
  for (let at = 0; at < total; at += chunk) readSync(fd, rbuf, 0, chunk, at)
  const plainRead = total / MiB / ((performance.now() - t) / 1000)
  closeSync(fd)
  rmSync(plainPath)

  const ref = { account: 'bench', container: 'disks', disk: 'seq' }
  await store.createDisk(ref, { size: total })
  t = performance.now()
  for (let at = 0; at < total; at += chunk) await store.writePages(ref, at, buf, { durable: false })
  await store.flush()
  const cairnWrite = total / MiB / ((performance.now() - t) / 1000)
  t = performance.now()
  for (let at = 0; at < total; at += chunk) await store.read(ref, at, chunk)
  const cairnRead = total / MiB / ((performance.now() - t) / 1000)
  const wr = cairnWrite / plainWrite
  const rr = cairnRead / plainRead
  return [
    result('sequential write, 4 MiB writes', Math.round(cairnWrite), 'MB/s'),
    { ...result('sequential write, 4 MiB writes', Math.round(plainWrite), 'MB/s'), subject: 'plain file' },
    result('sequential write vs plain file', round(wr), 'x', { target: '>= 0.5x', pass: wr >= 0.5 }),
    result('sequential read, 4 MiB reads', Math.round(cairnRead), 'MB/s'),
    { ...result('sequential read, 4 MiB reads', Math.round(plainRead), 'MB/s'), subject: 'plain file' },
    result('sequential read vs plain file', round(rr), 'x', { target: '>= 0.7x', pass: rr >= 0.7 }),
  ]
}

async function randomWrites(ctx: BenchContext, store: LogDiskStore): Promise<BenchResult[]> {
  const ref = { account: 'bench', container: 'disks', disk: 'random' }
  const size = 16 * GiB
  await store.createDisk(ref, { size })
  const page = randomFillSync(Buffer.alloc(4096))
  const n = ctx.quick ? 5000 : 50_000
  const offsets = scattered(n, size, 21)
  // Flushed at the end (NBD without FUA).
  let t = performance.now()
  for (const off of offsets) await store.writePages(ref, off, page, { durable: false })
  await store.flush()
  const buffered = n / ((performance.now() - t) / 1000)
  // Each write durable, 32 in flight sharing fsyncs (Blob API clients in parallel).
  const m = ctx.quick ? 2000 : 10_000
  const more = scattered(m, size, 22)
  t = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < m) await store.writePages(ref, more[next++]!, page)
    }),
  )
  const durable = m / ((performance.now() - t) / 1000)
  return [
    result('random 4 KiB writes, flushed at the end', Math.round(buffered), 'writes/s'),
    result('random 4 KiB writes, each durable, 32 in flight', Math.round(durable), 'writes/s'),
  ]
}

/** CPU seconds of the children this process has waited for (qemu-img, the CLI), from /proc. */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[13]) + Number(f[14])) / 100
}

/** CPU seconds of a running process so far (the service), from /proc. */
function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

/**
 * A 2 GiB sparse image (a quarter data) four ways, in alternating rounds (median of 3; `sync` before
 * each): `qemu-img convert -O raw` to a file (fdatasync at its end), the store's own import of the
 * file, and `cairn disk import` against a running service — streamed over the API (`--stream`), and
 * with the service on this host reading the file under its --import-root. Every Cairn import is
 * durable when it answers.
 */
async function importImage(ctx: BenchContext, store: LogDiskStore): Promise<BenchResult[]> {
  const size = ctx.quick ? 512 * MiB : 2 * GiB
  const image = join(ctx.dir, 'sparse.raw')
  // A sparse image: one quarter data in 1 MiB runs spread over the file, the rest holes.
  const fd = openSync(image, 'w')
  const data = randomFillSync(Buffer.alloc(MiB))
  for (let at = 0; at < size; at += 4 * MiB) writeSync(fd, data, 0, MiB, at)
  ftruncateSync(fd, size)
  fsyncSync(fd)
  closeSync(fd)
  const times = new Map<string, number[]>()
  const cpu = new Map<string, number[]>()
  const note = (what: string, ms: number, cpuS: number) => {
    times.set(what, [...(times.get(what) ?? []), ms])
    cpu.set(what, [...(cpu.get(what) ?? []), cpuS])
  }
  const svc = await startService(['--import-root', ctx.dir])
  const rounds = ctx.quick ? 1 : 3
  let n = 0
  try {
    for (let r = 0; r < rounds; r++) {
      // Each step answers what to remove after the clock stops.
      const steps: [string, () => Promise<() => Promise<void>>][] = [
        [
          'qemu-img',
          async () => {
            const target = join(ctx.dir, 'qemu-out.raw')
            await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', '-t', 'writeback', image, target])
            return async () => rmSync(target)
          },
        ],
        [
          'store',
          async () => {
            const ref = { account: 'bench', container: 'disks', disk: `imported${n++}` }
            await store.importFile(image, ref)
            return () => store.deleteDisk(ref)
          },
        ],
        ['cli streamed', () => cliImport(svc, image, ['--stream'], n++)],
        ['cli same host', () => cliImport(svc, image, [], n++)],
      ]
      const order = r % 2 === 0 ? steps : [...steps].reverse()
      for (const [what, step] of order) {
        if (what === 'qemu-img' && !ctx.has('qemu-img')) continue
        await run('sync', [])
        const c0 = childrenCpu() + processCpu(svc.child.pid!)
        const own0 = process.cpuUsage()
        const t = performance.now()
        const cleanup = await step()
        const ms = performance.now() - t
        const own = process.cpuUsage(own0)
        const c = childrenCpu() + processCpu(svc.child.pid!) - c0 + (own.user + own.system) / 1e6
        note(what, ms, c)
        await cleanup()
        ctx.log(`import round ${r + 1} ${what}: ${Math.round(ms)} ms, ${c.toFixed(2)} CPU s`)
      }
    }
  } finally {
    await svc.dispose()
  }
  rmSync(image)
  const out: BenchResult[] = []
  const metric: Record<string, [string, string]> = {
    'qemu-img': ['qemu-img', 'import of a sparse image'],
    store: ['cairn', 'import of a sparse image'],
    'cli streamed': ['cairn', 'CLI disk import of a sparse image, streamed'],
    'cli same host': ['cairn', 'CLI disk import of a sparse image, service on this host reads it'],
  }
  for (const [what, [subject, m]] of Object.entries(metric)) {
    const ms = times.get(what)
    if (ms === undefined) continue
    out.push({ ...result(`${m} (median of ${ms.length})`, Math.round(median(ms)), 'ms'), subject })
    out.push({ ...result(`${m}: CPU, all processes`, round(median(cpu.get(what)!)), 's'), subject })
  }
  const q = times.get('qemu-img')
  if (q !== undefined) {
    const ratio = (what: string, label: string) => {
      const x = median(times.get(what)!) / median(q)
      out.push(result(label, round(x), 'x', { target: '<= 1.5x', pass: x <= 1.5 }))
    }
    ratio('store', 'import time vs qemu-img convert')
    ratio('cli streamed', 'CLI import time vs qemu-img convert, streamed')
    ratio('cli same host', 'CLI import time vs qemu-img convert, same host')
  }
  return out
}

/** `cairn disk import` of `image` into a new disk of the service; answers the disk's removal. */
async function cliImport(
  svc: RunningService,
  image: string,
  extra: string[],
  n: number,
): Promise<() => Promise<void>> {
  const r = await cairnAt(svc.url, ['disk', 'import', `cli${n}`, image, ...extra])
  if (r.code !== 0) throw new Error(`cairn disk import failed: ${r.stderr}`)
  return async () => {
    const d = await cairnAt(svc.url, ['disk', 'delete', `cli${n}`])
    if (d.code !== 0) throw new Error(`cairn disk delete failed: ${d.stderr}`)
  }
}

/** The disk store: snapshot and diff latency, sequential and random I/O, import against qemu-img. */
export const diskstore: BenchScenario = {
  name: 'diskstore',
  description:
    'Disk store: snapshots (1 GiB/1 TiB, 1/400 existing), diffs, sequential and random I/O, import',
  async run(ctx) {
    const results: BenchResult[] = []
    const part = async (
      name: string,
      fn: (ctx: BenchContext, store: LogDiskStore) => Promise<BenchResult[]>,
    ) => {
      const dir = join(ctx.dir, name)
      const store = await LogDiskStore.open(dir, { compactIntervalMs: 0 })
      try {
        await store.createAccount('bench')
        await store.createContainer('bench', 'disks')
        ctx.log(name)
        results.push(...(await fn(ctx, store)))
      } finally {
        await store.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }
    await part('snapshots', snapshots)
    await part('diffs', diffs)
    await part('sequential', sequential)
    await part('random', randomWrites)
    await part('import', importImage)
    return results
  },
}
