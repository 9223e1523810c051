// Issue 16's benchmark: a Cairn vault on S3 and one on Azure Blob against a Cairn vault in a folder and
// restic on the same S3 server, side by side in one run. The S3 server is s3rver from node_modules over
// TLS (restic's S3 client signs plain-HTTP uploads with aws-chunked bodies, which s3rver 3.7 stores
// undecoded; over TLS it sends plain bodies), started here with its request log on: every request is
// one log line, so requests are counted at the server for both tools. The Azure server is Azurite from
// node_modules (plain HTTP, as its SDK's development endpoint). Each tool runs as its own process,
// timed whole. Both servers are warmed up first (a backup and restore of a small image each): a Node
// server's first large requests run cold code (s3rver used ~0.3–0.5 CPU s more for the first backup
// it served), which would otherwise land on whichever subject runs first. Full backups run three rounds,
// the subjects in turn (`CAIRN_BENCH_OBJSTORE_ROUNDS`; one with --quick): medians are reported.
import { spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3RVER_ATOMIC_PUT } from '../../src/vault/_test-object-stores.js'
import { run } from '../_util.js'
import type { BenchContext, BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const runner = fileURLToPath(new URL('../vault-runner.js', import.meta.url))
const require = createRequire(import.meta.url)

/** An image of `size` bytes, all data: random and text-like MiBs in turn (compressible half). */
async function makeImage(path: string, size: number): Promise<void> {
  const line = Buffer.from('the cairn vault keeps recovery points of disks in object storage\n')
  const fh = await open(path, 'w')
  try {
    const block = Buffer.alloc(MiB)
    for (let o = 0, i = 0; o < size; o += MiB, i++) {
      if (i % 2 === 0) randomFillSync(block)
      else {
        for (let p = 0; p < MiB; p += line.length) line.copy(block, p, 0, Math.min(line.length, MiB - p))
        block.writeUInt32LE(i, (i * 4096) % (MiB - 4))
      }
      await fh.write(block, 0, MiB, o)
    }
  } finally {
    await fh.close()
  }
}

/** The median of some numbers (the mean of the middle two for an even count). */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** A vault location of an earlier round: its own prefix (`vault-r0`) in the same bucket or container. */
function roundOf(location: string, round: string): string {
  return round === '' ? location : location.replace('/vault?', `/vault${round}?`)
}

/** 1 % of the image's 4 KiB pages overwritten with random bytes, scattered. */
async function mutate(path: string, size: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const pages = size / 4096
    const page = Buffer.alloc(4096)
    for (let i = 0; i < pages / 100; i++) {
      randomFillSync(page)
      await fh.write(page, 0, 4096, ((i * 7919 + 13) % pages) * 4096)
    }
  } finally {
    await fh.close()
  }
}

/**
 * Node flags of both object-store servers. V8 sets a Node server's old-generation limit from the
 * allocation rate it saw before a major GC: a server that idled (Azurite, while the S3 subject ran) set
 * it just above its live heap (~26 MB) at the next backup's first GC, and then marked its whole heap
 * 20-27 times while receiving 512 MiB (about 1 CPU s more than the same backup served back to back,
 * which ran no major GC at all). 256 MiB of initial old-generation room keeps both servers out of that
 * storm whatever ran before; it changes no request either serves.
 */
const SERVER_NODE_FLAGS = ['--initial-old-space-size=256']

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise((resolve) => srv.close(resolve))
  return port
}

interface Server {
  port: number
  requests(): Promise<number>
  /** CPU seconds (user + system) the server used so far. */
  cpu(): Promise<number>
  /** Bytes of the objects in a bucket, as the server stores them. */
  bucketBytes(bucket: string): Promise<number>
  stop(): Promise<void>
}

/** Fields 14 on of /proc/PID/stat (utime is [0], stime [1], cutime [2], cstime [3]), in seconds. */
async function cpuTimes(pid: number | 'self'): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8')
  return text
    .slice(text.lastIndexOf(')') + 2)
    .split(' ')
    .slice(11, 15)
    .map((t) => Number(t) / 100)
}

/** CPU seconds (user + system) of this process's children that ended: each step's tool, as it exits. */
async function childrenCpu(): Promise<number> {
  const [, , cutime = 0, cstime = 0] = await cpuTimes('self')
  return cutime + cstime
}

