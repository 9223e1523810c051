import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CairnError, type LogLevel } from '../util/index.js'

/** The service's configuration, after flags, environment, config file and defaults are merged. */
export interface ServiceConfig {
  /** Data folder: catalog, disk store, vaults. */
  data: string
  /** Address the listeners bind to. */
  host: string
  /** Management API and portal port. */
  port: number
  /** Azure Blob page-blob API port. */
  blobPort: number
  /** NBD server port. */
  nbdPort: number
  /** Scheduled backups running at once (default 4). */
  maxBackups?: number
  logLevel: LogLevel
  /** Log format: JSON lines, or readable text; default: JSON unless stderr is a terminal. */
  logFormat?: 'json' | 'text'
  /** Key files of encrypted vaults, by vault name: the vault is unlocked at start (docs/configuration.md). */
  vaultKeys?: Record<string, string>
  /** A folder of key files named after their vaults (mode 0600 or stricter), unlocked at start. */
  vaultKeyDir?: string
  /** Pack files a vault restore keeps open while idle (default 32). */
  vaultOpenPacks?: number
}

interface OptionSpec {
  key: keyof ServiceConfig
  flag: string
  env: string
  type: 'string' | 'port' | 'level' | 'format' | 'count' | 'keys'
  default?: string | number
  help: string
}

/**
 * Every service option in one table: flag, environment variable, config-file key and default.
 * Precedence: flags over CAIRN_* environment over the config file over defaults.
 * docs/configuration.md is this table in prose; keep them together.
 */
export const SERVICE_OPTIONS: OptionSpec[] = [
  {
    key: 'data',
    flag: 'data',
    env: 'CAIRN_DATA',
    type: 'string',
    default: './cairn-data',
    help: 'data folder',
  },
  {
    key: 'host',
    flag: 'host',
    env: 'CAIRN_HOST',
    type: 'string',
    default: '127.0.0.1',
    help: 'address to listen on',
  },
  { key: 'port', flag: 'port', env: 'CAIRN_PORT', type: 'port', default: 7070, help: 'management API port' },
  {
    key: 'blobPort',
    flag: 'blob-port',
    env: 'CAIRN_BLOB_PORT',
    type: 'port',
    default: 10000,
    help: 'Azure Blob page-blob API port',
  },
  {
    key: 'nbdPort',
    flag: 'nbd-port',
    env: 'CAIRN_NBD_PORT',
    type: 'port',
    default: 10809,
    help: 'NBD server port',
  },
  {
    key: 'maxBackups',
    flag: 'max-backups',
    env: 'CAIRN_MAX_BACKUPS',
    type: 'count',
    default: 4,
    help: 'scheduled backups running at once',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'CAIRN_LOG_LEVEL',
    type: 'level',
    default: 'info',
    help: 'debug, info, warn or error',
  },
  { key: 'logFormat', flag: 'log-format', env: 'CAIRN_LOG_FORMAT', type: 'format', help: 'json or text' },
  {
    key: 'vaultKeys',
    flag: 'vault-key',
    env: 'CAIRN_VAULT_KEYS',
    type: 'keys',
    help: 'NAME=FILE: unlock encrypted vault NAME at start with the passphrase or key file in FILE',
  },
  {
    key: 'vaultKeyDir',
    flag: 'vault-key-dir',
    env: 'CAIRN_VAULT_KEY_DIR',
    type: 'string',
    help: 'folder of key files named after their vaults (mode 0600), unlocked at start',
  },
  {
    key: 'vaultOpenPacks',
    flag: 'vault-open-packs',
    env: 'CAIRN_VAULT_OPEN_PACKS',
    type: 'count',
    default: 32,
    help: 'pack files a vault restore keeps open while idle',
  },
]

const VAULT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

