// The QEMU guest agent (qemu-guest-agent, QGA) as a VM's quiesce agent: JSON commands over the
// virtio-serial channel QEMU exposes as a unix socket on the host (`unix:PATH`), or through libvirt for
// a libvirt domain (`libvirt:DOMAIN`, _libvirt-qga.ts: libvirt keeps the socket). Each session opens the
// socket, resynchronizes with guest-sync-delimited (a 0xFF byte, then the answer carrying our id:
// whatever an earlier session left in the channel is skipped), runs its commands one at a time and
// closes. https://qemu-project.gitlab.io/qemu/interop/qemu-ga-ref.html
import { randomUUID } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { CairnError } from '../util/index.js'
import type { Consistency } from '../vault/index.js'
import { LIBVIRT_QGA_PREFIX, LibvirtQgaSession, type QgaChannel } from './_libvirt-qga.js'
import type { AgentQuiesce, AgentStep, AgentThaw, VmAgent } from './agent-client.js'

/** Where the pre- and post-scripts live in the guest: run through guest-exec when present. */
export const QGA_PRE_SCRIPT = '/etc/cairn/pre-freeze'
export const QGA_POST_SCRIPT = '/etc/cairn/post-thaw'

/** Options of a QgaAgent. */
export interface QgaAgentOptions {
  /** The channel: `unix:PATH` of the socket, or `libvirt:DOMAIN`. */
  channel: string
  /** Longest wait for the guest-sync answer (a guest without a running agent never answers). */
  syncTimeoutMs?: number
  /** Longest wait for one command (freeze, thaw). */
  commandTimeoutMs?: number
  /** Longest a script may run. */
  scriptTimeoutMs?: number
  /** Longest the guest stays frozen: past it the agent thaws by itself (the backup is crash-consistent). */
  holdLimitMs?: number
}

/** One connection to the guest agent: commands in, answers out, one at a time. */
export class QgaSession implements QgaChannel {
  readonly #socket: Socket
  readonly #channel: string
  #buf = Buffer.alloc(0)
  #synced = false
  #waiting: ((line: string | Error) => void) | undefined
  #closed: Error | undefined

