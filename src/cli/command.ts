import type { ApiClient } from './api-client.js'
import type { Output } from './output.js'

/** One option of a command. `size` accepts 1GiB-style sizes; `list` may repeat. */
export interface OptionDef {
  name: string
  short?: string
  type: 'string' | 'boolean' | 'number' | 'size' | 'list'
  help: string
  default?: string | number | boolean
  /** Placeholder shown in help, for example `N` or `FILE`. */
  value?: string
  /** The command cannot run without it: parseArgs refuses a command line that lacks it. */
  required?: boolean
  /** A `number` option that takes only whole numbers of at least this (`--limit 0` is refused, not an empty list). */
  minInteger?: number
}

/** One positional argument of a command. */
export interface ArgDef {
  name: string
  help: string
  optional?: boolean
  /** The last argument may be given several times: `args` holds the first, `lists` every one. */
  variadic?: boolean
}

/** What a command's run() receives. */
export interface CommandContext {
  args: Record<string, string | undefined>
  /** Every value of a variadic argument, by its name. */
  lists?: Record<string, string[]>
  opts: Record<string, unknown>
  client: ApiClient
  out: Output
  /** Aborted on SIGINT. */
  signal: AbortSignal
}

/** A CLI command: `name` is its words (`disk create`); run returns an exit status or nothing (0). */
export interface CommandDef {
  name: string
  summary: string
  description?: string
  args?: ArgDef[]
  options?: OptionDef[]
  examples?: string[]
  /** Runs without the API client's URL (serve, agent, version). */
  local?: boolean
  // biome-ignore lint/suspicious/noConfusingVoidType: commands may simply return
  run(ctx: CommandContext): Promise<number | void>
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS: OptionDef[] = [
  {
    name: 'url',
    type: 'string',
    value: 'URL',
    help: 'service URL (env CAIRN_URL; default http://127.0.0.1:7070)',
  },
  {
    name: 'ca',
    type: 'string',
    value: 'FILE',
    help: "CA certificates (PEM) to trust for an https:// URL instead of the system's (env CAIRN_CA)",
  },
  {
    name: 'fingerprint',
    type: 'string',
    value: 'SHA256',
    help: "trust the service's certificate by its SHA-256 fingerprint, as cairn serve prints it (env CAIRN_FINGERPRINT)",
  },
  { name: 'json', type: 'boolean', help: 'print machine-readable JSON' },
  { name: 'debug', type: 'boolean', help: 'on an error, also print where it happened (stack trace)' },
  { name: 'help', short: 'h', type: 'boolean', help: 'show help' },
]

/** The option of every list command: lists show every item (page after page) unless it caps them. */
export const LIMIT_OPTION: OptionDef = {
  name: 'limit',
  type: 'number',
  value: 'N',
  help: 'show at most N (default: all, read page after page)',
  minInteger: 1,
}
