import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type CommandDef, LIMIT_OPTION } from './command.js'
import { parseArgs } from './parse-args.js'

const cmd: CommandDef = {
  name: 'disk create',
  summary: 'test',
  args: [
    { name: 'NAME', help: 'disk' },
    { name: 'EXTRA', help: 'optional', optional: true },
  ],
  options: [
    { name: 'size', type: 'size', help: 'size' },
    { name: 'count', type: 'number', help: 'n', default: 3 },
    { name: 'tag', type: 'list', help: 'tags' },
    { name: 'force', short: 'f', type: 'boolean', help: 'force' },
  ],
  async run() {},
}

describe('parseArgs', () => {
  it('reads positionals, sizes, numbers, repeated lists and booleans', () => {
    const p = parseArgs(cmd, [
      'os',
      '--size',
      '1GiB',
      '--count=5',
      '--tag',
      'a',
      '--tag',
      'b',
      '-f',
      '--json',
    ])
    assert.deepEqual(p.args, { NAME: 'os', EXTRA: undefined })
    assert.equal(p.opts.size, 1024 ** 3)
    assert.equal(p.opts.count, 5)
    assert.deepEqual(p.opts.tag, ['a', 'b'])
    assert.equal(p.opts.force, true)
    assert.equal(p.opts.json, true)
  })

  it('refuses a command line without a required option, naming it', () => {
    const needs: CommandDef = {
      ...cmd,
      options: [{ name: 'vault', type: 'string', help: 'v', required: true }],
    }
    assert.throws(() => parseArgs(needs, ['os']), /Missing option --vault/)
    assert.equal(parseArgs(needs, ['os', '--vault', 'v1']).opts.vault, 'v1')
  })

  it('applies defaults and --no- for booleans', () => {
    const p = parseArgs(cmd, ['os', '--no-force'])
    assert.equal(p.opts.count, 3)
    assert.equal(p.opts.force, false)
  })

  it('refuses a blank number, and a --limit that is not a whole number of at least 1', () => {
    const limited: CommandDef = { ...cmd, options: [...cmd.options!, LIMIT_OPTION] }
    for (const argv of [
      ['os', '--count', ''],
      ['os', '--count= '],
      ['os', '--limit', '0'],
      ['os', '--limit', '-1'],
      ['os', '--limit', '1.5'],
      ['os', '--limit', ''],
    ]) {
      assert.throws(
        () => parseArgs(limited, argv),
        (e: Error & { code?: string }) =>
          e.code === 'UsageError' && /--(count|limit) expects/.test(e.message),
        argv.join(' '),
      )
    }
    assert.equal(parseArgs(limited, ['os', '--limit', '1']).opts.limit, 1)
    assert.equal(parseArgs(limited, ['os', '--count', '0']).opts.count, 0)
  })

  it('names a missing argument as its help does, in capitals', () => {
    const lower: CommandDef = { ...cmd, args: [{ name: 'disk', help: 'disk' }] }
    assert.throws(() => parseArgs(lower, []), /Missing argument DISK /)
  })

  it('refuses unknown options, missing values, missing and extra arguments with UsageError', () => {
    for (const argv of [['os', '--nope'], ['os', '--size'], [], ['a', 'b', 'c'], ['os', '--size', 'big']]) {
      assert.throws(
        () => parseArgs(cmd, argv),
        (e: Error & { code?: string }) => ['UsageError', 'InvalidSize'].includes(e.code ?? ''),
      )
    }
  })
})
