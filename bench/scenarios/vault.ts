import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../_util.js'
import type { BenchContext, BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
const runner = fileURLToPath(new URL('../vault-runner.js', import.meta.url))

/** Sum of file sizes under a folder: what a repository takes. */
async function folderBytes(dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size
  }
  return n
}

/** Seeded generator, so that every run writes the same image. */
function rng(seed: number): () => number {
  let x = seed >>> 0
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

/**
 * A sparse image of `size` bytes holding `size / 2` of data: in every 64 MiB region, 12 MiB of text-like
 * data, 12 MiB random, 4 MiB of low-entropy binary, 4 MiB of zeros written out; the other 32 MiB are holes.
 */
async function makeImage(path: string, size: number): Promise<void> {
  const corpus = Buffer.from(
    Array.from(
      { length: 20000 },
      (_, i) => `line ${i}: the cairn vault keeps recovery points of disk ${i % 97}\n`,
    ).join(''),
  )
  const rand = rng(42)
  const fh = await open(path, 'w')
  try {
    await fh.truncate(size)
    const region = Math.min(64 * MiB, size)
    for (let r = 0; r < size; r += region) {
      const part = region / 16
      const block = Buffer.alloc(MiB)
      let o = r
      for (let i = 0; i < (3 * part) / MiB; i++, o += MiB) {
        for (let p = 0; p < MiB; p += 64) {
          const from = Math.floor(rand() * (corpus.length - 64))
          corpus.copy(block, p, from, from + 64)
        }
        await fh.write(block, 0, MiB, o)
      }
      for (let i = 0; i < (3 * part) / MiB; i++, o += MiB) await fh.write(randomBytes(MiB), 0, MiB, o)
      for (let i = 0; i < part / MiB; i++, o += MiB) {
        const b = randomBytes(MiB)
        for (let p = 0; p < MiB; p++) b[p] = b[p]! & 0x0f
        await fh.write(b, 0, MiB, o)
      }
      const zeros = Buffer.alloc(MiB)
      for (let i = 0; i < part / MiB; i++, o += MiB) await fh.write(zeros, 0, MiB, o)
    }
  } finally {
    await fh.close()
  }
}

/** Writes runs of random data into the image; returns the changed ranges. */
async function mutate(
  path: string,
  runs: { start: number; length: number }[],
): Promise<{ start: number; end: number }[]> {
  const fh = await open(path, 'r+')
  try {
    for (const r of runs) await fh.write(randomBytes(r.length), 0, r.length, r.start)
  } finally {
    await fh.close()
  }
  return runs.map((r) => ({ start: r.start, end: r.start + r.length }))
}

/** Median of a non-empty list. */
function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Writes dirty pages back and drops the page cache where allowed (root); true when dropped. */
async function coldCaches(): Promise<boolean> {
  await run('sync', [])
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n')
    return true
  } catch {
    return false
  }
}

/**
 * Milliseconds the disk takes to read every file under `vault` while `bytes` of data are written to
 * `out` with O_DIRECT (dd), in parallel.
 */
async function deviceFloor(vault: string, out: string, bytes: number): Promise<number> {
  const script = `find "$1" -type f -exec cat {} + > /dev/null & dd if=/dev/zero of="$2" bs=1M count=$3 oflag=direct status=none & wait`
  const r = await run('sh', ['-c', script, 'floor', vault, out, String(Math.round(bytes / MiB))])
  await rm(out, { force: true })
  return r.ms
}

interface Tool {
  name: string
  init(): Promise<void>
  backup(step: number, changes?: string): Promise<{ ms: number; rss: number }>
  restore(target: string): Promise<{ ms: number; rss: number; cpu: number }>
  repo: string
}

