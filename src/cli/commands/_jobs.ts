import { readFile } from 'node:fs/promises'
import type { Job, Vault, VaultCredentials, VaultRecoveryPoint } from '../../api/index.js'
import { CairnError, type ErrorCode, formatBytes, formatDuration, isErrorCode } from '../../util/index.js'
import type { ApiClient } from '../api-client.js'
import type { OptionDef } from '../command.js'
import { type Output, ProgressBar } from '../output.js'
import { parseDiskName } from './_disk-names.js'

/** A job as the API answers it (/api/v1/jobs): the API's own type, so a renamed field fails to compile. */
export type { Job }

/** The option every command that follows a job takes. */
export const CANCEL_ON_INTERRUPT: OptionDef = {
  name: 'cancel-on-interrupt',
  type: 'boolean',
  help: 'Ctrl-C cancels the job (and removes what it made) instead of detaching from it',
}

/**
 * Follows a job to its end over the event stream (GET /api/v1/events?job=ID), drawing progress.
 * Ctrl-C detaches: the job goes on, its id is printed, the exit status is 9 (Detached); with
 * `cancelOnInterrupt` it cancels the job instead, waits until its work has stopped and exits 8.
 * Resolves with the job when it completed; throws with its error code otherwise.
 */
export async function followJob(
  client: ApiClient,
  out: Output,
  job: Job,
  label: string,
  signal: AbortSignal,
  options: { cancelOnInterrupt?: boolean } = {},
): Promise<Job> {
  const bar = new ProgressBar(label, out.interactive)
  out.note(
    `job ${job.id} (${job.kind}) ${job.state}; Ctrl-C ${options.cancelOnInterrupt ? 'cancels it' : 'detaches (the job goes on)'}`,
  )
  let phase = ''
  let resumes = 0
  const show = (j: Job) => {
    const resumed = resumptions(j)
    for (; resumes < resumed.length; resumes++)
      out.note(`job ${j.id} resumed ${resumed[resumes]} after a restart`)
    if (j.progress.phase !== phase) {
      phase = j.progress.phase
      // "Completed", not "Completed Completed": a phase named as the state adds nothing.
      if (!out.interactive)
        out.note(`${new Date().toISOString()} ${j.state}${phase === j.state ? '' : ` ${phase}`}`)
    }
    bar.update(j.progress.bytesDone, j.progress.bytesTotal)
  }
  const stream = new AbortController()
  const onAbort = () => stream.abort()
  signal.addEventListener('abort', onAbort, { once: true })
  let ended: Job | undefined
  try {
    const res = await client.raw('GET', '/api/v1/events', { query: { job: job.id }, signal: stream.signal })
    // Read the job after subscribing: an end that came before is seen here, one after in the stream.
    const now = await client.get<Job>(`/api/v1/jobs/${encodeURIComponent(job.id)}`)
    show(now)
    if (now.endedAt) ended = now
    else ended = await untilFinished(res, show)
    if (!ended) ended = await client.get<Job>(`/api/v1/jobs/${encodeURIComponent(job.id)}`)
  } catch (err) {
    if (!signal.aborted) throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
    stream.abort()
    bar.done()
  }
  if (signal.aborted && !ended?.endedAt) {
    if (!options.cancelOnInterrupt) {
      throw new CairnError(
        'Detached',
        `Detached from job ${job.id}; it goes on in the service (cairn job watch ${job.id}, cairn job cancel ${job.id})`,
      )
    }
    out.note(`cancelling job ${job.id} …`)
    ended = await client.post<Job>(`/api/v1/jobs/${encodeURIComponent(job.id)}/cancel`).catch(async (err) => {
      if (err instanceof CairnError && err.code === 'JobNotRunning')
        return client.get<Job>(`/api/v1/jobs/${encodeURIComponent(job.id)}`)
      throw err
    })
  }
  return endOf(ended!)
}

/** The completed job, or its error as a CairnError (Cancelled exits 8, Interrupted 1). */
export function endOf(job: Job): Job {
  if (job.state === 'Completed') return job
  const fallback: ErrorCode = job.state === 'Cancelled' ? 'Cancelled' : 'Internal'
  const code: ErrorCode = job.error && isErrorCode(job.error.code) ? job.error.code : fallback
  throw new CairnError(code, `Job ${job.id} ${job.state}: ${job.error?.message ?? `the ${job.kind} ended`}`)
}

/** Reads server-sent events until the job.finished event; undefined when the stream ended first. */
async function untilFinished(res: Response, show: (j: Job) => void): Promise<Job | undefined> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buf = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return undefined
    buf += decoder.decode(value, { stream: true })
    let end = buf.indexOf('\n\n')
    while (end !== -1) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      end = buf.indexOf('\n\n')
      let event = ''
      let data = ''
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data += line.slice(6)
      }
      if (!data) continue
      const job = JSON.parse(data) as Job
      show(job)
      if (event === 'job.finished') {
        await reader.cancel().catch(() => {})
        return job
      }
    }
  }
}

/**
 * Where a job resumed after each restart (the resumptions that say it), as text: `at 96 MiB
 * (2026-12-06T12:00:00.000Z)`.
 */
export function resumptions(j: Job): string[] {
  const list = Array.isArray(j.details.resumed)
    ? (j.details.resumed as { at: string; bytesDone?: number }[])
    : []
  return list
    .filter((r) => typeof r.bytesDone === 'number')
    .map((r) => `at ${formatBytes(r.bytesDone!)} (${r.at})`)
}

/** Prints a job as key/value lines. */
export function printJob(out: Output, j: Job): void {
  const p = j.progress
  out.keyValues([
    ['id', j.id],
    ['kind', j.kind],
    ['state', j.state],
    ['resource', j.resource],
    ['vm', j.vm],
    ['vault', j.vault],
    ['phase', p.phase],
    [
      'progress',
      `${p.percent}% (${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)})${
        p.etaSeconds !== undefined ? `, ETA ${formatDuration(p.etaSeconds * 1000)}` : ''
      }`,
    ],
    ['started by', j.startedBy],
    ['created', j.createdAt],
    ['started', j.startedAt],
    ['ended', j.endedAt],
    ['duration', formatDuration(j.durationMs)],
    ['resumed', resumptions(j).join('; ') || undefined],
    ['error', j.error ? `${j.error.code}: ${j.error.message}` : undefined],
    [
      'warnings',
      Array.isArray(j.details.warnings) && j.details.warnings.length > 0
        ? j.details.warnings.join('; ')
        : undefined,
    ],
    ['result', j.result === null ? undefined : j.result],
  ])
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
export async function credentialFields(opts: Record<string, unknown>): Promise<VaultCredentials> {
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
  const info = await client.get<Vault>(v(vault))
  if (info.encrypted && !info.unlocked)
    await client.post<Vault, VaultCredentials>(`${v(vault)}/unlock`, creds)
}

/** `1.2 GiB in 3.4 s (350 MiB/s)`. */
export function summary(bytes: number, ms: number): string {
  return `${formatBytes(bytes)} in ${formatDuration(ms)} (${formatBytes(ms > 0 ? (bytes / ms) * 1000 : 0)}/s)`
}

/** A recovery point of a vault as the API answers it. */
export type RecoveryPointView = VaultRecoveryPoint

export const v = (name: string) => `/api/v1/vaults/${encodeURIComponent(name)}`

/** `[account/][container/]disk` with the development account and its `disks` container as defaults. */
export function diskRef(text: string): { account: string; container: string; disk: string } {
  const { account, container, disk } = parseDiskName(text)
  return { account, container, disk }
}
