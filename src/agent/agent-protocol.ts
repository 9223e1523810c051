// The agent's wire protocol (JSON over HTTP, see docs/agent.md). The service's AgentClient in
// src/protection keeps its own copy of these shapes: protection and agent sit on one layer and may not
// import each other. Consistency is the vault's, the one definition below both.

import type { Consistency } from '../vault/index.js'

export type { Consistency }

/** Protocol version, answered by GET /v1/status. */
export const AGENT_PROTOCOL_VERSION = 1

/** Outcome of one step, after the reference's operation reports. */
export type StepStatus = 'Success' | 'Error' | 'NotExecuted'

/** What one step (a script or the freeze/thaw of file systems) did. */
export interface StepReport {
  status: StepStatus
  attempts?: number
  durationMs?: number
  /** Mount points acted on (freeze and thaw steps). */
  mountPoints?: string[]
  /** ScriptFailed, ScriptTimeout, FsFreezeFailed, … when status is Error. */
  error?: string
  message?: string
}

/** Answer to POST /v1/quiesce: the guest is ready for the snapshot. */
export interface QuiesceReport {
  sessionId: string
  /** What the snapshot will be if taken now and the thaw goes well. */
  consistency: Consistency
  preScript: StepReport
  freeze: StepReport
  quiescedAt: string
  /** When the watchdog thaws the guest by itself. */
  thawDeadline: string
}

/** Answer to POST /v1/thaw (also kept for a session the watchdog thawed). */
export interface ThawReport {
  sessionId: string
  /** True when the watchdog thawed before the service asked: the snapshot may be crash-consistent only. */
  autoThawed: boolean
  thaw: StepReport
  postScript: StepReport
  /** Final consistency of a snapshot taken while quiesced. */
  consistency: Consistency
  thawedAt: string
  /** How long the guest stayed quiesced. */
  heldMs: number
  /** Set when the backup must fail (the post-script failed and continueBackupOnFailure is false). */
  error?: { code: string; message: string }
}

/** Answer to GET /v1/status. */
export interface AgentStatus {
  protocol: number
  state: 'idle' | 'quiescing' | 'quiesced' | 'thawing'
  sessionId?: string
  thawDeadline?: string
  frozenMountPoints: string[]
  lastThaw?: ThawReport
}

/** Body of every error answer. */
export interface AgentErrorBody {
  error: { code: string; message: string }
}
