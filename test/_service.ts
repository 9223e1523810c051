import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Path of the cairn command (bin/cairn.js). */
export const CAIRN_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/cairn.js')

/** A `cairn serve` child process on a temporary data folder and free ports. */
export interface RunningService {
  child: ChildProcess
  data: string
  /** Listener URLs from the start-up log line, e.g. { api: 'http://127.0.0.1:41234' }. */
  listeners: Record<string, string>
  url: string
  logs: string[]
  /** Sends SIGTERM and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  /** Stops (if running) and removes the data folder. */
  dispose(): Promise<void>
}

/** Starts `cairn serve --port 0 ...` and waits for its "cairn started" log line. */
export async function startService(
  extraArgs: string[] = [],
  options: { data?: string } = {},
): Promise<RunningService> {
  const data = options.data ?? mkdtempSync(join(tmpdir(), 'cairn-e2e-'))
  const ownsData = options.data === undefined
  const args = [
    CAIRN_BIN,
    'serve',
    '--data',
    data,
    '--port',
    '0',
    '--blob-port',
    '0',
    '--nbd-port',
    '0',
    '--log-format',
    'json',
    ...extraArgs,
  ]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  let exited: Promise<number | null> = new Promise((r) => child.once('exit', (code) => r(code)))
  const listeners = await new Promise<Record<string, string>>((resolveStart, reject) => {
    let buf = ''
    const timer = setTimeout(
      () => reject(new Error(`cairn serve did not start:\n${logs.join('\n')}`)),
      20_000,
    )
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString()
      let nl = buf.indexOf('\n')
      while (nl !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        logs.push(line)
        try {
          const rec = JSON.parse(line) as Record<string, string>
          if (rec.msg === 'cairn started') {
            clearTimeout(timer)
            const { time: _t, level: _l, msg: _m, version: _v, data: _d, ...rest } = rec
            resolveStart(rest)
          }
        } catch {}
        nl = buf.indexOf('\n')
      }
    })
    exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`cairn serve exited with ${code}:\n${logs.join('\n')}`))
    })
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    child.kill(signal)
    return exited
  }
  exited = exited.then((c) => c)
  return {
    child,
    data,
    listeners,
    url: listeners.api!,
    logs,
    stop,
    async dispose() {
      await stop()
      if (ownsData) rmSync(data, { recursive: true, force: true })
    },
  }
}

/** Runs the cairn command synchronously; returns status, stdout and stderr. */
export function cairn(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CAIRN_BIN, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Runs `cairn ARGS --url URL [--json]` as a child process without blocking the event loop. */
export function cairnAt(
  url: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; json?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const flags = options.json === false ? ['--url', url] : ['--url', url, '--json']
    const p = spawn(process.execPath, [CAIRN_BIN, ...args, ...flags], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => {
      stdout += d
    })
    p.stderr.on('data', (d) => {
      stderr += d
    })
    p.on('error', reject)
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
  })
}
