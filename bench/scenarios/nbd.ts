import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readFileSync, rmSync, truncateSync, writeSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { crc32Implementation, type DiskRef, LogDiskStore } from '../../src/diskstore/index.js'
import { DiskStoreExports, NbdServer, nbdUri } from '../../src/nbd/index.js'
import { run } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024

/** One NBD server under test: serves a disk of the benchmark's size, fresh or as left by the last step. */
interface Peer {
  name: 'nbdkit' | 'qemu-nbd' | 'cairn'
  /** Makes the disk empty (a new sparse file, a new qcow2 image, a new Cairn disk). */
  fresh(): Promise<void>
  /** Serves the disk; `cpu()` is the server's CPU seconds so far. */
  serve(): Promise<{ uri: string; cpu(): number; stop(): Promise<void> }>
  /** Takes a snapshot of the disk while it is not served (qcow2: `qemu-img snapshot -c`). */
  snapshot?(): Promise<void>
  /** Bytes written in place so far (Cairn: overwrites that went over their old pages, no new extent). */
  inPlaceBytes?(): number
}

interface Figure {
  ms: number
  cpu: number
}

/**
 * NBD data plane against `nbdkit file` (a raw file) and `qemu-nbd` serving qcow2 (a format that also
 * allocates and keeps snapshots): sequential writes with nbdcopy, flushed at the end for every server,
 * into a fresh disk, over the written disk, and over it after a snapshot; random 4 KiB writes and reads
 * at queue depth 16 with fio's nbd engine; a sequential read. Rounds alternate the servers; the best
 * round of each figure counts, and each server's CPU seconds per GiB are reported beside it.
 */