/** Sizes of the files under `dir` whose names end with `suffix`. */
async function bytesUnder(dir: string, suffix: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(suffix)) n += (await stat(join(e.parentPath ?? e.path, e.name))).size
  }
  return n
}

/**
 * s3rver over TLS, its PUTs atomic, with its request log in `dir/log`; buckets are folders made before
 * it starts.
 */
async function startS3rver(dir: string, cert: string, key: string, buckets: string[]): Promise<Server> {
  const data = join(dir, 'data')
  for (const b of buckets) await mkdir(join(data, b), { recursive: true })
  const port = await freePort()
  const log = join(dir, 'log')
  const out = await open(log, 'w')
  // PUTs made atomic as S3's, as in the tests (S3RVER_ATOMIC_PUT).
  const main = require.resolve('s3rver/bin/s3rver.js')
  const boot = `${S3RVER_ATOMIC_PUT};process.argv=[process.argv[0],${JSON.stringify(main)},...process.argv.slice(1)];require(${JSON.stringify(main)})`
  const child = spawn(
    process.execPath,
    [
      ...SERVER_NODE_FLAGS,
      '-e',
      boot,
      '--',
      '--directory',
      data,
      '--address',
      '127.0.0.1',
      '--port',
      String(port),
      '--key',
      key,
      '--cert',
      cert,
    ],
    { stdio: ['ignore', out.fd, out.fd] },
  )
  for (let i = 0; i < 200; i++) {
    if ((await readFile(log, 'utf8')).includes('listening')) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    port,
    // One line per request: "info: <path> <status> <ms>ms <size>".
    requests: async () =>
      (await readFile(log, 'utf8')).split('\n').filter((l) => / \d{3} [\d,]+ms /.test(l)).length,
    cpu: async () => {
      const [utime = 0, stime = 0] = await cpuTimes(child.pid!)
      return utime + stime
    },
    bucketBytes: (bucket) => bytesUnder(join(data, bucket), '._S3rver_object'),
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill()
      await exited
      await out.close()
    },
  }
}

/** Azurite's well-known development account and key. */
const AZURITE_ACCOUNT = 'devstoreaccount1'
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