  private constructor(socket: Socket, channel: string) {
    this.#socket = socket
    this.#channel = channel
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#pump()
    })
    const end = (err?: Error) => {
      this.#closed ??= err ?? new Error('the guest agent channel closed')
      this.#waiting?.(this.#closed)
      this.#waiting = undefined
    }
    socket.on('error', end)
    socket.on('close', () => end())
  }

  /**
   * Opens the channel and resynchronizes; AgentUnreachable when nothing answers in `timeoutMs`. A
   * `libvirt:DOMAIN` channel answers a session through libvirt instead.
   */
  static async open(channel: string, timeoutMs: number): Promise<QgaChannel> {
    if (channel.startsWith(LIBVIRT_QGA_PREFIX)) return LibvirtQgaSession.open(channel, timeoutMs)
    if (!channel.startsWith('unix:'))
      throw new CairnError(
        'AgentUnreachable',
        `Cannot use the guest agent channel "${channel}": not unix:PATH or libvirt:DOMAIN`,
      )
    const path = channel.slice(5)
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path)
      s.once('connect', () => resolve(s))
      s.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new CairnError(
            'AgentUnreachable',
            `Cannot reach the guest agent at ${channel}: ${err.code ?? err.message}`,
          ),
        ),
      )
    })
    const session = new QgaSession(socket, channel)
    try {
      const id = Math.floor(Math.random() * 2 ** 31)
      // The 0xFF makes the guest agent drop any half-read command; it then puts 0xFF before its answer.
      socket.write(Buffer.from([0xff]))
      const answer = await session.#send(
        { execute: 'guest-sync-delimited', arguments: { id } },
        timeoutMs,
        id,
      )
      if (answer !== id) throw new Error(`guest-sync answered ${JSON.stringify(answer)}, not ${id}`)
      return session
    } catch (err) {
      session.close()
      throw isAgentError(err)
        ? err
        : new CairnError(
            'AgentUnreachable',
            `Cannot reach the guest agent at ${channel}: ${(err as Error).message} (is qemu-guest-agent running in the guest?)`,
          )
    }
  }

  /** Runs a command; its `return`, or a CairnError with the agent's error class and text. */
  async execute(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    return this.#send({ execute: command, ...(args ? { arguments: args } : {}) }, timeoutMs)
  }

  close(): void {
    this.#socket.destroy()
  }

  async #send(message: unknown, timeoutMs: number, syncId?: number): Promise<unknown> {
    if (this.#closed) throw this.#closed
    this.#socket.write(`${JSON.stringify(message)}\n`)
    for (;;) {
      const line = await this.#next(timeoutMs)
      let parsed: { return?: unknown; error?: { class?: string; desc?: string } }
      try {
        parsed = JSON.parse(line) as typeof parsed
      } catch {
        continue // a fragment an earlier session left: resynchronizing skips it
      }
      if (syncId !== undefined && parsed.return !== syncId) continue
      if (parsed.error)
        throw new CairnError(
          'AgentUnreachable',
          `The guest agent at ${this.#channel} refused ${(message as { execute: string }).execute}: ${parsed.error.class}: ${parsed.error.desc}`,
          { details: { qgaClass: parsed.error.class } },
        )
      return parsed.return
    }
  }

  /** The next answer line (after the 0xFF delimiter of the sync, before it nothing counts). */
  #next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined
        reject(new Error(`no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#waiting = (line) => {
        clearTimeout(timer)
        if (line instanceof Error) reject(line)
        else resolve(line)
      }
      this.#pump()
    })
  }

  #pump(): void {
    if (!this.#waiting) return
    if (!this.#synced) {
      const at = this.#buf.indexOf(0xff)
      if (at === -1) {
        this.#buf = Buffer.alloc(0)
        return
      }
      this.#buf = this.#buf.subarray(at + 1)
      this.#synced = true
    }
    const nl = this.#buf.indexOf(0x0a)
    if (nl === -1) return
    const line = this.#buf.subarray(0, nl).toString('utf8').trim()
    this.#buf = this.#buf.subarray(nl + 1)
    if (line === '') {
      this.#pump()
      return
    }
    const w = this.#waiting
    this.#waiting = undefined
    w(line)
  }
}

const isAgentError = (err: unknown) => err instanceof CairnError

/** A frozen guest: its open session, what the point will be, the watchdog that thaws it at the limit. */
interface QgaHold {
  session: QgaChannel
  consistency: Consistency
  watchdog: NodeJS.Timeout
  frozenAt: number
  autoThawed?: Promise<AgentThaw>
}

/** A step that ran: its status and time. */
function step(started: number, status: AgentStep['status'], extra: Partial<AgentStep> = {}): AgentStep {
  return { status, durationMs: Math.round(performance.now() - started), ...extra }
}

/**
 * The QEMU guest agent as the quiesce agent of a backup: quiesce runs the pre-script
 * (`/etc/cairn/pre-freeze`, through guest-exec, when the guest has it) and freezes every file system
 * (guest-fsfreeze-freeze); thaw thaws (guest-fsfreeze-thaw) and runs the post-script. A guest left
 * frozen past `holdLimitMs` is thawed by this client itself, whatever the backup does.
 */
export class QgaAgent implements VmAgent {
  readonly #channel: string
  readonly #syncTimeoutMs: number
  readonly #commandTimeoutMs: number
  readonly #scriptTimeoutMs: number
  readonly #holdLimitMs: number
  readonly #sessions = new Map<string, QgaHold>()

  constructor(options: QgaAgentOptions) {
    this.#channel = options.channel
    this.#syncTimeoutMs = options.syncTimeoutMs ?? 10_000
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 60_000
    this.#scriptTimeoutMs = options.scriptTimeoutMs ?? 300_000
    this.#holdLimitMs = options.holdLimitMs ?? 60_000
  }

  async quiesce(signal?: AbortSignal): Promise<AgentQuiesce> {
    const session = await QgaSession.open(this.#channel, this.#syncTimeoutMs)
    const sessionId = randomUUID()
    try {
      signal?.throwIfAborted()
      const preScript = await this.#script(session, QGA_PRE_SCRIPT)
      let freeze: AgentStep
      const t = performance.now()
      try {
        const frozen = await session.execute('guest-fsfreeze-freeze', undefined, this.#commandTimeoutMs)
        freeze = step(t, 'Success', { message: `${frozen} file system(s) frozen` })
      } catch (err) {
        // A freeze that failed or timed out may have frozen some: thaw at once, go on crash-consistent.
        await session.execute('guest-fsfreeze-thaw', undefined, this.#commandTimeoutMs).catch(() => {})
        freeze = step(t, 'Error', { error: 'FreezeFailed', message: (err as Error).message })
      }
      const consistency: Consistency =
        freeze.status !== 'Success'
          ? 'CrashConsistent'
          : preScript.status === 'Success'
            ? 'AppConsistent'
            : 'FileSystemConsistent'
      const quiescedAt = new Date()
      const entry = {
        session,
        consistency,
        watchdog: setTimeout(() => {
          entry.autoThawed = this.#thaw(sessionId, true)
        }, this.#holdLimitMs),
        frozenAt: performance.now(),
      } as QgaHold
      entry.watchdog.unref()
      this.#sessions.set(sessionId, entry)
      return {
        sessionId,
        consistency,
        preScript,
        freeze,
        quiescedAt: quiescedAt.toISOString(),
        thawDeadline: new Date(quiescedAt.getTime() + this.#holdLimitMs).toISOString(),
      }
    } catch (err) {
      await session.execute('guest-fsfreeze-thaw', undefined, this.#commandTimeoutMs).catch(() => {})
      session.close()
      throw err
    }
  }

  async thaw(sessionId: string): Promise<AgentThaw> {
    const entry = this.#sessions.get(sessionId)
    if (entry?.autoThawed) {
      // The hold limit passed first: the guest was thawed then; this session ends now.
      const done = await entry.autoThawed
      this.#sessions.delete(sessionId)
      entry.session.close()
      return done
    }
    return this.#thaw(sessionId, false)
  }

  async #thaw(sessionId: string, auto: boolean): Promise<AgentThaw> {
    const entry = this.#sessions.get(sessionId)
    if (!entry)
      throw new CairnError(
        'AgentUnreachable',
        `The guest agent at ${this.#channel} has no session ${sessionId}`,
      )
    clearTimeout(entry.watchdog)
    const { session } = entry
    const t = performance.now()
    let thaw: AgentStep
    try {
      const thawed = await session.execute('guest-fsfreeze-thaw', undefined, this.#commandTimeoutMs)
      thaw = step(t, 'Success', { message: `${thawed} file system(s) thawed` })
    } catch (err) {
      thaw = step(t, 'Error', { error: 'ThawFailed', message: (err as Error).message })
    }
    const postScript = await this.#script(session, QGA_POST_SCRIPT)
    if (!auto) {
      this.#sessions.delete(sessionId)
      session.close()
    }
    const consistency: Consistency = auto || thaw.status !== 'Success' ? 'CrashConsistent' : entry.consistency
    return {
      sessionId,
      autoThawed: auto,
      thaw,
      postScript,
      consistency,
      thawedAt: new Date().toISOString(),
      heldMs: Math.round(performance.now() - entry.frozenAt),
    }
  }

  /** Runs a script of the guest through guest-exec; NotExecuted when the guest has none at `path`. */
  async #script(session: QgaChannel, path: string): Promise<AgentStep> {
    const t = performance.now()
    let pid: number
    try {
      const started = (await session.execute(
        'guest-exec',
        { path, 'capture-output': true },
        this.#commandTimeoutMs,
      )) as { pid: number }
      pid = started.pid
    } catch (err) {
      // guest-exec of a file that is not there fails to spawn: the guest has no such script.
      return step(t, 'NotExecuted', { message: `no ${path} in the guest (${(err as Error).message})` })
    }
    const deadline = Date.now() + this.#scriptTimeoutMs
    for (;;) {
      const status = (await session.execute('guest-exec-status', { pid }, this.#commandTimeoutMs)) as {
        exited: boolean
        exitcode?: number
        signal?: number
        'err-data'?: string
      }
      if (status.exited) {
        if (status.exitcode === 0) return step(t, 'Success', { attempts: 1 })
        const stderr = status['err-data']
          ? Buffer.from(status['err-data'], 'base64').toString('utf8').trim()
          : ''
        return step(t, 'Error', {
          attempts: 1,
          error: 'ScriptFailed',
          message: `${path} exited with ${status.exitcode ?? `signal ${status.signal}`}${stderr ? `: ${stderr.slice(0, 500)}` : ''}`,
        })
      }
      if (Date.now() > deadline)
        return step(t, 'Error', {
          error: 'ScriptTimeout',
          message: `${path} ran past ${this.#scriptTimeoutMs} ms`,
        })
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
