#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's test runner.
// Usage: node scripts/run-tests.js [substring...]   (only files whose path contains a substring)
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  )

const filters = process.argv.slice(2)
const files = [...walk('dist/src'), ...walk('dist/test')]
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()
if (files.length === 0) {
  console.error('No test files matched.')
  process.exit(1)
}
const reporter = process.env.CI || !process.stdout.isTTY ? 'spec' : 'spec'
const res = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', `--test-reporter=${reporter}`, '--test-concurrency=2', ...files],
  { stdio: 'inherit' },
)
process.exit(res.status ?? 1)
