// Over ~500 lines on purpose: every option of `cairn serve` in one table (flag, environment variable,
// config-file key, default, check), so --help, docs/configuration.md and the parser cannot disagree.
// The check and conversion of each value by its type is in _coerce-option.ts.
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CairnError, type LogLevel } from '../util/index.js'
import type { ObjectStoreOptions } from '../vault/index.js'
import { checkObjectStores, coerceOption, type OptionType } from './_coerce-option.js'

/** The service's configuration, after flags, environment, config file and defaults are merged. */
export interface ServiceConfig {
  /** Data folder: catalog, disk store, vaults. */
  data: string
  /** What this process does (docs/scale-out.md): api, worker, scheduler or all (default). */
  role?: 'all' | 'api' | 'worker' | 'scheduler'
  /** The catalog's URL: `sqlite:PATH` or `postgres://user:password@host:port/db`; default sqlite:DATA/catalog.db. */
  catalog?: string
  /** Address a listener binds to when its own (apiHost, blobHost, nbdHost) is not set. */
  host: string
  /** Address of the management API; default `host`. */
  apiHost?: string
  /** Address of the Azure Blob API; default `host`. */
  blobHost?: string
  /** Address of the NBD server; default `host`. */
  nbdHost?: string
  /** Host names the management API answers besides loopback names and its bound address. */
  apiAllowedHosts?: string[]
  /** Management API and portal port. */
  port: number
  /** Azure Blob page-blob API port. */
  blobPort: number
  /** NBD server port. */
  nbdPort: number
  /** Scheduled backups running at once (default 4). */
  maxBackups?: number
  /** Widest spread, in seconds, of scheduled backups' start times after their slot (default 7200). */
  scheduleSpread?: number
  /**
   * Seconds after its last heartbeat that the lock of a backup which died stops protecting its packs:
   * the GC run after a restart reclaims them then (default 900).
   */
  gcGrace?: number
  /** Seconds between the disk geo-replication rounds of each GRS/RA-GRS account (docs/replication.md). */
  geoInterval?: number
  /** Seconds between the replication loop's looks for new points of GRS vaults (docs/replication.md). */
  replicationInterval?: number
  /** Seconds a job's lease lasts without a heartbeat on a shared catalog (default 30; docs/scale-out.md). */
  jobLease?: number
  logLevel: LogLevel
  /** Log format: JSON lines, or readable text; default: JSON unless stderr is a terminal. */
  logFormat?: 'json' | 'text'
  /** Key files of encrypted vaults, by vault name: the vault is unlocked at start (docs/configuration.md). */
  vaultKeys?: Record<string, string>
  /** A folder of key files named after their vaults (mode 0600 or stricter), unlocked at start. */
  vaultKeyDir?: string
  /** Pack files a vault restore keeps open while idle (default 32). */
  vaultOpenPacks?: number
  /** Bytes of one disk-store segment file (default 256 MiB): garbage is reclaimed a segment at a time. */
  diskSegmentSize?: number
  /** Connections the management API holds at once (default 256). */
  apiMaxConnections?: number
  /** Connections the blob API holds at once (default 1024). */
  blobMaxConnections?: number
  /** Connections the NBD server holds at once (default 256). */
  nbdMaxConnections?: number
  /** Seconds an idle keep-alive HTTP connection stays open (default 5). */
  httpIdleTimeout?: number
  /** Seconds an HTTP client has to send a request's headers (default 20). */
  httpHeaderTimeout?: number
  /** Seconds an NBD client has to finish its handshake and choose an export (default 30). */
  nbdHandshakeTimeout?: number
  /** Folders requests may name files in to read (disk import, backup from a file); none: refused. */
  importRoots?: string[]
  /** Folders requests may name files in to write (disk export, restore into a file); none: refused. */
  exportRoots?: string[]
  /** At first start, the password of the user `admin` is read from this file instead of generated. */
  adminPasswordFile?: string
  /** Multiplies the delays of failed sign-ins (default 1); tests make them short (docs/security.md). */
  loginDelayScale?: number
  /** `self-signed`: a certificate made at first start in DATA/tls serves every listener without its own. */
  tls?: 'off' | 'self-signed'
  /** Certificate chain (PEM) and its key of every listener that has none of its own. */
  tlsCert?: string
  tlsKey?: string
  /** Certificate and key of the management API only. */
  apiTlsCert?: string
  apiTlsKey?: string
  /** Certificate and key of the Azure Blob API only. */
  blobTlsCert?: string
  blobTlsKey?: string
  /** Certificate and key of the NBD server only. */
  nbdTlsCert?: string
  nbdTlsKey?: string
  /** NBD pre-shared keys (`identity:hexkey [EXPORT…]` lines): NBD clients then authenticate with one. */
  nbdTlsPskFile?: string
  /** How `azblob://` and `s3://` vaults reach their stores (config file only: it may hold secrets). */
  objectStores?: ObjectStoreOptions
}

