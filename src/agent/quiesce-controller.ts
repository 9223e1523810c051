import { randomUUID } from 'node:crypto'
import { CairnError, type Logger, silentLogger } from '../util/index.js'
import { freezeAll, thawAll } from './_fsfreeze.js'
import { runScript } from './_run-script.js'
import type { AgentStatus, Consistency, QuiesceReport, StepReport, ThawReport } from './agent-protocol.js'
import { AGENT_PROTOCOL_VERSION } from './agent-protocol.js'
import { loadScriptConfig, type OwnershipRule, type ScriptConfig } from './script-config.js'

/** Options of a QuiesceController. */
export interface QuiesceControllerOptions {
  /** Path of the script configuration, re-read (and re-checked) at every quiesce. */
  configPath: string
  ownership?: OwnershipRule
  logger?: Logger
}

interface Session {
  id: string
  config: ScriptConfig
  pre: StepReport
  freeze: StepReport
  quiescedAt: number
  deadline: number
  watchdog: NodeJS.Timeout
  thawing?: Promise<ThawReport>
}

const NOT_EXECUTED: StepReport = { status: 'NotExecuted' }

/**
 * The guest side of a consistent backup: runs the pre-script (with retries), freezes file systems,
 * and later thaws them and runs the post-script — when told, or by itself once timeoutInSeconds pass,
 * so a guest is never left frozen. One session at a time.
 */
export class QuiesceController {
  readonly #options: QuiesceControllerOptions
  readonly #log: Logger
  #state: AgentStatus['state'] = 'idle'
  #session: Session | undefined
  #lastThaw: ThawReport | undefined

  constructor(options: QuiesceControllerOptions) {
    this.#options = options
    this.#log = options.logger ?? silentLogger
  }