/** `NAME=FILE` pairs (a list, a comma-separated string, or a config-file object) as a map. */
function vaultKeys(raw: unknown, bad: (why: string) => Error): Record<string, string> {
  const why = 'give NAME=FILE (repeat the flag; in CAIRN_VAULT_KEYS separate pairs with commas)'
  let pairs: [string, unknown][]
  if (typeof raw === 'string') raw = raw.split(',').filter((p) => p.trim() !== '')
  if (Array.isArray(raw)) {
    pairs = raw.map((p) => {
      const text = String(p).trim()
      const eq = text.indexOf('=')
      if (eq <= 0) throw bad(why)
      return [text.slice(0, eq), text.slice(eq + 1)]
    })
  } else if (raw !== null && typeof raw === 'object') {
    pairs = Object.entries(raw)
  } else throw bad(why)
  const out: Record<string, string> = {}
  for (const [name, file] of pairs) {
    if (!VAULT_NAME.test(name)) throw bad(`"${name}" is not a vault name`)
    if (typeof file !== 'string' || file === '') throw bad(`vault "${name}" needs a key file path`)
    if (out[name] !== undefined) throw bad(`vault "${name}" is given twice`)
    out[name] = resolve(file)
  }
  return out
}

function coerce(spec: OptionSpec, raw: unknown, source: string): string | number | Record<string, string> {
  const bad = (why: string) =>
    new CairnError('ConfigInvalid', `Cannot use ${spec.flag} = ${JSON.stringify(raw)} from ${source}: ${why}`)
  switch (spec.type) {
    case 'port': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw bad('a port is a whole number from 0 to 65535')
      return n
    }
    case 'count': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 1 || n > 256) throw bad('a whole number from 1 to 256')
      return n
    }
    case 'level':
      if (!['debug', 'info', 'warn', 'error'].includes(String(raw)))
        throw bad('use debug, info, warn or error')
      return String(raw)
    case 'format':
      if (!['json', 'text'].includes(String(raw))) throw bad('use json or text')
      return String(raw)
    case 'keys':
      return vaultKeys(raw, bad)
    default:
      if (typeof raw !== 'string' || raw === '') throw bad('expected a non-empty string')
      return raw
  }
}

/** Inputs of resolveConfig. */
export interface ConfigSources {
  flags?: Record<string, string | number | boolean | string[] | undefined>
  env?: Record<string, string | undefined>
  /** Path of a JSON config file (flag --config or CAIRN_CONFIG); default `<data>/cairn.json` when present. */
  configFile?: string
}

/** Merges flags, CAIRN_* environment, the config file and defaults into a ServiceConfig. */
export function resolveConfig(sources: ConfigSources = {}): ServiceConfig {
  const flags = sources.flags ?? {}
  const env = sources.env ?? {}
  const out: Record<string, string | number | Record<string, string>> = {}
  const pick = (spec: OptionSpec, file: Record<string, unknown>) => {
    const flag = flags[spec.flag]
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0))
      return coerce(spec, flag, `--${spec.flag}`)
    if (env[spec.env] !== undefined && env[spec.env] !== '') return coerce(spec, env[spec.env], spec.env)
    if (file[spec.key] !== undefined) return coerce(spec, file[spec.key], 'the config file')
    return spec.default
  }
  // The data folder decides where the default config file is, so resolve it first without a file.
  const dataSpec = SERVICE_OPTIONS.find((s) => s.key === 'data')!
  const explicitFile = sources.configFile ?? (flags.config as string | undefined) ?? env.CAIRN_CONFIG
  let file: Record<string, unknown> = {}
  const firstData = String(pick(dataSpec, {}))
  const path = explicitFile ?? join(firstData, 'cairn.json')
  if (explicitFile !== undefined || existsSync(path)) file = readConfigFile(path)
  for (const spec of SERVICE_OPTIONS) {
    const v = pick(spec, file)
    if (v !== undefined) out[spec.key] = v
  }
  const known = new Set(SERVICE_OPTIONS.map((s) => s.key as string))
  for (const k of Object.keys(file)) {
    if (!known.has(k))
      throw new CairnError('ConfigInvalid', `Cannot use config file ${path}: unknown key "${k}"`)
  }
  out.data = resolve(String(out.data))
  if (typeof out.vaultKeyDir === 'string') out.vaultKeyDir = resolve(out.vaultKeyDir)
  return out as unknown as ServiceConfig
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new CairnError('ConfigInvalid', `Cannot read config file ${path}: ${(err as Error).message}`)
  }
  try {
    const v = JSON.parse(text)
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object')
    return v
  } catch (err) {
    throw new CairnError('ConfigInvalid', `Cannot read config file ${path}: ${(err as Error).message}`)
  }
}