export const nbd: BenchScenario = {
  name: 'nbd',
  description:
    'NBD: nbdcopy --flush writes (fresh, overwrite, overwrite after a snapshot), fio 4 KiB QD16, reads: Cairn vs nbdkit file vs qemu-nbd qcow2 (2 GiB)',
  async run(ctx) {
    for (const tool of ['nbdcopy', 'nbdkit', 'qemu-nbd', 'qemu-img', 'fio']) {
      if (!ctx.has(tool))
        throw new Error(`${tool} is not installed (Debian: libnbd-bin, nbdkit, qemu-utils, fio)`)
    }
    const size = (ctx.quick ? 256 : 2048) * MiB
    if (crc32Implementation === 'zlib') {
      ctx.log(
        'warning: @node-rs/crc32 is not installed (run npm install): the disk store checksums with zlib.crc32, ~3x slower',
      )
    }
    const image = join(ctx.dir, 'image.raw')
    writeRandomImage(image, size)
    const mbps = (ms: number) => Math.round((size / MiB / (ms / 1000)) * 10) / 10
    const gib = size / 1024 ** 3

    const store = await LogDiskStore.open(join(ctx.dir, 'store'))
    const server = new NbdServer(new DiskStoreExports(store))
    const best = new Map<string, Figure>()
    const iops = new Map<string, number>()
    /** Share of each Cairn write step's bytes that went in place, per round. */
    const inPlace = new Map<string, number[]>()
    const keep = (key: string, f: Figure) => {
      const old = best.get(key)
      if (old === undefined || f.ms < old.ms) best.set(key, f)
    }
    try {
      await store.createAccount('bench')
      await store.createContainer('bench', 'disks')
      const port = await server.listen(0)
      const peers = [
        filePeer(join(ctx.dir, 'nbdkit.raw'), size),
        qcow2Peer(join(ctx.dir, 'qemu.qcow2'), size),
        cairnPeer(store, port, size),
      ]
      const rounds = ctx.quick ? 1 : 2
      for (let round = 0; round < rounds; round++) {
        // Alternate the order, so that no server always runs right after the same neighbour.
        const order = round % 2 === 0 ? peers : [...peers].reverse()
        for (const peer of order) {
          const line: string[] = []
          const copy = async (key: string, from: string, to: string, cpu: () => number) => {
            const placed0 = peer.inPlaceBytes?.()
            const f = await timedCopy(from, to, cpu)
            keep(`${key}/${peer.name}`, f)
            let note = ''
            if (placed0 !== undefined) {
              const share = (peer.inPlaceBytes!() - placed0) / size
              inPlace.set(key, [...(inPlace.get(key) ?? []), share])
              note = `, ${Math.round(share * 100)}% in place`
            }
            line.push(`${key} ${mbps(f.ms)} MB/s (${(f.cpu / gib).toFixed(2)} s/GiB${note})`)
          }
          await peer.fresh()
          let s = await peer.serve()
          try {
            await copy('fresh write', image, s.uri, s.cpu)
            await copy('overwrite', image, s.uri, s.cpu)
            for (const rw of ['randwrite', 'randread'] as const) {
              const n = await fio(s.uri, rw, size, ctx.quick ? 3 : 8)
              iops.set(`${rw}/${peer.name}`, Math.max(iops.get(`${rw}/${peer.name}`) ?? 0, n))
              line.push(`${rw} ${Math.round(n)} IOPS`)
            }
            const cpu0 = s.cpu()
            const readMs = await timed('nbdcopy', [s.uri, 'null:'])
            keep(`read/${peer.name}`, { ms: readMs, cpu: s.cpu() - cpu0 })
            line.push(`read ${mbps(readMs)} MB/s`)
          } finally {
            await s.stop()
          }
          if (peer.snapshot !== undefined) {
            await peer.snapshot()
            s = await peer.serve()
            try {
              await copy('overwrite after snapshot', image, s.uri, s.cpu)
            } finally {
              await s.stop()
            }
          }
          ctx.log(`round ${round + 1} ${peer.name}: ${line.join(', ')}`)
        }
      }
    } finally {
      await server.close()
      await store.close()
    }

    const results: BenchResult[] = []
    const seqMetric = (what: string) => `nbdcopy --flush ${what} ${size / MiB} MiB`
    const ratio = (metric: string, value: number, target?: number, over = 'x') =>
      results.push({
        scenario: 'nbd',
        subject: 'cairn',
        metric,
        value: Math.round(value * 100) / 100,
        unit: over,
        ...(target === undefined ? {} : { target: `>= ${target}x`, pass: value >= target }),
      })
    const targets: Record<string, { nbdkit?: number; qemu: number }> = {
      'fresh write': { nbdkit: 0.8, qemu: 1.5 },
      overwrite: { nbdkit: 0.6, qemu: 1.5 },
      'overwrite after snapshot': { qemu: 1.5 },
    }
    for (const what of ['fresh write', 'overwrite', 'overwrite after snapshot', 'read']) {
      const metric = what === 'read' ? `nbdcopy sequential read ${size / MiB} MiB` : seqMetric(what)
      for (const name of ['nbdkit', 'qemu-nbd', 'cairn']) {
        const f = best.get(`${what}/${name}`)
        if (f === undefined) continue
        results.push({ scenario: 'nbd', subject: name, metric, value: mbps(f.ms), unit: 'MB/s' })
        results.push({
          scenario: 'nbd',
          subject: name,
          metric: `${what}: server CPU`,
          value: Math.round((f.cpu / gib) * 100) / 100,
          unit: 's/GiB',
        })
      }
      const c = best.get(`${what}/cairn`)
      const k = best.get(`${what}/nbdkit`)
      const q = best.get(`${what}/qemu-nbd`)
      const t = targets[what]
      if (c !== undefined && k !== undefined)
        ratio(`${what} vs nbdkit`, k.ms / c.ms, t?.nbdkit ?? (what === 'read' ? 0.8 : undefined))
      if (c !== undefined && q !== undefined) ratio(`${what} vs qemu-nbd qcow2`, q.ms / c.ms, t?.qemu)
    }
    // How many of the overwrites' bytes went in place (no snapshot shares them: all may; after a
    // snapshot: none may), the lowest round.
    for (const [what, shares] of inPlace) {
      results.push({
        scenario: 'nbd',
        subject: 'cairn',
        metric: `${what}: bytes written in place`,
        value: Math.round(Math.min(...shares) * 1000) / 10,
        unit: '%',
      })
    }
    for (const rw of ['randwrite', 'randread']) {
      const metric = `fio ${rw} 4 KiB QD16`
      for (const name of ['nbdkit', 'qemu-nbd', 'cairn']) {
        const n = iops.get(`${rw}/${name}`)
        if (n !== undefined)
          results.push({ scenario: 'nbd', subject: name, metric, value: Math.round(n), unit: 'IOPS' })
      }
      const c = iops.get(`${rw}/cairn`)
      const k = iops.get(`${rw}/nbdkit`)
      const q = iops.get(`${rw}/qemu-nbd`)
      if (c !== undefined && k !== undefined) ratio(`${metric} vs nbdkit`, c / k, 0.5)
      if (c !== undefined && q !== undefined) ratio(`${metric} vs qemu-nbd qcow2`, c / q, 1.5)
    }
    return results
  },
}