  /** Loads the configuration once, so a bad one is reported at start-up. */
  async checkConfig(): Promise<ScriptConfig> {
    return loadScriptConfig(this.#options.configPath, this.#options.ownership)
  }

  status(): AgentStatus {
    const s: AgentStatus = {
      protocol: AGENT_PROTOCOL_VERSION,
      state: this.#state,
      frozenMountPoints: this.#session?.freeze.mountPoints ?? [],
    }
    if (this.#session) {
      s.sessionId = this.#session.id
      s.thawDeadline = new Date(this.#session.deadline).toISOString()
    }
    if (this.#lastThaw) s.lastThaw = this.#lastThaw
    return s
  }

  /** Prepares the guest for a snapshot; throws the reference's errors when it must not go on. */
  async quiesce(): Promise<QuiesceReport> {
    if (this.#state !== 'idle') {
      throw new CairnError(
        'AgentBusy',
        `Cannot quiesce: the agent is ${this.#state} (session ${this.#session?.id})`,
      )
    }
    this.#state = 'quiescing'
    try {
      return await this.#quiesce()
    } catch (err) {
      this.#state = 'idle'
      throw err
    }
  }

  async #quiesce(): Promise<QuiesceReport> {
    const config = await this.checkConfig()
    const timeoutMs = config.timeoutInSeconds * 1000
    const pre = config.preScriptLocation
      ? await runScript({
          path: config.preScriptLocation,
          params: config.preScriptParams,
          retries: config.preScriptNoOfRetries,
          timeoutMs,
        })
      : NOT_EXECUTED
    this.#log.info('pre-script done', { status: pre.status, attempts: pre.attempts })
    if (pre.status === 'Error' && !config.continueBackupOnFailure) {
      // Give the application back its normal state before failing.
      const post = await this.#runPost(config)
      throw new CairnError(
        pre.error === 'ScriptTimeout' ? 'ScriptTimeout' : 'PreScriptExecutionFailed',
        `Cannot quiesce the guest: the pre-script failed and continueBackupOnFailure is false (${pre.message}); ` +
          `post-script ${post.status}`,
        { details: { preScript: pre, postScript: post } },
      )
    }
    const freeze = config.fsFreezeEnabled
      ? await freezeAll(config.fsFreezeMountPoints, timeoutMs)
      : NOT_EXECUTED
    this.#log.info('freeze done', { status: freeze.status, mountPoints: freeze.mountPoints })
    if (freeze.status === 'Error' && !config.continueBackupOnFailure) {
      const post = config.preScriptLocation ? await this.#runPost(config) : NOT_EXECUTED
      throw new CairnError(
        'FsFreezeFailed',
        `Cannot quiesce the guest: ${freeze.message} and continueBackupOnFailure is false; post-script ${post.status}`,
        { details: { preScript: pre, freeze, postScript: post } },
      )
    }
    const now = Date.now()
    const id = randomUUID()
    const session: Session = {
      id,
      config,
      pre,
      freeze,
      quiescedAt: now,
      deadline: now + timeoutMs,
      watchdog: setTimeout(() => {
        this.#log.warn('watchdog: thawing the guest, the service did not', { sessionId: id })
        void this.#thaw(session, true)
      }, timeoutMs),
    }
    this.#session = session
    this.#state = 'quiesced'
    return {
      sessionId: id,
      consistency: consistencyOf(config, pre, freeze, NOT_EXECUTED),
      preScript: pre,
      freeze,
      quiescedAt: new Date(now).toISOString(),
      thawDeadline: new Date(session.deadline).toISOString(),
    }
  }

  /** Thaws the session's file systems and runs the post-script; answers the stored report if already done. */
  async thaw(sessionId: string): Promise<ThawReport> {
    const s = this.#session
    if (s?.id === sessionId) return this.#thaw(s, false)
    if (this.#lastThaw?.sessionId === sessionId) return this.#lastThaw
    throw new CairnError(
      'AgentSessionNotFound',
      `Cannot thaw: the agent has no quiesce session "${sessionId}"`,
    )
  }

  /** Thaws whatever is quiesced (used when the agent stops). */
  async close(): Promise<void> {
    if (this.#session) await this.#thaw(this.#session, true)
  }

  #thaw(s: Session, auto: boolean): Promise<ThawReport> {
    s.thawing ??= this.#doThaw(s, auto)
    return s.thawing
  }

  async #doThaw(s: Session, auto: boolean): Promise<ThawReport> {
    clearTimeout(s.watchdog)
    this.#state = 'thawing'
    const timeoutMs = s.config.timeoutInSeconds * 1000
    const thaw =
      s.freeze.status === 'Success' ? await thawAll(s.freeze.mountPoints ?? [], timeoutMs) : NOT_EXECUTED
    const post = await this.#runPost(s.config)
    const now = Date.now()
    const report: ThawReport = {
      sessionId: s.id,
      autoThawed: auto,
      thaw,
      postScript: post,
      consistency: auto ? 'CrashConsistent' : consistencyOf(s.config, s.pre, s.freeze, post),
      thawedAt: new Date(now).toISOString(),
      heldMs: now - s.quiescedAt,
    }
    if (post.status === 'Error' && !s.config.continueBackupOnFailure) {
      report.error = {
        code: post.error === 'ScriptTimeout' ? 'ScriptTimeout' : 'PostScriptExecutionFailed',
        message: `The post-script failed and continueBackupOnFailure is false: ${post.message}`,
      }
    }
    this.#log.info('thawed', { sessionId: s.id, auto, thaw: thaw.status, postScript: post.status })
    this.#lastThaw = report
    this.#session = undefined
    this.#state = 'idle'
    return report
  }

  async #runPost(config: ScriptConfig): Promise<StepReport> {
    if (!config.postScriptLocation) return NOT_EXECUTED
    return runScript({
      path: config.postScriptLocation,
      params: config.postScriptParams,
      retries: config.postScriptNoOfRetries,
      timeoutMs: config.timeoutInSeconds * 1000,
    })
  }
}

/**
 * Consistency as the reference defines it: application-consistent when the scripts succeeded,
 * file-system-consistent when only the freeze did (or scripts failed but the freeze held), else crash.
 */
function consistencyOf(
  config: ScriptConfig,
  pre: StepReport,
  freeze: StepReport,
  post: StepReport,
): Consistency {
  const hasScripts = config.preScriptLocation !== undefined || config.postScriptLocation !== undefined
  const scriptsOk = pre.status !== 'Error' && post.status !== 'Error'
  if (hasScripts && scriptsOk) return 'AppConsistent'
  if (freeze.status === 'Success') return 'FileSystemConsistent'
  return 'CrashConsistent'
}
