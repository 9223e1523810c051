import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import type { BenchResult, BenchScenario } from '../bench-types.js'
import type { ClientThreadData } from './_blobapi-client.js'

const ACCOUNT = 'devstoreaccount1'
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
const PAGE = 4 * 1024 * 1024
/**
 * The client: the official SDK on this many threads, each with REQUESTS_PER_THREAD requests in flight, the
 * same for Cairn and Azurite. One SDK thread spends 3 to 4 CPU seconds per GiB receiving a download (the
 * HTTP parser copies every 64 KiB the socket gives, and the garbage of those copies keeps the collector
 * busy): alone it caps downloads near 250 MB/s whatever the server, and the benchmark would measure the
 * SDK. Real clients spread over cores and keep many requests in flight (AzCopy: 32 or more; the SDK's own
 * upload and download helpers: 5 per call), which also hides the fdatasync behind every Put Page.
 */
const CLIENT_THREADS = 2
const REQUESTS_PER_THREAD = 4

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Starts a child and resolves once `ready(stdout so far)` returns a port. */
function startChild(
  cmd: string,
  args: string[],
  ready: (out: string) => number | undefined,
): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${err.slice(-500)}`)), 30_000)
    child.stdout!.on('data', (d) => {
      out += d
      const port = ready(out)
      if (port !== undefined) {
        clearTimeout(timer)
        resolve({ child, port })
      }
    })
    child.stderr!.on('data', (d) => {
      err += d
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`))
    })
  })
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

interface Figures {
  upload: number
  download: number
  /** Server CPU seconds per GiB moved. */
  uploadCpu: number
  downloadCpu: number
  /** The SDK client's CPU seconds per GiB moved (this process: its client threads). */
  uploadClientCpu: number
  downloadClientCpu: number
}

/** CPU seconds (user + system) of this process, all threads. */
const ownCpu = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** Starts the client threads on one blob and resolves once each has its SDK client ready. */
async function startClients(
  job: Omit<ClientThreadData, 'thread' | 'threads' | 'inFlight'>,
): Promise<Worker[]> {
  const script = fileURLToPath(new URL('./_blobapi-client.js', import.meta.url))
  const workers = Array.from({ length: CLIENT_THREADS }, (_, thread) => {
    const workerData: ClientThreadData = {
      ...job,
      thread,
      threads: CLIENT_THREADS,
      inFlight: REQUESTS_PER_THREAD,
    }
    return new Worker(script, { workerData })
  })
  await Promise.all(workers.map((w) => reply(w)))
  return workers
}

/** The next message of a client thread; rejects when it reports an error or dies. */
function reply(w: Worker): Promise<{ bytes?: number }> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { bytes?: number; error?: string }) => {
      w.off('error', reject)
      if (m.error !== undefined) reject(new Error(`a client thread failed: ${m.error}`))
      else resolve(m)
    }
    w.once('message', onMessage)
    w.once('error', reject)
  })
}

/** Runs one phase on every client thread at once; resolves with the bytes moved. */
async function phase(workers: Worker[], name: 'upload' | 'download'): Promise<number> {
  const replies = workers.map((w) => reply(w))
  for (const w of workers) w.postMessage(name)
  const done = await Promise.all(replies)
  return done.reduce((sum, m) => sum + (m.bytes ?? 0), 0)
}

