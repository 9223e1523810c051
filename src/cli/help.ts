import type { CommandDef, OptionDef } from './command.js'
import { GLOBAL_OPTIONS } from './command.js'

const optionLine = (o: OptionDef) => {
  const flag = `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.type === 'boolean' ? '' : ` ${o.value ?? o.type.toUpperCase()}`}`
  const dflt = o.required ? ' (required)' : o.default !== undefined ? ` (default ${o.default})` : ''
  return `  ${flag.padEnd(30)} ${o.help}${dflt}`
}

/** Help for one command. */
export function commandHelp(cmd: CommandDef): string {
  // Placeholders read as placeholders (`backup disk DISK`, not `backup disk disk`), whatever the key's case.
  const args = (cmd.args ?? [])
    .map((a) => {
      const name = a.name.toUpperCase()
      const one = a.optional ? `[${name}]` : name
      return a.variadic ? `${one} [${name}...]` : one
    })
    .join(' ')
  const lines = [`Usage: cairn ${cmd.name}${args ? ` ${args}` : ''} [options]`, '', cmd.summary]
  if (cmd.description) lines.push('', cmd.description)
  if (cmd.args?.length) {
    lines.push('', 'Arguments:')
    for (const a of cmd.args) lines.push(`  ${a.name.toUpperCase().padEnd(30)} ${a.help}`)
  }
  if (cmd.options?.length) {
    lines.push('', 'Options:')
    for (const o of cmd.options) lines.push(optionLine(o))
  }
  lines.push('', 'Global options:')
  for (const o of GLOBAL_OPTIONS) lines.push(optionLine(o))
  if (cmd.examples?.length) {
    lines.push('', 'Examples:')
    for (const e of cmd.examples) lines.push(`  ${e}`)
  }
  return `${lines.join('\n')}\n`
}

/** Help listing the commands under `prefix` (all commands when empty). */
export function groupHelp(commands: CommandDef[], prefix: string[]): string {
  const matching = commands.filter((c) => prefix.every((w, i) => c.name.split(' ')[i] === w))
  const w = Math.max(...matching.map((c) => c.name.length))
  const head =
    prefix.length === 0
      ? [
          'Cairn: backup and disaster recovery for virtual-machine disks.',
          '',
          'Usage: cairn COMMAND [options]',
          '',
          'Commands:',
        ]
      : [`Usage: cairn ${prefix.join(' ')} COMMAND [options]`, '', 'Commands:']
  const body = matching.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`)
  const tail = [
    '',
    'Run `cairn COMMAND --help` for the options of a command.',
    'Exit statuses: 0 ok, 1 failure, 2 usage, 3 not found, 4 conflict, 5 service unreachable, 6 integrity, 7 auth, 8 cancelled, 9 detached (Ctrl-C; the job goes on).',
  ]
  return `${[...head, ...body, ...tail].join('\n')}\n`
}