/** `nbdkit file` over a raw file; fresh: a new sparse file (none of it in the page cache). */
function filePeer(path: string, size: number): Peer {
  return {
    name: 'nbdkit',
    fresh: async () => {
      rmSync(path, { force: true })
      closeSync(openSync(path, 'w'))
      truncateSync(path, size)
    },
    serve: () => serveChild('nbdkit', (port) => ['-f', '-i', '127.0.0.1', '-p', String(port), 'file', path]),
  }
}

/** `qemu-nbd` over a qcow2 image (writeback cache, flushes honoured); snapshots with `qemu-img snapshot -c`. */
function qcow2Peer(path: string, size: number): Peer {
  let n = 0
  return {
    name: 'qemu-nbd',
    fresh: async () => {
      rmSync(path, { force: true })
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(size)])
    },
    serve: () =>
      serveChild('qemu-nbd', (port) => [
        '-f',
        'qcow2',
        '-b',
        '127.0.0.1',
        '-p',
        String(port),
        '-t',
        '-e',
        '16',
        '--cache=writeback',
        path,
      ]),
    snapshot: async () => {
      await run('qemu-img', ['snapshot', '-c', `s${n++}`, path])
    },
  }
}

/** Cairn's NBD server in this process over a disk of a fresh disk store. */
function cairnPeer(store: LogDiskStore, port: number, size: number): Peer {
  const ref: DiskRef = { account: 'bench', container: 'disks', disk: 'image' }
  const cpu = () => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1e6
  }
  return {
    name: 'cairn',
    fresh: async () => {
      if (store.listDisks('bench', 'disks').items.some((d) => d.ref.disk === 'image'))
        await store.deleteDisk(ref, { snapshots: 'include' })
      await store.createDisk(ref, { size })
    },
    serve: async () => ({ uri: nbdUri('127.0.0.1', port, 'bench/disks/image'), cpu, stop: async () => {} }),
    snapshot: async () => {
      await store.snapshot(ref)
    },
    inPlaceBytes: () => store.overwriteStats().inPlaceBytes,
  }
}

/** Writes `size` bytes of random data (incompressible, no holes) in 4 MiB pieces. */
function writeRandomImage(path: string, size: number): void {
  const fd = openSync(path, 'w')
  try {
    for (let at = 0; at < size; at += 4 * MiB)
      writeSync(fd, randomBytes(Math.min(4 * MiB, size - at)), 0, undefined, at)
  } finally {
    closeSync(fd)
  }
}

/**
 * Milliseconds `cmd` takes. Dirty pages are written back first (`sync`), so that a copy does not pay
 * for the writes of the one before it (the kernel throttles writers while much is dirty).
 */
async function timed(cmd: string, args: string[]): Promise<number> {
  await run('sync', [])
  return (await run(cmd, args)).ms
}

/** One `nbdcopy --flush` (every server makes the copy durable before it ends) and the server's CPU. */
async function timedCopy(from: string, to: string, cpu: () => number): Promise<Figure> {
  await run('sync', [])
  const cpu0 = cpu()
  const r = await run('nbdcopy', ['--flush', from, to])
  return { ms: r.ms, cpu: cpu() - cpu0 }
}

/** fio's nbd engine: 4 KiB random `rw` at queue depth 16 for `seconds`; IOPS. */
async function fio(
  uri: string,
  rw: 'randwrite' | 'randread',
  size: number,
  seconds: number,
): Promise<number> {
  const r = await run('fio', [
    '--name=nbd',
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${rw}`,
    '--bs=4k',
    '--iodepth=16',
    `--size=${size}`,
    `--runtime=${seconds}`,
    '--time_based',
    '--norandommap',
    '--randrepeat=0',
    '--output-format=json',
  ])
  // fio prints "fio: connected to NBD server" before the JSON.
  const job = (
    JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as {
      jobs: { read: { iops: number }; write: { iops: number } }[]
    }
  ).jobs[0]!
  return rw === 'randwrite' ? job.write.iops : job.read.iops
}

/** Starts a server child on a free port of 127.0.0.1 and waits until it listens. */
async function serveChild(
  cmd: string,
  args: (port: number) => string[],
): Promise<{ uri: string; cpu(): number; stop(): Promise<void> }> {
  const port = await freePort()
  const child: ChildProcess = spawn(cmd, args(port), { stdio: 'ignore' })
  const stop = async () => {
    if (child.exitCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }
  try {
    await waitForPort(port, child)
  } catch (err) {
    await stop()
    throw err
  }
  const cpu = () => processCpu(child.pid!)
  return { uri: `nbd://127.0.0.1:${port}/`, cpu, stop }
}

/** CPU seconds (user + system, all threads) of a process so far, from /proc. */
function processCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${child.spawnfile} did not listen on port ${port}`)
}