/** Defaults of the connection caps and timeouts (docs/configuration.md). */
export const LISTENER_DEFAULTS = {
  apiMaxConnections: 256,
  blobMaxConnections: 1024,
  nbdMaxConnections: 256,
  httpIdleTimeout: 5,
  httpHeaderTimeout: 20,
  nbdHandshakeTimeout: 30,
} as const

interface OptionSpec {
  key: keyof ServiceConfig
  flag: string
  env: string
  type: OptionType
  default?: string | number | string[]
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
    key: 'role',
    flag: 'role',
    env: 'CAIRN_ROLE',
    type: 'role',
    default: 'all',
    help: 'api, worker, scheduler or all: which loops this process runs (docs/scale-out.md)',
  },
  {
    key: 'catalog',
    flag: 'catalog',
    env: 'CAIRN_CATALOG',
    type: 'string',
    help: 'catalog URL: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB (default sqlite:DATA/catalog.db)',
  },
  {
    key: 'host',
    flag: 'host',
    env: 'CAIRN_HOST',
    type: 'string',
    default: '127.0.0.1',
    help: 'address every listener binds to unless its own is set',
  },
  {
    key: 'apiHost',
    flag: 'api-host',
    env: 'CAIRN_API_HOST',
    type: 'string',
    help: 'address of the management API (default --host)',
  },
  {
    key: 'blobHost',
    flag: 'blob-host',
    env: 'CAIRN_BLOB_HOST',
    type: 'string',
    help: 'address of the Azure Blob API (default --host)',
  },
  {
    key: 'nbdHost',
    flag: 'nbd-host',
    env: 'CAIRN_NBD_HOST',
    type: 'string',
    help: 'address of the NBD server (default --host)',
  },
  {
    key: 'apiAllowedHosts',
    flag: 'api-allowed-host',
    env: 'CAIRN_API_ALLOWED_HOSTS',
    type: 'hosts',
    help: 'a Host name the management API answers besides loopback and its address (repeat)',
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
    key: 'replicationInterval',
    flag: 'replication-interval',
    env: 'CAIRN_REPLICATION_INTERVAL',
    type: 'seconds',
    default: 10,
    help: 'seconds between looks for new recovery points of GRS vaults to replicate (docs/replication.md)',
  },
  {
    key: 'scheduleSpread',
    flag: 'schedule-spread',
    env: 'CAIRN_SCHEDULE_SPREAD',
    type: 'seconds',
    default: 7200,
    help: "widest spread of scheduled backups' start times after their slot, in seconds",
  },
  {
    key: 'gcGrace',
    flag: 'gc-grace',
    env: 'CAIRN_GC_GRACE',
    type: 'seconds',
    default: 900,
    help: "seconds before a dead backup's vault data is reclaimed by GC",
  },
  {
    key: 'geoInterval',
    flag: 'geo-interval',
    env: 'CAIRN_GEO_INTERVAL',
    type: 'seconds',
    default: 10,
    help: 'seconds between the rounds that ship GRS and RA-GRS disks to the paired site',
  },
  {
    key: 'jobLease',
    flag: 'job-lease',
    env: 'CAIRN_JOB_LEASE',
    type: 'seconds',
    default: 30,
    help: "seconds a job's lease lasts without a heartbeat (PostgreSQL catalog): a dead worker's jobs are taken over after it",
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
    key: 'apiMaxConnections',
    flag: 'api-max-connections',
    env: 'CAIRN_API_MAX_CONNECTIONS',
    type: 'connections',
    default: LISTENER_DEFAULTS.apiMaxConnections,
    help: 'connections the management API holds at once',
  },
  {
    key: 'blobMaxConnections',
    flag: 'blob-max-connections',
    env: 'CAIRN_BLOB_MAX_CONNECTIONS',
    type: 'connections',
    default: LISTENER_DEFAULTS.blobMaxConnections,
    help: 'connections the blob API holds at once',
  },
  {
    key: 'nbdMaxConnections',
    flag: 'nbd-max-connections',
    env: 'CAIRN_NBD_MAX_CONNECTIONS',
    type: 'connections',
    default: LISTENER_DEFAULTS.nbdMaxConnections,
    help: 'connections the NBD server holds at once',
  },
  {
    key: 'httpIdleTimeout',
    flag: 'http-idle-timeout',
    env: 'CAIRN_HTTP_IDLE_TIMEOUT',
    type: 'timeout',
    default: LISTENER_DEFAULTS.httpIdleTimeout,
    help: 'seconds an idle keep-alive HTTP connection stays open',
  },
  {
    key: 'httpHeaderTimeout',
    flag: 'http-header-timeout',
    env: 'CAIRN_HTTP_HEADER_TIMEOUT',
    type: 'timeout',
    default: LISTENER_DEFAULTS.httpHeaderTimeout,
    help: 'seconds an HTTP client has to send the headers of a request',
  },
  {
    key: 'nbdHandshakeTimeout',
    flag: 'nbd-handshake-timeout',
    env: 'CAIRN_NBD_HANDSHAKE_TIMEOUT',
    type: 'timeout',
    default: LISTENER_DEFAULTS.nbdHandshakeTimeout,
    help: 'seconds an NBD client has to finish its handshake',
  },
  {
    key: 'importRoots',
    flag: 'import-root',
    env: 'CAIRN_IMPORT_ROOTS',
    type: 'folders',
    default: [],
    help: 'folder whose files requests may read (repeatable; env: folders separated by ":")',
  },
  {
    key: 'exportRoots',
    flag: 'export-root',
    env: 'CAIRN_EXPORT_ROOTS',
    type: 'folders',
    default: [],
    help: 'folder where requests may write files (repeatable; env: folders separated by ":")',
  },
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
  {
    key: 'adminPasswordFile',
    flag: 'admin-password-file',
    env: 'CAIRN_ADMIN_PASSWORD_FILE',
    type: 'string',
    help: 'at first start, the password of user admin from this file (else generated into DATA/initial-admin-password)',
  },
  {
    key: 'loginDelayScale',
    flag: 'login-delay-scale',
    env: 'CAIRN_LOGIN_DELAY_SCALE',
    type: 'scale',
    default: 1,
    help: 'multiplies the growing delays after failed sign-ins (tests only: a small number keeps them fast)',
  },
  {
    key: 'diskSegmentSize',
    flag: 'disk-segment-size',
    env: 'CAIRN_DISK_SEGMENT_SIZE',
    type: 'size',
    help: 'bytes of one disk-store segment file (garbage is reclaimed a segment at a time)',
  },
  {
    key: 'tls',
    flag: 'tls',
    env: 'CAIRN_TLS',
    type: 'tls',
    help: 'self-signed: make a certificate in DATA/tls at first start for every listener without its own (or off)',
  },
  ...tlsFileOptions('', 'every listener that has none of its own'),
  ...tlsFileOptions('api', 'the management API'),
  ...tlsFileOptions('blob', 'the Azure Blob API'),
  ...tlsFileOptions('nbd', 'the NBD server'),
  {
    key: 'nbdTlsPskFile',
    flag: 'nbd-tls-psk-file',
    env: 'CAIRN_NBD_TLS_PSK_FILE',
    type: 'file',
    help: 'NBD pre-shared keys, lines "identity:hexkey [EXPORT...]" (psktool format): NBD clients must use one',
  },
]

