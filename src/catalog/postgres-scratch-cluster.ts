import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { accessSync, chownSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Where Debian's PostgreSQL 15 keeps initdb, pg_ctl and postgres (it puts none of them on PATH). */
export const POSTGRES_BIN = process.env.CAIRN_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin'

/**
 * Names a running cluster (`PORT:USER:FOLDER`, PostgresScratchCluster.shared) that sharedScratchCluster
 * uses instead of starting its own: the test runner starts one for every test file it runs.
 */
export const SHARED_CLUSTER_ENV = 'CAIRN_TEST_POSTGRES'

/** The user a cluster runs as when Cairn's tests run as root (PostgreSQL refuses to run as root). */
const UNPRIVILEGED_USER = 'nobody'

/**
 * A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` in a temporary folder, `pg_ctl start`
 * on a free port (and a unix socket in that folder), trust authentication on 127.0.0.1 only, fsync off.
 * As root it runs as `nobody` through `runuser`. Everything is synchronous so that a test list built at
 * import time (CATALOG_DIALECTS) can use it; `stop()` stops the server and removes the folder.
 */
export class PostgresScratchCluster {
  readonly dir: string
  readonly port: number
  readonly user: string
  readonly #asRoot: boolean
  readonly #databases = new Set<string>()
  #running = false
  /** False for a cluster another process started (attach): stop() leaves it alone. */
  readonly #owned: boolean

  private constructor(dir: string, port: number, user: string, asRoot: boolean, owned = true) {
    this.dir = dir
    this.port = port
    this.user = user
    this.#asRoot = asRoot
    this.#owned = owned
  }

  /** What another process passes to attach (through SHARED_CLUSTER_ENV) to use this cluster. */
  get shared(): string {
    return `${this.port}:${this.user}:${this.dir}`
  }

  /** A cluster another process started and stops (`shared` of it); databases are made as in one's own. */
  static attach(shared: string): PostgresScratchCluster {
    const m = /^(\d+):([^:]+):(.+)$/.exec(shared)
    if (!m)
      throw new Error(`Cannot use the scratch PostgreSQL cluster "${shared}": expected PORT:USER:FOLDER`)
    return new PostgresScratchCluster(m[3]!, Number(m[1]), m[2]!, isRoot(), false)
  }

  /**
   * Why a cluster cannot be started here, or undefined when it can. Missing binaries are a reason to skip
   * only for an unprivileged user: as root the test command's preflight installs them, so there their
   * absence makes `start()` fail with the reason instead.
   */
  static unavailable(): string | undefined {
    if (isRoot()) return undefined
    try {
      accessSync(join(POSTGRES_BIN, 'initdb'), constants.X_OK)
      accessSync(join(POSTGRES_BIN, 'pg_ctl'), constants.X_OK)
      return undefined
    } catch {
      return `PostgreSQL 15 is not installed (no ${POSTGRES_BIN}/initdb; apt-get install postgresql) and the tests do not run as root`
    }
  }

  /** Creates and starts a new cluster on a free port; the caller must `stop()` it. */
  static start(): PostgresScratchCluster {
    const asRoot = isRoot()
    const user = asRoot ? UNPRIVILEGED_USER : (process.env.USER ?? 'postgres')
    const dir = mkdtempSync(join(tmpdir(), 'cairn-pg-'))
    const port = freePort()
    const cluster = new PostgresScratchCluster(dir, port, user, asRoot)
    try {
      if (asRoot) chownSync(dir, 65534, 65534)
      cluster.#run('initdb', [
        '-D',
        cluster.#data,
        '-U',
        user,
        '-A',
        'trust',
        '-E',
        'UTF8',
        '--locale=C',
        '-N',
      ])
      const options = [
        `-p ${port}`,
        "-c listen_addresses='127.0.0.1'",
        `-c unix_socket_directories='${dir}'`,
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=200',
      ].join(' ')
      cluster.#run('pg_ctl', [
        '-D',
        cluster.#data,
        '-o',
        options,
        '-l',
        join(cluster.#data, 'log'),
        '-w',
        'start',
      ])
      cluster.#running = true
      return cluster
    } catch (err) {
      cluster.stop()
      throw err
    }
  }

  /** The URL of database `name` in this cluster, created on first use. */
  url(name: string): string {
    if (!this.#databases.has(name)) {
      this.#run('createdb', ['-h', this.dir, '-p', String(this.port), '-U', this.user, name])
      this.#databases.add(name)
    }
    return `postgres://${this.user}@127.0.0.1:${this.port}/${name}`
  }

  /** The database name for a test folder: the same folder always gives the same database. */
  static databaseFor(dir: string): string {
    return `cairn_${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`
  }

  /** Stops the server at once and removes its folder; safe to call twice. */
  stop(): void {
    if (!this.#owned) return
    if (this.#running) {
      this.#running = false
      try {
        this.#run('pg_ctl', ['-D', this.#data, '-m', 'immediate', '-w', 'stop'])
      } catch {
        // A server that is already gone leaves only its folder to remove.
      }
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  get #data(): string {
    return join(this.dir, 'data')
  }

  #run(tool: string, args: string[]): void {
    const bin = join(POSTGRES_BIN, tool)
    const [command, argv] = this.#asRoot ? ['runuser', ['-u', this.user, '--', bin, ...args]] : [bin, args]
    try {
      execFileSync(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir, timeout: 120_000 })
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string }
      throw new Error(
        `Cannot run ${tool} for the scratch PostgreSQL cluster: ${e.stderr?.toString().trim() || e.message}`,
      )
    }
  }
}

let shared: PostgresScratchCluster | undefined

/**
 * One cluster per process, started on first use and stopped when the process exits; or the one that
 * SHARED_CLUSTER_ENV names (the test runner's, shared by every test file it starts).
 */
export function sharedScratchCluster(): PostgresScratchCluster {
  const given = process.env[SHARED_CLUSTER_ENV]
  if (!shared && given) shared = PostgresScratchCluster.attach(given)
  if (!shared) {
    const cluster = PostgresScratchCluster.start()
    shared = cluster
    process.once('exit', () => cluster.stop())
  }
  return shared
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/** A TCP port nothing listens on now (asked of the kernel through a short-lived child process). */
function freePort(): number {
  const script =
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"
  return Number(execFileSync(process.execPath, ['-e', script]).toString())
}
