import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { CairnError } from '../util/index.js'

/** What the CLI keeps for one service: its token and, for TLS, the pinned certificate fingerprint. */
export interface SavedCredential {
  token?: string
  /** SHA-256 fingerprint of the service's certificate (written by `cairn login` over TLS). */
  fingerprint?: string
}

/**
 * The CLI's credentials file: `$XDG_CONFIG_HOME/cairn/credentials` (default `~/.config/cairn/credentials`),
 * mode 0600, a JSON object keyed by API URL: `{ "http://127.0.0.1:7070": { "token": "cairn_…" } }`.
 */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(base, 'cairn', 'credentials')
}

/** The service URL as credentials are keyed: no trailing slash. */
export const credentialKey = (url: string) => url.replace(/\/+$/, '')

/** Every saved credential (an empty object when the file does not exist). */
export function readCredentials(path = credentialsPath()): Record<string, SavedCredential> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new CairnError(
      'UsageError',
      `Cannot read the credentials file ${path}: ${(err as NodeJS.ErrnoException).code}`,
    )
  }
  try {
    const v = JSON.parse(text) as unknown
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
    return v as Record<string, SavedCredential>
  } catch (err) {
    throw new CairnError(
      'UsageError',
      `Cannot read the credentials file ${path}: ${(err as Error).message} (delete it and run cairn login)`,
    )
  }
}

/** Sets (or, with undefined, removes) the credential of one service URL; the file stays mode 0600. */
export function saveCredential(
  url: string,
  credential: SavedCredential | undefined,
  path = credentialsPath(),
): void {
  const all = readCredentials(path)
  const key = credentialKey(url)
  if (credential === undefined) delete all[key]
  else all[key] = credential
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 })
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

/** The token to send to a service: CAIRN_TOKEN when set, else the one saved for its URL. */
export function tokenFor(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CAIRN_TOKEN !== undefined && env.CAIRN_TOKEN !== '') return env.CAIRN_TOKEN
  return readCredentials(credentialsPath(env))[credentialKey(url)]?.token
}
