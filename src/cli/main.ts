import { readFileSync } from 'node:fs'
import { CairnError } from '../util/index.js'
import { ApiClient, DEFAULT_URL, LIST_PAGE_SIZE } from './api-client.js'
import { type CommandDef, GLOBAL_OPTIONS } from './command.js'
import { COMMANDS } from './commands/index.js'
import { credentialKey, readCredentials } from './credentials.js'
import { commandHelp, groupHelp } from './help.js'
import type { TlsTrust } from './http-transport.js'
import { Output } from './output.js'
import { parseArgs } from './parse-args.js'

/** Finds the command whose words start argv (after leading global options); longest match wins. */
function findCommand(
  commands: CommandDef[],
  argv: string[],
): { cmd?: CommandDef; rest: string[]; words: string[] } {
  // Global options may come before the command: `cairn --url U vault list`.
  const leading: string[] = []
  let i = 0
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const a = argv[i]!
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined
    const def = GLOBAL_OPTIONS.find((o) => o.name === name || (o.short && `-${o.short}` === a))
    if (def === undefined) break
    leading.push(a)
    i++
    if (def.type !== 'boolean' && !a.includes('=') && i < argv.length) leading.push(argv[i++]!)
  }
  const words: string[] = []
  for (const a of argv.slice(i)) {
    if (a.startsWith('-')) break
    words.push(a)
  }
  for (let n = words.length; n > 0; n--) {
    const name = words.slice(0, n).join(' ')
    const cmd = commands.find((c) => c.name === name)
    if (cmd) return { cmd, rest: [...leading, ...argv.slice(i + n)], words }
  }
  return { rest: argv, words }
}

/** True for the error of a write whose reader has gone (`cairn … | head` after head ended). */
export function isClosedPipe(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED'
}

let watchingPipes = false

/**
 * A reader that closes early ends a command quietly with status 0 (what it wanted was read), never with
 * an EPIPE stack trace. The long-running commands (`serve`, `agent`) keep running without their log.
 */
function watchClosedPipes(keepRunning: boolean): void {
  if (watchingPipes) return
  watchingPipes = true
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (!isClosedPipe(err)) throw err
      if (!keepRunning) process.exit(0)
    })
  }
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: string[], commands: CommandDef[] = COMMANDS): Promise<number> {
  const json = argv.includes('--json')
  const debug = argv.includes('--debug')
  const out = new Output(json)
  const { cmd, rest, words } = findCommand(commands, argv)
  watchClosedPipes(cmd?.name === 'serve' || cmd?.name === 'agent')
  const wantsHelp = argv.includes('--help') || argv.includes('-h')
  if (!cmd) {
    const group =
      words.length > 0 && commands.some((c) => c.name.startsWith(`${words[0]} `)) ? [words[0]!] : []
    if (argv.length === 0 || wantsHelp || (group.length > 0 && words.length === 1)) {
      process.stdout.write(groupHelp(commands, group))
      return argv.length === 0 || wantsHelp ? 0 : 2
    }
    const first = argv.find(
      (a) => a.startsWith('-') && !GLOBAL_OPTIONS.some((o) => a.split('=')[0] === `--${o.name}`),
    )
    const why =
      words.length > 0
        ? `Unknown command "${words.join(' ')}"`
        : first !== undefined
          ? `Cannot read "${first}" before a command: only --url, --ca, --fingerprint, --json and --debug may come first`
          : 'Name a command after the global options'
    return fail(out, new CairnError('UsageError', `${why} (see cairn --help)`), debug)
  }
  if (wantsHelp) {
    process.stdout.write(commandHelp(cmd))
    return 0
  }
  const controller = new AbortController()
  const onSigint = () => controller.abort(new CairnError('Cancelled', 'Interrupted'))
  if (!cmd.local) process.once('SIGINT', onSigint)
  try {
    const { args, lists, opts } = parseArgs(cmd, rest)
    const url = (opts.url as string | undefined) ?? process.env.CAIRN_URL ?? DEFAULT_URL
    const client = new ApiClient(url, {
      trust: cmd.local ? {} : tlsTrust(opts, url),
      ...pageSize(),
    })
    try {
      const code = await cmd.run({ args, lists, opts, client, out, signal: controller.signal })
      return code ?? 0
    } finally {
      client.close()
    }
  } catch (err) {
    return fail(out, err, debug)
  } finally {
    process.off('SIGINT', onSigint)
  }
}

