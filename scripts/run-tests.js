#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's test runner.
// Usage: node scripts/run-tests.js [substring...]   (only files whose path contains a substring)
// The end-to-end files under test/ start first: they are the long ones, and a long file started last
// would leave one of the runner's slots idle at the end. CAIRN_TEST_CONCURRENCY sets the slots (2).
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  )

const filters = process.argv.slice(2)
const matches = (f) => filters.length === 0 || filters.some((s) => f.includes(s))
const files = [...walk('dist/test').sort(), ...walk('dist/src').sort()].filter(matches)
if (files.length === 0) {
  console.error('No test files matched.')
  process.exit(1)
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
