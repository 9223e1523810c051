import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { apiFetch, CAIRN_BIN, tokenOf } from './_service.js'

// Helpers of the job tests: JSON calls, disks of random bytes, waiting for a job.

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes
export type Json = any

/** The disks folder of the development account. */
export const D = '/api/v1/accounts/devstoreaccount1/containers/disks/disks'

const MiB = 1024 * 1024

/**
 * fetch, retried when a kept-alive socket was closed: a test that runs the CLI synchronously blocks the
 * event loop past the server's keep-alive timeout, so the client cannot notice the close in time, and
 * every socket left idle in the pool is then stale (a CI run saw the one retry meet a second one): each
 * failed attempt drops one, so at most as many retries as the pool kept sockets. A GET is also retried
 * after ECONNRESET: the server reset a socket it had just closed as idle (a loaded machine; the
 * 3-worker fleet test's poll saw it), and a GET may be sent twice.
 */
export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await apiFetch(url, init)
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code
      const get = (init.method ?? 'GET').toUpperCase() === 'GET'
      if (attempt >= 8 || (code !== 'UND_ERR_SOCKET' && !(get && code === 'ECONNRESET'))) throw err
    }
  }
}

/** One JSON call of the management API. */
export async function api(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const init: RequestInit = { method }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers = { 'content-type': 'application/json' }
  }
  const res = await request(`${url}${path}`, init)
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

/** Creates (or overwrites) a disk of `mib` MiB of random bytes through the pages API. */
export async function randomDisk(url: string, name: string, mib: number): Promise<void> {
  const made = await api(url, 'PUT', `${D}/${name}`, { size: `${mib}MiB` })
  assert.ok(made.status === 201 || made.status === 409, JSON.stringify(made.body))
  for (let o = 0; o < mib * MiB; o += 4 * MiB) {
    const res = await apiFetch(`${url}${D}/${name}/pages?offset=${o}`, {
      method: 'PUT',
      body: randomBytes(4 * MiB),
      headers: { 'content-type': 'application/octet-stream' },
    })
    assert.equal(res.status, 200, await res.text())
  }
}

/** Polls a job until `until` holds; fails when the job ends first (unless that is what is awaited). */
export async function waitJob(
  url: string,
  id: string,
  until: (j: Json) => boolean,
  what: string,
  ms = 120_000,
): Promise<Json> {
  const deadline = Date.now() + ms
  for (;;) {
    const { body: job } = await api(url, 'GET', `/api/v1/jobs/${id}`)
    if (until(job)) return job
    assert.ok(!job.endedAt, `job ${id} ended before ${what}: ${JSON.stringify(job)}`)
    assert.ok(Date.now() < deadline, `job ${id} never reached ${what}: ${JSON.stringify(job)}`)
    await new Promise((r) => setTimeout(r, 15))
  }
}

/** Waits (at most `ms`, default 2 minutes) until a job has ended and answers it. */
export const ended = (url: string, id: string, ms?: number) =>
  waitJob(url, id, (j) => Boolean(j.endedAt), 'its end', ms)

/** A running `cairn` command whose output is collected. */
export interface CliRun {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exit: Promise<number>
  /** Resolves once stderr matches. */
  stderrMatches(re: RegExp): Promise<void>
}

/** Starts the cairn CLI against a service. */
export function cli(url: string, ...args: string[]): CliRun {
  const token = tokenOf(url)
  const child = spawn(process.execPath, [CAIRN_BIN, ...args, '--url', url], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(token !== undefined ? { CAIRN_TOKEN: token } : {}) },
  })
  let out = ''
  let err = ''
  const waiters: { re: RegExp; resolve: () => void }[] = []
  child.stdout!.on('data', (d) => {
    out += d
  })
  child.stderr!.on('data', (d) => {
    err += d
    for (const w of waiters.splice(0)) {
      if (w.re.test(err)) w.resolve()
      else waiters.push(w)
    }
  })
  const exit = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)))
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    stderrMatches: (re) =>
      re.test(err)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ re, resolve })),
            exit.then((code) => {
              throw new Error(`cairn exited ${code} before printing ${re}: ${err}`)
            }),
          ]),
  }
}
