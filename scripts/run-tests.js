#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's test runner.
// Usage: node scripts/run-tests.js [--list] [substring...]   (only files whose path contains a substring;
// --list prints the files in the order they start, and runs none)
// The runner starts files in the order given, CAIRN_TEST_CONCURRENCY (2) at a time: the longest start
// first (LONGEST, slowest first, from the per-file times of the last fresh-clone run), then the other
// end-to-end files under test/, then the unit files under src/ (short ones that fill the slots at the
// end). A long file started last would leave the other slot idle while it runs alone.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  )

/** The longest files, slowest first (file names without .test.js). */
const LONGEST = [
  'vault',
  'jobs',
  'protection-safety',
  'vault-sixty-points',
  'scale-out-fleet',
  'file-recovery-mount',
  'portal',
  'backup-resume',
  '_image-stream',
  'object-store-faults',
  'auth-audit',
  'file-recovery-browse',
  'disk-cli-import',
  'multi-user-authorization',
  'auth-login',
  'vault-corruption',
  'tls',
  'ext-file-system',
  'jobs-restart',
  'vault-keys',
  'azure-clients',
  'backup-restart',
  'protection-cli',
  'vault-copy',
  'vault-object-cache',
]
const rank = (f) => {
  const i = LONGEST.indexOf(
    f
      .split('/')
      .at(-1)
      .replace(/\.test\.js$/, ''),
  )
  return i === -1 ? LONGEST.length : i
}

const list = process.argv.includes('--list')
const filters = process.argv.slice(2).filter((a) => a !== '--list')
const matches = (f) => filters.length === 0 || filters.some((s) => f.includes(s))
const files = [...walk('dist/test').sort(), ...walk('dist/src').sort()]
  .filter(matches)
  .map((f, i) => ({ f, key: [rank(f), i] }))
  .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1])
  .map(({ f }) => f)
if (files.length === 0) {
  console.error('No test files matched.')
  process.exit(1)
}
if (list) {
  console.log(files.join('\n'))
  process.exit(0)
}
const res = spawnSync(
  process.execPath,
  [
    '--enable-source-maps',
    '--test',
    '--test-reporter=spec',
    `--test-concurrency=${process.env.CAIRN_TEST_CONCURRENCY ?? 2}`,
    ...files,
  ],
  { stdio: 'inherit' },
)
process.exit(res.status ?? 1)
