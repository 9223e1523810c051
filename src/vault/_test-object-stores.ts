// Real object-store servers for the tests: Azurite (Azure Blob) and s3rver (S3), each started once per
// test process as a child process on a free port with its data in a temporary folder. A child ends
// with the test process: it watches its stdin, which closes when the parent dies (even by kill -9),
// and the parent kills it on exit; the folder is removed then.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** Azurite's well-known development account. */
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
/** s3rver's default credentials (it checks the access key id, not the signature). */
export const S3RVER_KEY_ID = 'S3RVER'
export const S3RVER_SECRET = 'S3RVER'

/** A running object-store server. */
export interface TestObjectStore {
  /** `http://127.0.0.1:PORT` (Azurite's blob endpoint adds `/devstoreaccount1`). */
  endpoint: string
  port: number
  pid: number
  stop(): Promise<void>
}

const require = createRequire(import.meta.url)

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise((resolve) => srv.close(resolve))
  return port
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with status ${child.exitCode} before listening`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within 60 s`)
    await sleep(100)
  }
}

/** Starts `main` (a CommonJS entry point) as a child that ends when this process ends. */
async function startServer(
  what: string,
  main: string,
  args: (port: number, dir: string) => string[],
): Promise<TestObjectStore> {
  const dir = mkdtempSync(join(tmpdir(), `cairn-${what}-`))
  const port = await freePort()
  const boot = `process.stdin.on('end',()=>process.exit(0)).on('error',()=>process.exit(0)).resume();process.argv=[process.argv[0],${JSON.stringify(main)},...process.argv.slice(1)];require(${JSON.stringify(main)})`
  const child = spawn(process.execPath, ['-e', boot, '--', ...args(port, dir)], {
    stdio: ['pipe', 'ignore', 'inherit'],
  })
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  const cleanup = () => rmSync(dir, { recursive: true, force: true })
  process.once('exit', cleanup)
  try {
    await waitForPort(port, child, what)
  } catch (err) {
    kill()
    throw err
  }
  // Neither the child nor its pipe keeps the test process alive.
  child.unref()
  ;(child.stdin as unknown as { unref?: () => void } | null)?.unref?.()
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    async stop() {
      process.off('exit', kill)
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill()
        await exited
      }
      cleanup()
      process.off('exit', cleanup)
    },
  }
}

/** Starts Azurite's blob service (3.35, from node_modules). */
export function startAzurite(): Promise<TestObjectStore> {
  return startServer('azurite', require.resolve('azurite/dist/src/blob/main.js'), (port, dir) => [
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--location',
    dir,
    '--loose',
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
  ])
}

/** Starts s3rver (from node_modules). */
export function startS3rver(): Promise<TestObjectStore> {
  return startServer('s3rver', require.resolve('s3rver/bin/s3rver.js'), (port, dir) => [
    '--directory',
    dir,
    '--address',
    '127.0.0.1',
    '--port',
    String(port),
    '--silent',
  ])
}

let azurite: Promise<TestObjectStore> | undefined
let s3rver: Promise<TestObjectStore> | undefined

/** This process's Azurite, started on first use. */
export function sharedAzurite(): Promise<TestObjectStore> {
  azurite ??= startAzurite()
  return azurite
}

/** This process's s3rver, started on first use. */
export function sharedS3rver(): Promise<TestObjectStore> {
  s3rver ??= startS3rver()
  return s3rver
}

/** A fresh name for a container or bucket. */
export function storeName(): string {
  return `t${randomBytes(8).toString('hex')}`
}
