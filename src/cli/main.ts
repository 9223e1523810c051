import { CairnError } from '../util/index.js'
import { ApiClient, DEFAULT_URL } from './api-client.js'
import type { CommandDef } from './command.js'
import { COMMANDS } from './commands/index.js'
import { commandHelp, groupHelp } from './help.js'
import { Output } from './output.js'
import { parseArgs } from './parse-args.js'

/** Finds the command whose words start argv; longest match wins. */
function findCommand(
  commands: CommandDef[],
  argv: string[],
): { cmd?: CommandDef; rest: string[]; words: string[] } {
  const words: string[] = []
  for (const a of argv) {
    if (a.startsWith('-')) break
    words.push(a)
  }
  for (let n = words.length; n > 0; n--) {
    const name = words.slice(0, n).join(' ')
    const cmd = commands.find((c) => c.name === name)
    if (cmd) return { cmd, rest: argv.slice(n), words }
  }
  return { rest: argv, words }
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: string[], commands: CommandDef[] = COMMANDS): Promise<number> {
  const json = argv.includes('--json')
  const out = new Output(json)
  const { cmd, rest, words } = findCommand(commands, argv)
  const wantsHelp = argv.includes('--help') || argv.includes('-h')
  if (!cmd) {
    const group =
      words.length > 0 && commands.some((c) => c.name.startsWith(`${words[0]} `)) ? [words[0]!] : []
    if (argv.length === 0 || wantsHelp || (group.length > 0 && words.length === 1)) {
      process.stdout.write(groupHelp(commands, group))
      return argv.length === 0 || wantsHelp ? 0 : 2
    }
    return fail(out, new CairnError('UsageError', `Unknown command "${words.join(' ')}" (see cairn --help)`))
  }
  if (wantsHelp) {
    process.stdout.write(commandHelp(cmd))
    return 0
  }
  const controller = new AbortController()
  const onSigint = () => controller.abort(new CairnError('Cancelled', 'Interrupted'))
  if (!cmd.local) process.once('SIGINT', onSigint)
  try {
    const { args, opts } = parseArgs(cmd, rest)
    const client = new ApiClient((opts.url as string | undefined) ?? process.env.CAIRN_URL ?? DEFAULT_URL)
    const code = await cmd.run({ args, opts, client, out, signal: controller.signal })
    return code ?? 0
  } catch (err) {
    return fail(out, err)
  } finally {
    process.off('SIGINT', onSigint)
  }
}

function fail(out: Output, err: unknown): number {
  if (err instanceof CairnError) {
    if (out.json) process.stderr.write(`${JSON.stringify(err.toJSON())}\n`)
    else process.stderr.write(`cairn: ${err.message} [${err.code}]\n`)
    return err.exitStatus
  }
  process.stderr.write(`cairn: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  return 1
}
