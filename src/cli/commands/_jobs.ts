import { readFile } from 'node:fs/promises'
import { CairnError, type ErrorCode, formatBytes, formatDuration, isErrorCode } from '../../util/index.js'
import type { ApiClient } from '../api-client.js'
import type { OptionDef } from '../command.js'
import { type Output, ProgressBar } from '../output.js'
import { parseDiskName } from './_disk-names.js'

/** A job as the API answers it. */
export interface Job {
  id: string
  type: string
  resource: string
  status: string
  progress: {
    phase: string
    bytesDone: number
    bytesTotal: number
    bytesStored: number
    rate: number
    etaMs: number | null
  } | null
  startedAt: string
  endedAt: string | null
  result: unknown
  error: { code: string; message: string } | null
}

/** Polls a job until it ends, drawing progress on a terminal; Ctrl-C cancels it. Throws when it failed. */
export async function followJob(
  client: ApiClient,
  out: Output,
  job: Job,
  label: string,
  signal: AbortSignal,
): Promise<Job> {
  const bar = new ProgressBar(label, out.interactive)
  let cancelled = false
  for (;;) {
    if (signal.aborted && !cancelled) {
      cancelled = true
      await client.post(`/api/v1/jobs/${job.id}/cancel`).catch(() => {})
    }
    job = await client.get<Job>(`/api/v1/jobs/${job.id}`)
    if (job.progress) bar.update(job.progress.bytesDone, job.progress.bytesTotal)
    if (job.endedAt) break
    await new Promise((r) => setTimeout(r, 200))
  }
  bar.done()
  if (job.status !== 'Completed') {
    const code: ErrorCode = job.error && isErrorCode(job.error.code) ? job.error.code : 'Internal'
    throw new CairnError(code, job.error?.message ?? `The ${job.type} job ended as ${job.status}`)
  }
  return job
}

/** Options that give an encrypted vault's credentials. */
export const CREDENTIAL_OPTIONS: OptionDef[] = [
  {
    name: 'passphrase-file',
    type: 'string',
    value: 'FILE',
    help: 'file holding the passphrase (or env CAIRN_VAULT_PASSPHRASE)',
  },
  { name: 'key-file', type: 'string', value: 'FILE', help: 'key file instead of a passphrase' },
]

/** The credentials given by options or environment, as API fields. */
export async function credentialFields(
  opts: Record<string, unknown>,
): Promise<{ passphrase?: string; keyFile?: string }> {
  if (typeof opts['key-file'] === 'string')
    return { keyFile: (await readFile(opts['key-file'])).toString('base64') }
  if (typeof opts['passphrase-file'] === 'string') {
    return { passphrase: (await readFile(opts['passphrase-file'], 'utf8')).replace(/\r?\n$/, '') }
  }
  if (process.env.CAIRN_VAULT_PASSPHRASE) return { passphrase: process.env.CAIRN_VAULT_PASSPHRASE }
  return {}
}

/** Unlocks an encrypted, locked vault with the credentials given on the command line, if any. */
export async function unlockIfGiven(
  client: ApiClient,
  vault: string,
  opts: Record<string, unknown>,
): Promise<void> {
  const creds = await credentialFields(opts)
  if (creds.passphrase === undefined && creds.keyFile === undefined) return
  const info = await client.get<{ encrypted: boolean; unlocked: boolean }>(
    `/api/v1/vaults/${encodeURIComponent(vault)}`,
  )
  if (info.encrypted && !info.unlocked)
    await client.post(`/api/v1/vaults/${encodeURIComponent(vault)}/unlock`, creds)
}

/** `1.2 GiB in 3.4 s (350 MiB/s)`. */
export function summary(bytes: number, ms: number): string {
  return `${formatBytes(bytes)} in ${formatDuration(ms)} (${formatBytes(ms > 0 ? (bytes / ms) * 1000 : 0)}/s)`
}

/** A recovery point as the API answers it (the fields the CLI shows). */
export interface RecoveryPointView {
  id: string
  source: { kind: string; name: string }
  consistency: string
  createdAt: string
  expiresAt: string | null
  parent: string | null
  disks: { name: string; lun?: number; size: number; mode: string; bytesScanned: number; bytesNew: number }[]
  bytesAdded: number
  durationMs: number
}

export const v = (name: string) => `/api/v1/vaults/${encodeURIComponent(name)}`

/** `[account/][container/]disk` with the development account and its `disks` container as defaults. */
export function diskRef(text: string): { account: string; container: string; disk: string } {
  const { account, container, disk } = parseDiskName(text)
  return { account, container, disk }
}
