import { CairnError, isErrorCode } from '../util/index.js'
import type { Consistency } from '../vault/index.js'

// The service's side of the agent protocol (docs/agent.md). These shapes mirror src/agent's
// agent-protocol.ts: protection and agent share a layer and may not import each other. Consistency is
// the vault's (one definition, below both).

/** What one agent step did. */
export interface AgentStep {
  status: 'Success' | 'Error' | 'NotExecuted'
  attempts?: number
  durationMs?: number
  mountPoints?: string[]
  error?: string
  message?: string
}

/** The agent's answer to a quiesce. */
export interface AgentQuiesce {
  sessionId: string
  consistency: Consistency
  preScript: AgentStep
  freeze: AgentStep
  quiescedAt: string
  thawDeadline: string
}

/** The agent's answer to a thaw. */
export interface AgentThaw {
  sessionId: string
  autoThawed: boolean
  thaw: AgentStep
  postScript: AgentStep
  consistency: Consistency
  thawedAt: string
  heldMs: number
  error?: { code: string; message: string }
}

/** The agent's status. */
export interface AgentStatusReport {
  protocol: number
  state: 'idle' | 'quiescing' | 'quiesced' | 'thawing'
  sessionId?: string
  thawDeadline?: string
  frozenMountPoints: string[]
}

/** Options of an AgentClient. */
export interface AgentClientOptions {
  url: string
  token: string
  /** Longest wait for an answer (quiesce runs scripts: allow their timeout). Default 30 min + 30 s. */
  timeoutMs?: number
}

/**
 * Talks to a VM's agent over HTTP/JSON. Agent errors come back as CairnErrors with the agent's code
 * (PreScriptExecutionFailed, ScriptTimeout, …); a connection failure or a nonsense answer is
 * AgentUnreachable, which a backup treats as "go on crash-consistent".
 */
export class AgentClient {
  readonly #url: string
  readonly #token: string
  readonly #timeoutMs: number

  constructor(options: AgentClientOptions) {
    this.#url = options.url.replace(/\/+$/, '')
    this.#token = options.token
    this.#timeoutMs = options.timeoutMs ?? 1_830_000
  }

  status(signal?: AbortSignal): Promise<AgentStatusReport> {
    return this.#call('GET', '/v1/status', undefined, signal)
  }

  quiesce(signal?: AbortSignal): Promise<AgentQuiesce> {
    return this.#call('POST', '/v1/quiesce', {}, signal)
  }

  thaw(sessionId: string, signal?: AbortSignal): Promise<AgentThaw> {
    return this.#call('POST', '/v1/thaw', { sessionId }, signal)
  }

  async #call<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout
    let res: Response
    try {
      res = await fetch(`${this.#url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: combined,
      })
    } catch (err) {
      if (signal?.aborted)
        throw new CairnError('Cancelled', `Cannot reach the agent at ${this.#url}: cancelled`)
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message
      throw new CairnError('AgentUnreachable', `Cannot reach the agent at ${this.#url}: ${cause}`, {
        cause: err,
      })
    }
    let parsed: unknown
    try {
      parsed = await res.json()
    } catch (err) {
      throw new CairnError(
        'AgentUnreachable',
        `Cannot use the agent at ${this.#url}: it answered ${res.status} without JSON`,
        {
          cause: err,
        },
      )
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: unknown; message?: unknown } }).error
      const code = isErrorCode(e?.code) ? e.code : 'AgentUnreachable'
      const message = typeof e?.message === 'string' ? e.message : `the agent answered ${res.status}`
      throw new CairnError(code, `Agent at ${this.#url}: ${message}`)
    }
    return parsed as T
  }
}

/** What a backup asks of a VM's agent. */
export type VmAgent = Pick<AgentClient, 'quiesce' | 'thaw'>

/** Makes the client of a VM's agent from its registration (the ProtectionService's `agentFor`). */
export type AgentFor = (agent: { url: string; token: string }) => VmAgent
