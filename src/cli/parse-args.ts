import { CairnError, parseSize } from '../util/index.js'
import type { CommandDef, OptionDef } from './command.js'
import { GLOBAL_OPTIONS } from './command.js'

/** The result of parsing a command line against a command. */
export interface ParsedArgs {
  args: Record<string, string | undefined>
  /** Every value of a variadic (last) argument. */
  lists: Record<string, string[]>
  opts: Record<string, unknown>
}

/** Parses `argv` (after the command words) for `cmd`; unknown options and missing arguments are errors. */
export function parseArgs(cmd: CommandDef, argv: string[]): ParsedArgs {
  const defs = [...(cmd.options ?? []), ...GLOBAL_OPTIONS]
  const byName = new Map(defs.map((d) => [d.name, d]))
  const byShort = new Map(defs.filter((d) => d.short).map((d) => [d.short!, d]))
  const opts: Record<string, unknown> = {}
  for (const d of defs) {
    if (d.default !== undefined) opts[d.name] = d.type === 'size' ? parseSize(d.default as string) : d.default
    if (d.type === 'list') opts[d.name] = []
  }
  const positionals: string[] = []
  const usage = (msg: string) => new CairnError('UsageError', `${msg} (see cairn ${cmd.name} --help)`)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    let def: OptionDef | undefined
    let inline: string | undefined
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
      inline = eq === -1 ? undefined : a.slice(eq + 1)
      if (name.startsWith('no-') && byName.get(name.slice(3))?.type === 'boolean') {
        opts[name.slice(3)] = false
        continue
      }
      def = byName.get(name)
      if (!def) throw usage(`Unknown option --${name}`)
    } else if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) {
      def = byShort.get(a.slice(1))
      if (!def) throw usage(`Unknown option ${a}`)
    } else {
      positionals.push(a)
      continue
    }
    if (def.type === 'boolean') {
      if (inline !== undefined && !['true', 'false'].includes(inline))
        throw usage(`--${def.name} takes no value`)
      opts[def.name] = inline !== 'false'
      continue
    }
    const raw = inline ?? argv[++i]
    if (raw === undefined) throw usage(`Option --${def.name} needs a value`)
    opts[def.name] = convert(def, raw, opts[def.name], usage)
  }
  const missing = defs.filter((d) => d.required && opts[d.name] === undefined).map((d) => `--${d.name}`)
  if (missing.length) throw usage(`Missing option ${missing.join(', ')}`)
  const specs = cmd.args ?? []
  const args: Record<string, string | undefined> = {}
  const lists: Record<string, string[]> = {}
  const last = specs.at(-1)
  if (positionals.length > specs.length && !last?.variadic)
    throw usage(`Unexpected argument "${positionals[specs.length]}"`)
  specs.forEach((s, idx) => {
    const v = positionals[idx]
    if (v === undefined && !s.optional) throw usage(`Missing argument ${s.name.toUpperCase()}`)
    args[s.name] = v
  })
  if (last?.variadic) lists[last.name] = positionals.slice(specs.length - 1)
  return { args, lists, opts }
}

function convert(def: OptionDef, raw: string, prev: unknown, usage: (m: string) => Error): unknown {
  switch (def.type) {
    case 'number': {
      // Number('') and Number(' ') are 0: a blank value is no number.
      const n = raw.trim() === '' ? Number.NaN : Number(raw)
      if (!Number.isFinite(n)) throw usage(`--${def.name} expects a number, not "${raw}"`)
      if (def.minInteger !== undefined && (!Number.isInteger(n) || n < def.minInteger))
        throw usage(`--${def.name} expects a whole number of at least ${def.minInteger}, not "${raw}"`)
      return n
    }
    case 'size':
      return parseSize(raw)
    case 'list':
      return [...(prev as string[]), raw]
    default:
      return raw
  }
}
