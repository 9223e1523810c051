// The Cairn agent: runs next to or inside a VM and quiesces it for consistent snapshots (pre-script,
// fsfreeze, thaw, post-script) on the service's request, over token-authenticated HTTP/JSON.
export {
  AGENT_PROTOCOL_VERSION,
  type AgentErrorBody,
  type AgentStatus,
  type Consistency,
  type QuiesceReport,
  type StepReport,
  type StepStatus,
  type ThawReport,
} from './agent-protocol.js'
export { AgentServer, type AgentServerOptions } from './agent-server.js'
export { QuiesceController, type QuiesceControllerOptions } from './quiesce-controller.js'
export {
  checkScript,
  loadScriptConfig,
  MAX_SCRIPT_TIMEOUT_SECONDS,
  type OwnershipRule,
  parseScriptConfig,
  type ScriptConfig,
} from './script-config.js'