/**
 * Whom the client trusts over https: `--ca`/CAIRN_CA and `--fingerprint`/CAIRN_FINGERPRINT, else the
 * fingerprint `cairn login` saved for the URL in the credentials file.
 */
function tlsTrust(opts: Record<string, unknown>, url: string): TlsTrust {
  const env = (name: string) => (process.env[name] === '' ? undefined : process.env[name])
  const caFile = (opts.ca as string | undefined) ?? env('CAIRN_CA')
  const fingerprint =
    (opts.fingerprint as string | undefined) ??
    env('CAIRN_FINGERPRINT') ??
    (caFile === undefined ? savedFingerprint(url) : undefined)
  let ca: string | undefined
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile, 'utf8')
    } catch (err) {
      throw new CairnError(
        'UsageError',
        `Cannot read the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code}`,
      )
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new CairnError('UsageError', `Cannot use the CA file ${caFile}: it holds no PEM certificate`)
  }
  return { ...(ca !== undefined ? { ca } : {}), ...(fingerprint !== undefined ? { fingerprint } : {}) }
}

/**
 * Prints one error as exactly one line, `cairn: CODE: message` (or the JSON error body with --json),
 * and returns its exit status (docs/errors.md). The stack goes to stderr only with --debug.
 */
export function fail(out: Output, err: unknown, debug = false): number {
  // The reader of stdout is gone: nobody is there to tell, and nothing went wrong for the caller.
  if (isClosedPipe(err)) return 0
  const e = asCairnError(err)
  if (out.json) process.stderr.write(`${JSON.stringify(e.toJSON())}\n`)
  else process.stderr.write(`cairn: ${e.code}: ${oneLine(e.message)}\n`)
  if (debug) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`)
  return e.exitStatus
}

const oneLine = (text: string) => text.replace(/\s*\r?\n\s*/g, ' ').trim()

/** Any error as a CairnError: local file errors get their own codes, the rest is Internal. */
export function asCairnError(err: unknown): CairnError {
  if (err instanceof CairnError) return err
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && typeof e.syscall === 'string') {
    const what = e.path === undefined ? e.syscall : `${e.path}`
    if (e.code === 'ENOENT') return new CairnError('FileNotFound', `Cannot read ${what}: no such file`)
    if (e.code === 'EACCES' || e.code === 'EPERM')
      return new CairnError('UsageError', `Cannot read ${what}: permission denied`)
    if (e.code === 'EISDIR') return new CairnError('UsageError', `Cannot read ${what}: it is a folder`)
    return new CairnError('UsageError', `Cannot use ${what}: ${e.code}`)
  }
  if (err instanceof SyntaxError)
    return new CairnError('UsageError', `Cannot read a JSON file given on the command line: ${err.message}`)
  return new CairnError(
    'Internal',
    `Unexpected error in the cairn command: ${(err as Error)?.message ?? String(err)} (run with --debug for details)`,
  )
}

/** The certificate fingerprint `cairn login` saved for a service URL (none when the file is unreadable). */
function savedFingerprint(url: string): string | undefined {
  try {
    return readCredentials()[credentialKey(url)]?.fingerprint
  } catch {
    return undefined
  }
}

/** CAIRN_PAGE_SIZE: items a listing asks for per page as it follows the cursors (default 1000, at most 1000). */
function pageSize(): { pageSize?: number } {
  const raw = process.env.CAIRN_PAGE_SIZE
  if (raw === undefined || raw === '') return {}
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > LIST_PAGE_SIZE)
    throw new CairnError(
      'UsageError',
      `Cannot use CAIRN_PAGE_SIZE "${raw}": give a whole number from 1 to ${LIST_PAGE_SIZE}`,
    )
  return { pageSize: n }
}
