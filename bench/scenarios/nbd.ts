import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, truncateSync, writeSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { crc32Implementation, LogDiskStore } from '../../src/diskstore/index.js'
import { DiskStoreExports, NbdServer, nbdUri } from '../../src/nbd/index.js'
import { run } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024

/** Sequential nbdcopy throughput through Cairn's NBD server (disk-store backed) against `nbdkit file`. */
export const nbd: BenchScenario = {
  name: 'nbd',
  description: 'nbdcopy write and read MB/s: Cairn NBD (disk store) vs nbdkit file on a raw image (1 GiB)',
  async run(ctx) {
    for (const tool of ['nbdcopy', 'nbdkit']) {
      if (!ctx.has(tool)) throw new Error(`${tool} is not installed (Debian: libnbd-bin, nbdkit)`)
    }
    const size = (ctx.quick ? 256 : 1024) * MiB
    if (crc32Implementation === 'zlib') {
      ctx.log(
        'warning: @node-rs/crc32 is not installed (run npm install): the disk store checksums with zlib.crc32, ~3x slower',
      )
    }
    const image = join(ctx.dir, 'image.raw')
    writeRandomImage(image, size)
    const mbps = (ms: number) => Math.round((size / MiB / (ms / 1000)) * 10) / 10

    // nbdkit serves a raw file: written into an empty image, read from the full one. Cairn serves a
    // disk of the same size in a fresh disk store. Rounds alternate the two; the best round counts.
    const target = join(ctx.dir, 'nbdkit-target.raw')
    closeSync(openSync(target, 'w'))
    truncateSync(target, size)
    const store = await LogDiskStore.open(join(ctx.dir, 'store'))
    const server = new NbdServer(new DiskStoreExports(store))
    const best = { kitWrite: Infinity, kitRead: Infinity, cairnWrite: Infinity, cairnRead: Infinity }
    try {
      await store.createAccount('bench')
      await store.createContainer('bench', 'disks')
      await store.createDisk({ account: 'bench', container: 'disks', disk: 'image' }, { size })
      const uri = nbdUri('127.0.0.1', await server.listen(0), 'bench/disks/image')
      for (let round = 0; round < (ctx.quick ? 1 : 3); round++) {
        const kitWrite = await withNbdkit(target, (kit) => timed('nbdcopy', [image, kit]))
        const kitRead = await withNbdkit(image, (kit) => timed('nbdcopy', [kit, 'null:']))
        const cairnWrite = await timed('nbdcopy', [image, uri])
        const cairnRead = await timed('nbdcopy', [uri, 'null:'])
        ctx.log(
          `round ${round + 1}: nbdkit write ${mbps(kitWrite)} read ${mbps(kitRead)} MB/s, cairn write ${mbps(cairnWrite)} read ${mbps(cairnRead)} MB/s`,
        )
        best.kitWrite = Math.min(best.kitWrite, kitWrite)
        best.kitRead = Math.min(best.kitRead, kitRead)
        best.cairnWrite = Math.min(best.cairnWrite, cairnWrite)
        best.cairnRead = Math.min(best.cairnRead, cairnRead)
      }
    } finally {
      await server.close()
      await store.close()
    }

    const results: BenchResult[] = []
    for (const [what, cairn, kit] of [
      ['write', best.cairnWrite, best.kitWrite],
      ['read', best.cairnRead, best.kitRead],
    ] as const) {
      const metric = `nbdcopy sequential ${what} ${size / MiB} MiB`
      results.push({ scenario: 'nbd', subject: 'nbdkit', metric, value: mbps(kit), unit: 'MB/s' })
      results.push({ scenario: 'nbd', subject: 'cairn', metric, value: mbps(cairn), unit: 'MB/s' })
      const ratio = Math.round((kit / cairn) * 100) / 100
      results.push({
        scenario: 'nbd',
        subject: 'cairn',
        metric: `${what} throughput / nbdkit`,
        value: ratio,
        unit: 'x',
        target: '>= 0.8x nbdkit',
        pass: ratio >= 0.8,
      })
    }
    return results
  },
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

/** Runs `fn` while `nbdkit file FILE` serves on a free TCP port of 127.0.0.1. */
async function withNbdkit<T>(file: string, fn: (uri: string) => Promise<T>): Promise<T> {
  const port = await freePort()
  const kit: ChildProcess = spawn('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'file', file], {
    stdio: 'ignore',
  })
  try {
    await waitForPort(port, kit)
    return await fn(`nbd://127.0.0.1:${port}/`)
  } finally {
    const exited = new Promise((r) => kit.once('exit', r))
    kit.kill('SIGTERM')
    await exited
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
    if (child.exitCode !== null) throw new Error(`nbdkit exited with ${child.exitCode}`)
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
  throw new Error(`nbdkit did not listen on port ${port}`)
}