async function measure(port: number, pid: number, total: number): Promise<Figures> {
  const url = `http://127.0.0.1:${port}/${ACCOUNT}`
  const service = new BlobServiceClient(url, new StorageSharedKeyCredential(ACCOUNT, KEY))
  const container = `bench${Date.now()}`
  await service.getContainerClient(container).create()
  await service.getContainerClient(container).getPageBlobClient('disk.vhd').create(total)
  const workers = await startClients({
    url,
    account: ACCOUNT,
    key: KEY,
    container,
    blob: 'disk.vhd',
    pageSize: PAGE,
    pages: total / PAGE,
  })
  try {
    const gib = total / 1024 ** 3
    let cpu = cpuSeconds(pid)
    let client = ownCpu()
    let t = performance.now()
    const written = await phase(workers, 'upload')
    const upload = total / 1024 / 1024 / ((performance.now() - t) / 1000)
    const uploadCpu = (cpuSeconds(pid) - cpu) / gib
    const uploadClientCpu = (ownCpu() - client) / gib
    cpu = cpuSeconds(pid)
    client = ownCpu()
    t = performance.now()
    const read = await phase(workers, 'download')
    const download = total / 1024 / 1024 / ((performance.now() - t) / 1000)
    const downloadCpu = (cpuSeconds(pid) - cpu) / gib
    const downloadClientCpu = (ownCpu() - client) / gib
    if (written !== total) throw new Error(`uploaded ${written} bytes of ${total}`)
    if (read !== total) throw new Error(`downloaded ${read} bytes of ${total}`)
    return { upload, download, uploadCpu, downloadCpu, uploadClientCpu, downloadClientCpu }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

/** Upload and download MB/s of 4 MiB pages with the Azure SDK, Cairn against Azurite on this machine. */
export const blobapi: BenchScenario = {
  name: 'blobapi',
  description: `Blob API: SDK upload/download MB/s of 4 MiB pages, ${CLIENT_THREADS}x${REQUESTS_PER_THREAD} in flight, Cairn vs Azurite (target >= 2x)`,
  async run(ctx) {
    const total = (ctx.quick ? 64 : 512) * 1024 * 1024
    const childScript = fileURLToPath(new URL('./_blobapi-child.js', import.meta.url))
    const azuriteMain = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js')
    const cairnDir = join(ctx.dir, 'cairn')
    const azuriteDir = join(ctx.dir, 'azurite')
    mkdirSync(azuriteDir, { recursive: true })
    const figures: Record<string, Figures> = {}

    const cairn = await startChild(process.execPath, [childScript, cairnDir], (out) =>
      /^(\d+)\n/.test(out) ? Number(out.split('\n')[0]) : undefined,
    )
    try {
      figures.cairn = await measure(cairn.port, cairn.child.pid!, total)
    } finally {
      const exited = new Promise((resolve) => cairn.child.once('exit', resolve))
      cairn.child.stdin!.end()
      await exited
    }
    const azPort = await freePort()
    const azurite = await startChild(
      process.execPath,
      [
        azuriteMain,
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(azPort),
        '--location',
        azuriteDir,
        '--loose',
        '--skipApiVersionCheck',
        '--disableTelemetry',
      ],
      (out) => (out.includes('successfully listens') ? azPort : undefined),
    )
    try {
      figures.azurite = await measure(azPort, azurite.child.pid!, total)
    } finally {
      const exited = new Promise((resolve) => azurite.child.once('exit', resolve))
      azurite.child.kill()
      await exited
    }

    const results: BenchResult[] = []
    for (const dir of ['upload', 'download'] as const) {
      for (const subject of ['cairn', 'azurite']) {
        const f = figures[subject]!
        const v = f[dir]
        const cpu = dir === 'upload' ? f.uploadCpu : f.downloadCpu
        const clientCpu = dir === 'upload' ? f.uploadClientCpu : f.downloadClientCpu
        ctx.log(
          `${subject} ${dir}: ${v.toFixed(1)} MB/s, server CPU ${cpu.toFixed(2)} s/GiB, client CPU ${clientCpu.toFixed(2)} s/GiB`,
        )
        results.push(
          {
            scenario: 'blobapi',
            subject,
            metric: `${dir} MB/s`,
            value: Math.round(v * 10) / 10,
            unit: 'MB/s',
          },
          {
            scenario: 'blobapi',
            subject,
            metric: `${dir} server CPU`,
            value: Math.round(cpu * 100) / 100,
            unit: 's/GiB',
          },
          {
            scenario: 'blobapi',
            subject,
            metric: `${dir} client CPU (SDK, same cores)`,
            value: Math.round(clientCpu * 100) / 100,
            unit: 's/GiB',
          },
        )
      }
      const ratio = figures.cairn![dir] / figures.azurite![dir]
      results.push({
        scenario: 'blobapi',
        subject: 'cairn',
        metric: `${dir} vs azurite`,
        value: Math.round(ratio * 100) / 100,
        unit: 'x',
        target: '>= 2x azurite',
        pass: ratio >= 2,
      })
    }
    return results
  },
}
