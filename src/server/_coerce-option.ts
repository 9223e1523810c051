// coerceOption: the check and conversion of one `cairn serve` option's value by its type (ports,
// counts, sizes, timeouts, host lists, folders, vault key pairs, …), whatever its source, and of the
// config file's `objectStores` section. The table of options is SERVICE_OPTIONS in config.ts.
import { resolve } from 'node:path'
import { CairnError, parseSize } from '../util/index.js'
import type { ObjectStoreOptions } from '../vault/index.js'

/** How an option's value is checked and converted. */
export type OptionType =
  | 'string'
  | 'port'
  | 'level'
  | 'format'
  | 'count'
  | 'size'
  | 'connections'
  | 'timeout'
  | 'seconds'
  | 'hosts'
  | 'folders'
  | 'keys'
  | 'scale'
  | 'tls'
  | 'role'
  | 'file'

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

/** One option's value from `source` (a flag, the environment or the config file), checked and converted by its type. */
export function coerceOption(
  spec: { flag: string; type: OptionType },
  raw: unknown,
  source: string,
): string | number | string[] | Record<string, string> {
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
    case 'size': {
      let n: number
      try {
        n = parseSize(raw as string | number)
      } catch {
        throw bad('a size such as 64MiB')
      }
      if (n < 1024 * 1024 || n > 2 ** 31 || n % 4096 !== 0)
        throw bad('a multiple of 4 KiB from 1 MiB to 2 GiB')
      return n
    }
    case 'connections': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 1 || n > 100_000) throw bad('a whole number from 1 to 100000')
      return n
    }
    case 'timeout': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isFinite(n) || n < 0.1 || n > 86_400) throw bad('a number of seconds from 0.1 to 86400')
      return n
    }
    case 'hosts': {
      // Repeated flags arrive as a list, the environment as a comma-separated list, the file as an array.
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined
      if (list === undefined) throw bad('expected a list of host names')
      const names = list.map((h) => (typeof h === 'string' ? h.trim().toLowerCase() : ''))
      if (names.some((h) => !/^[a-z0-9.:[\]_-]+$/.test(h)))
        throw bad('a host name is letters, digits, dots, dashes or an IP address')
      return names
    }
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 0 || n > 7 * 86_400) throw bad('a whole number of seconds up to a week')
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
    case 'scale': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isFinite(n) || n <= 0 || n > 1) throw bad('a number above 0, at most 1')
      return n
    }
    case 'role':
      if (!['all', 'api', 'worker', 'scheduler'].includes(String(raw)))
        throw bad('use api, worker, scheduler or all')
      return String(raw)
    case 'tls':
      if (!['off', 'self-signed'].includes(String(raw)))
        throw bad('use self-signed (or off); give a certificate with --tls-cert and --tls-key')
      return String(raw)
    case 'file':
      // Relative files are taken from the working directory, as --data is.
      if (typeof raw !== 'string' || raw === '') throw bad('expected a file path')
      return resolve(raw)
    case 'folders': {
      // Flags and the config file give a list, the environment one string of ":"-separated folders;
      // relative folders are taken from the working directory, as --data is.
      const list = typeof raw === 'string' ? raw.split(':') : raw
      if (!Array.isArray(list) || list.some((f) => typeof f !== 'string' || f === ''))
        throw bad('expected a list of folders')
      return (list as string[]).map((f) => resolve(f))
    }
    default:
      if (typeof raw !== 'string' || raw === '') throw bad('expected a non-empty string')
      return raw
  }
}

const OBJECT_STORE_FIELDS: Record<string, Record<string, 'string' | 'boolean' | 'number'>> = {
  azure: { connectionString: 'string', accountKey: 'string', sasToken: 'string', endpoint: 'string' },
  s3: {
    endpoint: 'string',
    region: 'string',
    pathStyle: 'boolean',
    accessKeyId: 'string',
    secretAccessKey: 'string',
    sessionToken: 'string',
  },
  retry: { tries: 'number', baseDelayMs: 'number', maxDelayMs: 'number', timeoutMs: 'number' },
}

/** The config file's `objectStores` object, each field checked (values are never echoed: they may be secrets). */
export function checkObjectStores(raw: unknown, path: string): ObjectStoreOptions {
  const bad = (why: string) =>
    new CairnError('ConfigInvalid', `Cannot use "objectStores" of config file ${path}: ${why}`)
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
  if (!isObject(raw)) throw bad('expected an object with "azure", "s3", "retry" or "maxSockets"')
  for (const [section, value] of Object.entries(raw)) {
    if (section === 'maxSockets') {
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 256)
        throw bad('"maxSockets" is a whole number from 1 to 256')
      continue
    }
    const fields = OBJECT_STORE_FIELDS[section]
    if (!fields) throw bad(`unknown key "${section}"`)
    if (!isObject(value)) throw bad(`"${section}" is an object`)
    for (const [k, v] of Object.entries(value)) {
      const type = fields[k]
      if (!type) throw bad(`unknown key "${section}.${k}"`)
      if (typeof v !== type || (type === 'number' && !((v as number) >= 0)))
        throw bad(`"${section}.${k}" is a ${type === 'number' ? 'number of at least 0' : type}`)
    }
  }
  return raw as ObjectStoreOptions
}