/** The `--[LISTENER-]tls-cert` and `--[LISTENER-]tls-key` options of one listener (or of all). */
function tlsFileOptions(listener: '' | 'api' | 'blob' | 'nbd', what: string): OptionSpec[] {
  const flag = listener === '' ? 'tls' : `${listener}-tls`
  const env = `CAIRN_${flag.toUpperCase().replace('-', '_')}`
  const key = listener === '' ? 'tls' : `${listener}Tls`
  return [
    {
      key: `${key}Cert` as keyof ServiceConfig,
      flag: `${flag}-cert`,
      env: `${env}_CERT`,
      type: 'file',
      help: `certificate chain (PEM) of ${what}`,
    },
    {
      key: `${key}Key` as keyof ServiceConfig,
      flag: `${flag}-key`,
      env: `${env}_KEY`,
      type: 'file',
      help: `private key (PEM, not readable by others) of ${what}`,
    },
  ]
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
  const out: Record<string, string | number | string[] | Record<string, string>> = {}
  const pick = (spec: OptionSpec, file: Record<string, unknown>) => {
    const flag = flags[spec.flag]
    // A repeatable flag given no times arrives as an empty list: not given.
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0))
      return coerceOption(spec, flag, `--${spec.flag}`)
    if (env[spec.env] !== undefined && env[spec.env] !== '')
      return coerceOption(spec, env[spec.env], spec.env)
    if (file[spec.key] !== undefined) return coerceOption(spec, file[spec.key], 'the config file')
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
  const known = new Set([...SERVICE_OPTIONS.map((s) => s.key as string), 'objectStores'])
  if (file.objectStores !== undefined) out.objectStores = checkObjectStores(file.objectStores, path) as never
  for (const k of Object.keys(file)) {
    if (!known.has(k))
      throw new CairnError('ConfigInvalid', `Cannot use config file ${path}: unknown key "${k}"`)
  }
  out.data = resolve(String(out.data))
  if (typeof out.vaultKeyDir === 'string') out.vaultKeyDir = resolve(out.vaultKeyDir)
  if (typeof out.adminPasswordFile === 'string') out.adminPasswordFile = resolve(out.adminPasswordFile)
  const config = out as unknown as ServiceConfig
  checkTlsPairs(config)
  return config
}

/** Refuses a certificate without its key (or the reverse) and a certificate beside `--tls self-signed`. */
function checkTlsPairs(c: ServiceConfig): void {
  const pairs = [
    ['tls', c.tlsCert, c.tlsKey],
    ['api-tls', c.apiTlsCert, c.apiTlsKey],
    ['blob-tls', c.blobTlsCert, c.blobTlsKey],
    ['nbd-tls', c.nbdTlsCert, c.nbdTlsKey],
  ] as const
  for (const [flag, cert, key] of pairs) {
    if ((cert === undefined) !== (key === undefined))
      throw new CairnError(
        'ConfigInvalid',
        `Cannot use --${flag}-${cert === undefined ? 'key' : 'cert'} alone: give --${flag}-cert and --${flag}-key together`,
      )
  }
  if (c.tls === 'self-signed' && c.tlsCert !== undefined)
    throw new CairnError(
      'ConfigInvalid',
      'Cannot use --tls self-signed with --tls-cert: choose the generated certificate or your own',
    )
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