/** Azurite's blob service (plain HTTP, `--silent`) with `containers` made; requests are not counted (no log). */
async function startAzurite(dir: string, containers: string[]): Promise<Server> {
  await mkdir(dir, { recursive: true })
  const port = await freePort()
  const log = join(dir, 'log')
  const out = await open(log, 'w')
  const child = spawn(
    process.execPath,
    [
      ...SERVER_NODE_FLAGS,
      require.resolve('azurite/dist/src/blob/main.js'),
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      join(dir, 'data'),
      '--loose',
      '--skipApiVersionCheck',
      '--disableTelemetry',
      // No access log: nothing reads it here (requests are not counted), and writing it cost Azurite
      // about as much CPU again as storing the blobs (a 512 MiB backup: 2.47 against 1.22 CPU s).
      '--silent',
    ],
    { stdio: ['ignore', out.fd, out.fd] },
  )
  for (let i = 0; i < 300; i++) {
    if ((await readFile(log, 'utf8')).includes('successfully listens')) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const az = require('@azure/storage-blob') as typeof import('@azure/storage-blob')
  const service = new az.BlobServiceClient(
    `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    new az.StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  )
  for (const c of containers) await service.getContainerClient(c).createIfNotExists()
  return {
    port,
    requests: async () => 0,
    cpu: async () => {
      const [utime = 0, stime = 0] = await cpuTimes(child.pid!)
      return utime + stime
    },
    bucketBytes: async () => 0,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill()
      await exited
      await out.close()
    },
  }
}

export const objstore: BenchScenario = {
  name: 'objstore',
  description:
    'Cairn vault on S3 (s3rver, TLS) and on Azure (Azurite) vs Cairn folder vault vs restic on the same S3 server: backup/restore MB/s, CPU s, requests per GiB',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    if (!ctx.has('openssl')) throw new Error('openssl is needed for the TLS certificate of the S3 server')
    const size = Number(process.env.CAIRN_BENCH_OBJSTORE_MIB ?? (ctx.quick ? 64 : 512)) * MiB
    const image = join(ctx.dir, 'disk.img')
    await makeImage(image, size)
    const cert = join(ctx.dir, 'cert.pem')
    const key = join(ctx.dir, 'key.pem')
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ])
    const server = await startS3rver(join(ctx.dir, 's3'), cert, key, [
      'cairn',
      'cairn-copy',
      'restic',
      'warmup',
    ])
    const azurite = await startAzurite(join(ctx.dir, 'azurite'), ['cairn', 'warmup'])
    const endpoint = `https://127.0.0.1:${server.port}`
    const azEndpoint = encodeURIComponent(`http://127.0.0.1:${azurite.port}/${AZURITE_ACCOUNT}`)
    const s3env = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      NODE_EXTRA_CA_CERTS: cert,
      RESTIC_PASSWORD: 'bench',
      XDG_CACHE_HOME: join(ctx.dir, 'restic-cache'),
      CAIRN_VAULT_CACHE_DIR: join(ctx.dir, 'cairn-cache'),
      NODE_NO_WARNINGS: '1',
      AZURE_STORAGE_KEY: AZURITE_KEY,
    }
    const cairnS3 = `s3://cairn/vault?endpoint=${encodeURIComponent(endpoint)}&path-style=true`
    const cairnAz = `azblob://${AZURITE_ACCOUNT}/cairn/vault?endpoint=${azEndpoint}`
    // Where the Cairn S3 vault's points are copied after each backup (issue 16: a copy of an
    // incremental point sends at most 1.1x its new chunk bytes, counted at the server).
    const cairnCopy = `s3://cairn-copy/vault?endpoint=${encodeURIComponent(endpoint)}&path-style=true`
    /** restic's repository options: the last round's repository, or an earlier round's own. */
    const repo = (round = '') => [
      '-r',
      `s3:${endpoint}/restic/repo${round}`,
      '-o',
      's3.bucket-lookup=path',
      '--cacert',
      cert,
    ]
    const restic = repo()
    type Step = 'full backup' | 'incremental backup' | 'restore'
    // Full backups are timed `rounds` times, the subjects in turn, each round's into vaults of its own
    // (the last round's are the vaults the incremental, the copies and the restores use); each subject's
    // median counts, and the ratios are the medians of each round's. One run on this machine varied
    // by a third (the folder vault's full backup 1.44-2.04 s, a server's CPU 1.2-2.4 s for the same
    // work): one round each left the ratios to chance.
    const rounds = Math.max(1, Number(process.env.CAIRN_BENCH_OBJSTORE_ROUNDS ?? (ctx.quick ? 1 : 3)))
    const subjects: {
      name: string
      /** The server it talks to, when not the local disk. */
      server?: Server
      /** The command of a step; `round` names an earlier round's own vault ('' for the last). */
      step: (s: Step, out: string, round: string) => [string, string[]]
      /** Makes an earlier round's vault, where the tool needs that first. */
      prepare?: (round: string) => Promise<void>
    }[] = [
      {
        name: 'cairn (S3 vault)',
        server,
        step: (s, out, round) => [
          process.execPath,
          s === 'restore'
            ? [runner, 'restore', cairnS3, out]
            : [runner, 'backup', roundOf(cairnS3, round), image],
        ],
      },
      {
        name: 'cairn (Azure vault)',
        server: azurite,
        step: (s, out, round) => [
          process.execPath,
          s === 'restore'
            ? [runner, 'restore', cairnAz, out]
            : [runner, 'backup', roundOf(cairnAz, round), image],
        ],
      },
      {
        name: 'cairn (folder vault)',
        step: (s, out, round) => {
          const dir = join(ctx.dir, `cairn-folder${round}`)
          return [
            process.execPath,
            s === 'restore' ? [runner, 'restore', dir, out] : [runner, 'backup', dir, image],
          ]
        },
      },
    ]
    if (ctx.has('restic')) {
      await run('restic', [...restic, 'init'], { env: s3env })
      subjects.push({
        name: 'restic (S3)',
        server,
        step: (s, out, round) =>
          s === 'restore'
            ? ['restic', [...restic, 'restore', 'latest', '--target', out]]
            : ['restic', [...repo(round), 'backup', '--quiet', image]],
        prepare: async (round) => {
          await run('restic', [...repo(round), 'init'], { env: s3env })
        },
      })
    } else ctx.log('restic is not installed: the anchor is missing')

    const results: BenchResult[] = []
    /** Each round's wall seconds of a subject's step (one round but for full backups). */
    const seconds = new Map<string, number[]>()
    /**
     * The step's own time inside a Cairn process (the runner's `ms`): the vault already open and its
     * SDK loaded, as in `cairn serve`, which pays those once, not per backup.
     */
    const inside = new Map<string, number[]>()
    interface Measured {
      ms: number
      toolCpu: number
      serverCpu: number
      requests: number
      inside?: number
      bytesAdded?: number
    }
    /** One step of one subject, timed whole: its process's wall and CPU, its server's CPU and requests. */
    const measure = async (s: (typeof subjects)[number], step: Step, round: string): Promise<Measured> => {
      const out = join(ctx.dir, `out-${s.name.replace(/\W+/g, '-')}`)
      await rm(out, { recursive: true, force: true })
      if (step === 'restore' && s.name.startsWith('restic')) await mkdir(out)
      const before = (await s.server?.requests()) ?? 0
      const cpu = { tool: await childrenCpu(), server: (await s.server?.cpu()) ?? 0 }
      const [cmd, args] = s.step(step, out, round)
      const r = await run(cmd, args, { env: s3env })
      const m: Measured = {
        ms: r.ms,
        requests: ((await s.server?.requests()) ?? 0) - before,
        toolCpu: (await childrenCpu()) - cpu.tool,
        serverCpu: ((await s.server?.cpu()) ?? 0) - cpu.server,
      }
      await rm(out, { recursive: true, force: true })
      if (s.name.startsWith('cairn')) {
        const line = r.stdout.trim().split('\n').at(-1) ?? '{}'
        const said = JSON.parse(line) as { bytesAdded?: number; ms?: number }
        if (said.ms !== undefined) m.inside = said.ms / 1000
        if (said.bytesAdded !== undefined) m.bytesAdded = said.bytesAdded
      }
      return m
    }
    /** Bytes each Cairn S3 backup added to its vault (its packs). */
    const added = new Map<string, number>()
    try {
      // Warm-up, not measured: a backup and a restore of a 32 MiB image through each server.
      const small = join(ctx.dir, 'warmup.img')
      await makeImage(small, Math.min(size, 32 * MiB))
      for (const place of [
        `s3://warmup/vault?endpoint=${encodeURIComponent(endpoint)}&path-style=true`,
        `azblob://${AZURITE_ACCOUNT}/warmup/vault?endpoint=${azEndpoint}`,
      ]) {
        await run(process.execPath, [runner, 'backup', place, small], { env: s3env })
        await run(process.execPath, [runner, 'restore', place, join(ctx.dir, 'warmup.out')], { env: s3env })
      }
      await rm(join(ctx.dir, 'warmup.out'), { force: true })
      await rm(small, { force: true })
      for (const step of ['full backup', 'incremental backup', 'restore'] as const) {
        if (step === 'incremental backup') await mutate(image, size)
        const measured = new Map<string, Measured[]>()
        const times = step === 'full backup' ? rounds : 1
        for (let i = 0; i < times; i++) {
          const round = i === times - 1 ? '' : `-r${i}`
          for (const s of subjects) {
            if (round !== '') await s.prepare?.(round)
            const m = await measure(s, step, round)
            measured.set(s.name, [...(measured.get(s.name) ?? []), m])
            const serverName = s.server === azurite ? 'Azurite' : 's3rver'
            ctx.log(
              `${s.name} ${step}${times > 1 ? ` (round ${i + 1} of ${times})` : ''}: ${(m.ms / 1000).toFixed(2)} s, ${s.server === server ? `${m.requests} requests, ` : ''}CPU ${m.toolCpu.toFixed(2)} s${s.server ? ` (${serverName} ${m.serverCpu.toFixed(2)} s)` : ''}`,
            )
          }
        }
        for (const s of subjects) {
          const ms = measured.get(s.name)!
          const mid = <K extends keyof Measured>(k: K) => median(ms.map((m) => m[k] as number))
          const serverName = s.server === azurite ? 'Azurite' : 's3rver'
          seconds.set(
            `${s.name}/${step}`,
            ms.map((m) => m.ms / 1000),
          )
          if (s.name === 'cairn (S3 vault)' && step !== 'restore') added.set(step, ms.at(-1)!.bytesAdded!)
          const insides = ms.flatMap((m) => (m.inside !== undefined ? [m.inside] : []))
          if (insides.length === ms.length && insides.length > 0) {
            inside.set(`${s.name}/${step}`, insides)
            results.push({
              scenario: 'objstore',
              subject: s.name,
              metric: `${step} s in an open vault`,
              value: Math.round(median(insides) * 100) / 100,
              unit: 's',
            })
          }
          results.push({
            scenario: 'objstore',
            subject: s.name,
            metric: `${step} CPU s`,
            value: Math.round(mid('toolCpu') * 100) / 100,
            unit: 's',
          })
          if (s.server)
            results.push({
              scenario: 'objstore',
              subject: s.name,
              metric: `${step} ${serverName} CPU s`,
              value: Math.round(mid('serverCpu') * 100) / 100,
              unit: 's',
            })
          results.push({
            scenario: 'objstore',
            subject: s.name,
            metric: `${step} MB/s`,
            value: Math.round((size / 1e6 / (mid('ms') / 1000)) * 10) / 10,
            unit: 'MB/s',
          })
          if (s.server === server)
            results.push({
              scenario: 'objstore',
              subject: s.name,
              metric: `${step} requests per GiB`,
              value: Math.round(mid('requests') / (size / GiB)),
              unit: 'requests/GiB',
            })
        }
        if (step === 'restore') continue
        // The new point copied to a second S3 vault: bytes the server stores more, against the point's own.
        const bytes = await server.bucketBytes('cairn-copy')
        const before = await server.requests()
        const r = await run(process.execPath, [runner, 'copy', cairnS3, cairnCopy], { env: s3env })
        const grown = (await server.bucketBytes('cairn-copy')) - bytes
        const requests = (await server.requests()) - before
        const ratio = grown / added.get(step)!
        ctx.log(
          `cairn copy after the ${step}: ${(r.ms / 1000).toFixed(2)} s, ${grown} bytes, ${requests} requests`,
        )
        results.push({
          scenario: 'objstore',
          subject: 'cairn (S3 vault)',
          metric: `copy of the ${step}'s point: bytes at the server vs the point's new bytes`,
          value: Math.round(ratio * 1000) / 1000,
          unit: 'x',
          ...(step === 'incremental backup' ? { target: '<= 1.1x', pass: ratio <= 1.1 } : {}),
        })
      }
    } finally {
      await server.stop()
      await azurite.stop()
    }
    /** The median over rounds of a subject's time against another's in the same round. */
    const ratio = (times: Map<string, number[]>, a: string, b: string): number | undefined => {
      const x = times.get(a)
      const y = times.get(b)
      if (!x || !y || x.length !== y.length) return undefined
      return median(x.map((t, i) => t / y[i]!))
    }
    for (const step of ['full backup', 'incremental backup', 'restore'] as const) {
      for (const subject of ['cairn (S3 vault)', 'cairn (Azure vault)']) {
        const r = ratio(seconds, `${subject}/${step}`, `cairn (folder vault)/${step}`)!
        results.push({
          scenario: 'objstore',
          subject,
          metric: `${step} time vs folder vault`,
          value: Math.round(r * 100) / 100,
          unit: 'x',
          ...(step === 'restore' ? {} : { target: '<= 1.5x', pass: r <= 1.5 }),
        })
      }
      for (const subject of ['cairn (S3 vault)', 'cairn (Azure vault)']) {
        const r = ratio(inside, `${subject}/${step}`, `cairn (folder vault)/${step}`)
        if (r !== undefined)
          results.push({
            scenario: 'objstore',
            subject,
            metric: `${step} time in an open vault vs folder vault`,
            value: Math.round(r * 100) / 100,
            unit: 'x',
          })
      }
      const r = ratio(seconds, `cairn (S3 vault)/${step}`, `restic (S3)/${step}`)
      if (r !== undefined)
        results.push({
          scenario: 'objstore',
          subject: 'cairn (S3 vault)',
          metric: `${step} time vs restic on S3`,
          value: Math.round(r * 100) / 100,
          unit: 'x',
          target: '< 1x',
          pass: r < 1,
        })
    }
    return results
  },
}
