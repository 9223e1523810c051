import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BlobServiceClient, type PageBlobClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const ACCOUNT = 'devstoreaccount1'
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
const PAGE = 4 * 1024 * 1024
const CONCURRENCY = 4

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

async function pool(n: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < n; i = next++) await work(i)
  })
  await Promise.all(lanes)
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
}

async function measure(port: number, pid: number, total: number): Promise<Figures> {
  const service = new BlobServiceClient(
    `http://127.0.0.1:${port}/${ACCOUNT}`,
    new StorageSharedKeyCredential(ACCOUNT, KEY),
  )
  const container = service.getContainerClient(`bench${Date.now()}`)
  await container.create()
  const blob: PageBlobClient = container.getPageBlobClient('disk.vhd')
  await blob.create(total)
  const data = randomBytes(PAGE)
  const pages = total / PAGE
  const gib = total / 1024 ** 3
  let cpu = cpuSeconds(pid)
  let t = performance.now()
  await pool(pages, async (i) => {
    await blob.uploadPages(data, i * PAGE, PAGE)
  })
  const upload = total / 1024 / 1024 / ((performance.now() - t) / 1000)
  const uploadCpu = (cpuSeconds(pid) - cpu) / gib
  cpu = cpuSeconds(pid)
  t = performance.now()
  let read = 0
  await pool(pages, async (i) => {
    const r = await blob.download(i * PAGE, PAGE)
    for await (const chunk of r.readableStreamBody!) read += (chunk as Buffer).length
  })
  const download = total / 1024 / 1024 / ((performance.now() - t) / 1000)
  const downloadCpu = (cpuSeconds(pid) - cpu) / gib
  if (read !== total) throw new Error(`downloaded ${read} bytes of ${total}`)
  return { upload, download, uploadCpu, downloadCpu }
}

/** Upload and download MB/s of 4 MiB pages with the Azure SDK, Cairn against Azurite on this machine. */
export const blobapi: BenchScenario = {
  name: 'blobapi',
  description: 'Blob API: SDK upload/download MB/s of 4 MiB pages, Cairn vs Azurite (target >= 2x)',
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
        ctx.log(`${subject} ${dir}: ${v.toFixed(1)} MB/s, server CPU ${cpu.toFixed(2)} s/GiB`)
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
