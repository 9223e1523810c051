import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CatalogDialect } from '../src/catalog/index.js'

/** Path of the cairn command (bin/cairn.js). */
export const CAIRN_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/cairn.js')

/** Admin tokens of the services the tests started, by API URL: cairn(), cairnAt() and apiFetch() send them. */
const adminTokens = new Map<string, string>()

/** The admin token of the service at `url` (signed in by startService or signIn), if any. */
export function tokenOf(url: string): string | undefined {
  const u = url.replace(/\/+$/, '')
  for (const [base, token] of adminTokens) if (u === base || u.startsWith(`${base}/`)) return token
  return undefined
}

/**
 * Signs in as `admin` to the service at `url` whose data folder is `data` (its password from
 * DATA/initial-admin-password, or `password`), remembers the token for later calls and answers it.
 */
export async function signIn(url: string, data: string, password?: string): Promise<string> {
  const pw = password ?? readFileSync(join(data, 'initial-admin-password'), 'utf8').trim()
  const res = await postJson(`${url}/api/v1/auth/login`, { user: 'admin', password: pw })
  if (res.status !== 200) throw new Error(`cannot sign in to ${url}: ${res.status} ${res.text}`)
  const { token } = JSON.parse(res.text) as { token: string }
  adminTokens.set(url.replace(/\/+$/, ''), token)
  return token
}

/** POSTs JSON over http or https (a test service's own certificate is not checked: it is ours). */
function postJson(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const payload = JSON.stringify(body)
  const send = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        ...(url.startsWith('https:') ? { rejectUnauthorized: false } : {}),
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          text += d
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

/** `{ authorization: 'Bearer …' }` for the admin of the service at `url` (empty when unknown). */
export function authHeaders(url: string): Record<string, string> {
  const token = tokenOf(url)
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}

/** fetch() that sends the admin token of a test service when the URL is one of theirs. */
export function apiFetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
  const token = tokenOf(String(input))
  if (token === undefined) return fetch(input, init)
  const headers = new Headers(init.headers)
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`)
  return fetch(input, { ...init, headers })
}

/** The environment that gives a CLI call the admin token of the service its `--url` names. */
function tokenEnv(args: string[], url?: string, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  let target = url ?? env.CAIRN_URL
  for (let i = 0; target === undefined && i < args.length; i++) {
    if (args[i] === '--url') target = args[i + 1]
    else if (args[i]!.startsWith('--url=')) target = args[i]!.slice('--url='.length)
  }
  const token = target === undefined ? undefined : tokenOf(target)
  return token === undefined ? {} : { CAIRN_TOKEN: token }
}

/** A `cairn serve` child process on a temporary data folder and free ports. */
export interface RunningService {
  child: ChildProcess
  data: string
  /** Listener URLs from the start-up log line, e.g. { api: 'http://127.0.0.1:41234' }. */
  listeners: Record<string, string>
  url: string
  /** A token of the user admin (also sent by cairn(), cairnAt() and apiFetch() to this service). */
  token: string
  logs: string[]
  /** Sends SIGTERM and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  /** Stops (if running) and removes the data folder. */
  dispose(): Promise<void>
}

/**
 * Starts `cairn serve --port 0 ...`, waits for its "cairn started" log line and signs in as admin (the
 * generated password of the first start, or the one of `--admin-password-file`); `options.signIn:
 * false` skips the sign-in.
 */
export async function startService(
  extraArgs: string[] = [],
  options: { data?: string; signIn?: boolean; catalog?: CatalogDialect; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningService> {
  const data = options.data ?? mkdtempSync(join(tmpdir(), 'cairn-e2e-'))
  const ownsData = options.data === undefined
  // The catalog of a dialect belongs to the data folder: a restart on the same folder finds it again.
  const catalogArgs = options.catalog ? ['--catalog', options.catalog.url(data)] : []
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
    ...catalogArgs,
    ...extraArgs,
  ]
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  })
  const logs: string[] = []
  let exited: Promise<number | null> = new Promise((r) => child.once('exit', (code) => r(code)))
  const starting = new Promise<Record<string, string>>((resolveStart, reject) => {
    let buf = ''
    const timer = setTimeout(
      () => {
        // A service that never said it started must not outlive the test that gave up on it.
        child.kill('SIGKILL')
        reject(new Error(`cairn serve did not start:\n${logs.join('\n')}`))
      },
      // Loose: it proves the start did not hang; a shared machine under load takes seconds to boot node.
      60_000,
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
  const listeners = await starting.catch(async (err) => {
    await exited
    if (ownsData) rmSync(data, { recursive: true, force: true })
    throw err
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    child.kill(signal)
    return exited
  }
  exited = exited.then((c) => c)
  const url = listeners.api!
  let token = ''
  if (options.signIn !== false) {
    const fileArg = extraArgs.indexOf('--admin-password-file')
    const password =
      fileArg === -1 ? undefined : readFileSync(extraArgs[fileArg + 1]!, 'utf8').split(/\r?\n/)[0]
    try {
      token = await signIn(url, data, password)
    } catch (err) {
      await stop('SIGKILL')
      throw err
    }
  }
  return {
    child,
    data,
    listeners,
    url,
    token,
    logs,
    stop,
    async dispose() {
      await stop()
      adminTokens.delete(url)
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
    env: { ...process.env, ...tokenEnv(args, undefined, env), ...env },
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
      env: { ...process.env, ...tokenEnv(args, url, options.env), ...options.env },
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