function tools(ctx: BenchContext, image: string): Tool[] {
  const env = { RESTIC_PASSWORD: 'bench', XDG_CACHE_HOME: join(ctx.dir, 'cache') }
  const benv = {
    BORG_BASE_DIR: join(ctx.dir, 'borg-base'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  }
  const cairnRepo = join(ctx.dir, 'cairn')
  const resticRepo = join(ctx.dir, 'restic')
  const borgRepo = join(ctx.dir, 'borg')
  const timed = async (
    cmd: string,
    args: string[],
    options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) => {
    // GNU time reports the child's peak resident memory (KiB) and its CPU seconds.
    const r = await run('/usr/bin/time', ['-f', 'MAXRSS %M CPU %U %S', cmd, ...args], options)
    const rss = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024
    const cpuMatch = /CPU ([\d.]+) ([\d.]+)/.exec(r.stderr)
    const cpu = cpuMatch ? Number(cpuMatch[1]) + Number(cpuMatch[2]) : 0
    return { ms: r.ms, rss, cpu, stdout: r.stdout }
  }
  const cenv = { CAIRN_VAULT_KEY_FILE: join(ctx.dir, 'cairn.key') }
  const list: Tool[] = [
    {
      name: 'cairn',
      repo: cairnRepo,
      init: async () => {
        await timed(process.execPath, [runner, 'init', cairnRepo], { env: cenv })
      },
      backup: (_step, changes) =>
        timed(process.execPath, [runner, 'backup', cairnRepo, image, ...(changes ? [changes] : [])], {
          env: cenv,
        }),
      restore: (target) =>
        timed(process.execPath, [runner, 'restore', cairnRepo, join(target, 'disk.img')], { env: cenv }),
    },
  ]
  if (ctx.has('restic')) {
    list.push({
      name: 'restic',
      repo: resticRepo,
      init: async () => {
        await timed('restic', ['init', '--repo', resticRepo], { env })
      },
      backup: () => timed('restic', ['--repo', resticRepo, 'backup', '--quiet', image], { env }),
      restore: (target) =>
        timed('restic', ['--repo', resticRepo, 'restore', 'latest', '--target', target], { env }),
    })
  }
  if (ctx.has('borg')) {
    list.push({
      name: 'borg',
      repo: borgRepo,
      init: async () => {
        await timed('borg', ['init', '--encryption=none', borgRepo], { env: benv })
      },
      backup: (step) =>
        timed('borg', ['create', '--compression', 'zstd,3', `${borgRepo}::s${step}`, 'disk.img'], {
          env: benv,
          cwd: ctx.dir,
        }),
      restore: async (target) => {
        const list = await timed('borg', ['list', '--short', borgRepo], { env: benv })
        const last = list.stdout.trim().split('\n').pop()!
        return timed('borg', ['extract', '--sparse', `${borgRepo}::${last}`], { env: benv, cwd: target })
      },
    })
  }
  return list
}

/** Milliseconds a `sync` of every file under `dir` takes (fsync of each: their data and metadata). */
async function syncFiles(dir: string): Promise<number> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
  return files.length === 0 ? 0 : (await run('sync', files)).ms
}

/** Cairn against restic and borg on one image: full, incrementals, unchanged, restore, size, memory. */
export const vaultScenario: BenchScenario = {
  name: 'vault',
  description:
    'Vault backup/restore side by side with restic and borg (2 GiB image, 1 GiB data), prune+GC of 1,000 points',
  async run(ctx) {
    const size = ctx.quick ? 256 * MiB : 2048 * MiB
    const image = join(ctx.dir, 'disk.img')
    ctx.log(`building a ${size / MiB} MiB image`)
    await makeImage(image, size)
    await writeFile(join(ctx.dir, 'cairn.key'), randomBytes(32))
    const all = tools(ctx, image)
    for (const t of all) await t.init()
    const results: BenchResult[] = []
    const peak = new Map<string, number>()
    const times = new Map<string, number>()
    const added = new Map<string, number>()
    const record = async (step: string, t: Tool, r: { ms: number; rss: number }, before: number) => {
      const after = await folderBytes(t.repo)
      peak.set(t.name, Math.max(peak.get(t.name) ?? 0, r.rss))
      times.set(`${step}/${t.name}`, r.ms)
      added.set(`${step}/${t.name}`, after - before)
      ctx.log(
        `${step} ${t.name}: ${(r.ms / 1000).toFixed(2)} s, +${((after - before) / MiB).toFixed(1)} MiB, ${r.rss.toFixed(0)} MiB RSS`,
      )
      results.push(
        { scenario: 'vault', subject: t.name, metric: `${step} time`, value: Math.round(r.ms), unit: 'ms' },
        {
          scenario: 'vault',
          subject: t.name,
          metric: `${step} bytes added`,
          value: Math.round(((after - before) / MiB) * 10) / 10,
          unit: 'MiB',
        },
      )
    }
    const step = async (name: string, n: number, changes?: string) => {
      for (const t of all) {
        const before = await folderBytes(t.repo)
        await record(name, t, await t.backup(n, t.name === 'cairn' ? changes : undefined), before)
      }
    }
    const changesFile = async (name: string, changed: { start: number; end: number }[]) => {
      const f = join(ctx.dir, `${name}.json`)
      await writeFile(f, JSON.stringify({ changed, cleared: [] }))
      return f
    }

    await step('full', 1)
    const rand = rng(7)
    const pages = size / 4096
    const scatteredCount = Math.round((size * 0.01) / 4096)
    const scattered = await mutate(
      image,
      Array.from({ length: scatteredCount }, () => ({
        start: Math.floor(rand() * pages) * 4096,
        length: 4096,
      })),
    )
    await step('scattered 1% 4 KiB', 2, await changesFile('scattered', scattered))
    const clusterRuns = Math.round((20 * MiB * (size / (2048 * MiB))) / (256 * 1024))
    const clustered = await mutate(
      image,
      Array.from({ length: clusterRuns }, () => ({
        start: Math.floor(rand() * (pages - 64)) * 4096,
        length: 256 * 1024,
      })),
    )
    await step('clustered 20 MiB', 3, await changesFile('clustered', clustered))
    await step('unchanged', 4, await changesFile('unchanged', []))
    // Restores: every tool starts from the same state (dirty pages written back, and the page cache
    // dropped where this process may: the vault is read from the disk, as in a disaster), in alternating
    // rounds; each tool's median counts. One restore's time swings 2x here with the other tenants of
    // the host, and restic's packs, written through the cache just before, would otherwise be read from
    // memory while Cairn's (written directly) come from the disk.
    const cold = await coldCaches()
    const rounds = ctx.quick ? 1 : 3
    const restoreTimes = new Map<string, number[]>()
    const restoreCpu = new Map<string, number[]>()
    for (let round = 0; round < rounds; round++) {
      for (const t of all) {
        const target = join(ctx.dir, `restore-${t.name}`)
        await mkdir(target, { recursive: true })
        await coldCaches()
        const r = await t.restore(target)
        // Equal durability: Cairn's restore syncs what it wrote before it exits; restic and borg leave
        // it in the page cache, so their time includes a `sync` of the files they restored.
        if (t.name !== 'cairn') r.ms += await syncFiles(target)
        peak.set(t.name, Math.max(peak.get(t.name) ?? 0, r.rss))
        restoreTimes.set(t.name, [...(restoreTimes.get(t.name) ?? []), r.ms])
        restoreCpu.set(t.name, [...(restoreCpu.get(t.name) ?? []), r.cpu])
        ctx.log(
          `restore ${t.name} (round ${round + 1}): ${(r.ms / 1000).toFixed(2)} s, ${r.rss.toFixed(0)} MiB RSS`,
        )
        if (t.name === 'cairn' && round === 0) {
          const same = await run('cmp', [image, join(target, 'disk.img')]).then(
            () => true,
            () => false,
          )
          results.push({
            scenario: 'vault',
            subject: 'cairn',
            metric: 'restore is bit for bit',
            value: same ? 1 : 0,
            unit: 'bool',
            target: '1',
            pass: same,
          })
        }
        await rm(target, { recursive: true, force: true })
      }
    }
    const restoreMetric = `restore time (median of ${rounds}${cold ? ', cold cache' : ''}; restic and borg + sync)`
    for (const [name, list] of restoreTimes) {
      const ms = median(list)
      times.set(`restore/${name}`, ms)
      // CPU against wall time on the 2 cores: how far a restore is from being bound by the CPU.
      results.push({
        scenario: 'vault',
        subject: name,
        metric: `restore CPU, user + system (median of ${rounds})`,
        value: Math.round(median(restoreCpu.get(name) ?? [0]) * 100) / 100,
        unit: 's',
      })
      results.push({
        scenario: 'vault',
        subject: name,
        metric: restoreMetric,
        value: Math.round(ms),
        unit: 'ms',
      })
    }
    // What the disk alone needs for a restore: read Cairn's packs while writing the restored data
    // straight to a new file, in parallel, with no other work. Cairn syncs what it restores, so this
    // is the floor of its restore time (plus starting a process).
    await coldCaches()
    const floor = await deviceFloor(join(ctx.dir, 'cairn'), join(ctx.dir, 'floor.img'), size / 2)
    ctx.log(`device floor: ${(floor / 1000).toFixed(2)} s`)
    results.push({
      scenario: 'vault',
      subject: 'disk',
      metric: 'read the packs + write the data directly, in parallel',
      value: Math.round(floor),
      unit: 'ms',
    })
    for (const [name, mib] of peak) {
      results.push({
        scenario: 'vault',
        subject: name,
        metric: 'peak memory',
        value: Math.round(mib),
        unit: 'MiB',
        ...(name === 'cairn' ? { target: '< 150 MiB', pass: mib < 150 } : {}),
      })
    }
    const changedScattered = new Set(scattered.map((r) => r.start)).size * 4096
    const ratio = (stepName: string, target: number, what: string) => {
      const c = times.get(`${stepName}/cairn`)
      const r = times.get(`${stepName}/restic`)
      if (c === undefined || r === undefined) return
      const x = Math.round((c / r) * 100) / 100
      results.push({
        scenario: 'vault',
        subject: 'cairn',
        metric: `${what} time vs restic`,
        value: x,
        unit: 'x',
        target: `<= ${target}x`,
        pass: x <= target,
      })
    }
    ratio('full', 0.5, 'full backup')
    ratio('scattered 1% 4 KiB', 0.1, 'scattered incremental')
    ratio('restore', 0.5, 'restore')
    const resticRestore = times.get('restore/restic')
    if (resticRestore !== undefined) {
      results.push({
        scenario: 'vault',
        subject: 'disk',
        metric: 'device floor vs restic restore',
        value: Math.round((floor / resticRestore) * 100) / 100,
        unit: 'x',
      })
    }
    const sAdded = added.get('scattered 1% 4 KiB/cairn') ?? 0
    const cAdded = added.get('clustered 20 MiB/cairn') ?? 0
    const clusteredBytes = clusterRuns * 256 * 1024
    results.push(
      {
        scenario: 'vault',
        subject: 'cairn',
        metric: 'scattered bytes added vs changed',
        value: Math.round((sAdded / changedScattered) * 100) / 100,
        unit: 'x',
        target: '<= 2x',
        pass: sAdded <= 2 * changedScattered,
      },
      {
        scenario: 'vault',
        subject: 'cairn',
        metric: 'clustered bytes added vs changed',
        value: Math.round((cAdded / clusteredBytes) * 100) / 100,
        unit: 'x',
        target: '<= 1.3x',
        pass: cAdded <= 1.3 * clusteredBytes,
      },
    )
    for (const name of ['restic', 'borg']) {
      const a = added.get(`scattered 1% 4 KiB/${name}`)
      if (a !== undefined) {
        results.push({
          scenario: 'vault',
          subject: name,
          metric: 'scattered bytes added vs changed',
          value: Math.round((a / changedScattered) * 100) / 100,
          unit: 'x',
        })
      }
    }

    // Prune and GC of a vault with many recovery points.
    const count = ctx.quick ? 100 : 1000
    const many = join(ctx.dir, 'many')
    ctx.log(`making ${count} recovery points`)
    await run(process.execPath, [runner, 'many', many, String(count)])
    const pg = JSON.parse((await run(process.execPath, [runner, 'prune-gc', many, '10'])).stdout) as {
      ms: number
      pruneMs: number
      gcMs: number
      removed: number
    }
    ctx.log(`prune removed ${pg.removed} in ${pg.pruneMs} ms, gc took ${pg.gcMs} ms`)
    results.push(
      {
        scenario: 'vault',
        subject: 'cairn',
        metric: `prune of ${count} recovery points`,
        value: pg.pruneMs,
        unit: 'ms',
      },
      {
        scenario: 'vault',
        subject: 'cairn',
        metric: `prune + gc of ${count} recovery points`,
        value: pg.ms,
        unit: 'ms',
        target: '< 10 s',
        pass: pg.ms < 10_000,
      },
    )
    return results
  },
}
