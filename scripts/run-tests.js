#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js), each in its own node process, and prints
// each file's wall and CPU seconds (the file's process and every process it started and waited for).
// Usage: node scripts/run-tests.js [--list] [substring...]   (only files whose path contains a substring;
// --list prints the files in the order they start, and runs none)
// Environment: CAIRN_TEST_CONCURRENCY (default 3): at most this many files at once;
// CAIRN_TEST_TIMES=FILE also writes the per-file times there as JSON.
// Order: the longest start first (LONGEST, slowest first, from measured per-file times), then the other
// end-to-end files under test/, then the unit files under src/ (short ones that fill the slots at the
// end). A long file started last would leave the other slots idle while it runs alone.
// A file runs as `node FILE` (node:test runs its tests and reports them, and the exit status is 1 when
// one fails): `node --test FILE` would start a second process per file (0.2 s of CPU each).
// Load: a file marked CPU-bound in LONGEST counts as a whole core; the others mostly wait on child
// processes, disks and sockets and count as half. Files start while the running ones count under
// CORES (2), so two CPU-bound files never run beside a third, and waiting files overlap.
// Each file's output is printed whole when it ends (parallel files do not interleave), then a summary.
// PostgreSQL: when two or more of the files loop over the catalog dialects, one scratch cluster serves
// them all (CAIRN_TEST_POSTGRES; each test still gets its own database) instead of an initdb per file.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  )

/**
 * The longest files, most CPU first (file names without .test.js), from the per-file times of a run at
 * load 15-25 (CPU seconds beside each); `cpu`: busy a core most of its run (the others mostly wait on
 * timers, child processes and sockets).
 */
const LONGEST = [
  { name: 'vault', cpu: true }, // 108
  { name: 'jobs', cpu: true }, // 54
  { name: 'protection-safety', cpu: true }, // 52
  { name: 'backup-resume', cpu: true }, // 38
  { name: 'vault-sixty-points', cpu: true },
  { name: 'scale-out-fleet', cpu: false }, // 29, of which a wait for the coming minute
  { name: 'file-recovery-browse', cpu: true }, // 29
  { name: 'file-recovery-mount', cpu: true }, // 28
  { name: 'vault-copy', cpu: true }, // 27.5
  { name: 'disk-cli-import', cpu: true }, // 27
  { name: 'auth-audit', cpu: true }, // 27
  { name: 'backup-restart', cpu: true }, // 26.5
  { name: 'jobs-restart', cpu: true }, // 26
  { name: 'vault-object-cache', cpu: true }, // 26
  { name: 'vault-keys', cpu: true }, // 25
  { name: 'tls', cpu: true }, // 25
  { name: 'ext-file-system', cpu: true }, // 23.5 (mke2fs -d of 10,000 files)
  { name: 'multi-user-authorization', cpu: true }, // 21.5
  { name: 'object-store-faults', cpu: false }, // 19.4, slow answers and timeouts
  { name: 'auth-login', cpu: true }, // 19
  { name: 'portal', cpu: true }, // 19
  { name: 'api-lists', cpu: true }, // 16
  { name: 'vault-corruption', cpu: true }, // 15
  { name: 'protection-cli', cpu: true }, // 13
]
const CORES = 2
const baseName = (f) =>
  f
    .split('/')
    .at(-1)
    .replace(/\.test\.js$/, '')
const rank = (f) => {
  const i = LONGEST.findIndex((l) => l.name === baseName(f))
  return i === -1 ? LONGEST.length : i
}
const weight = (f) => (LONGEST.find((l) => l.name === baseName(f))?.cpu ? 1 : 0.5)

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

const maxFiles = Number(process.env.CAIRN_TEST_CONCURRENCY ?? 3)
/** bash's `times` prints the shell's, then its children's, user and system time: `0m1.250s 0m0.031s`. */
const seconds = (s) => {
  const m = /^(\d+)m([\d.]+)s$/.exec(s)
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0
}

/** Runs one file; resolves with its output, exit status and times. */
const runFile = (f) =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(
      'bash',
      [
        '-c',
        '"$@"; s=$?; times >&3; exit $s',
        'run-test',
        process.execPath,
        '--enable-source-maps',
        '--test-reporter=spec',
        f,
      ],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    )
    const out = []
    const times = []
    child.stdout.on('data', (b) => out.push(b))
    child.stderr.on('data', (b) => out.push(b))
    child.stdio[3].on('data', (b) => times.push(b))
    child.on('close', (code, signal) => {
      const lines = Buffer.concat(times).toString().trim().split('\n')
      const [user = '', sys = ''] = (lines[1] ?? '').split(' ')
      resolve({
        f,
        status: code ?? (signal ? 1 : 0),
        output: Buffer.concat(out).toString(),
        wall: (performance.now() - started) / 1000,
        cpu: seconds(user) + seconds(sys),
      })
    })
  })

const started = performance.now()
const catalogFiles = files.filter((f) => readFileSync(f, 'utf8').includes('CATALOG_DIALECTS')).length
if (catalogFiles >= 2 && !process.env.CAIRN_TEST_POSTGRES && process.env.CAIRN_TEST_CATALOGS !== 'sqlite') {
  const { PostgresScratchCluster } = await import('../dist/src/catalog/postgres-scratch-cluster.js')
  if (PostgresScratchCluster.unavailable() === undefined) {
    const cluster = PostgresScratchCluster.start()
    process.env.CAIRN_TEST_POSTGRES = cluster.shared
    process.once('exit', () => cluster.stop())
    for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130))
  }
}
const results = []
const queue = [...files]
const running = new Map()
const load = () => [...running.values()].reduce((a, b) => a + b, 0)
await new Promise((done) => {
  const fill = () => {
    while (queue.length > 0 && running.size < maxFiles) {
      // The first waiting file that fits beside the running ones (always one when none runs).
      const i = queue.findIndex((f) => running.size === 0 || load() + weight(f) <= CORES)
      if (i === -1) break
      const [f] = queue.splice(i, 1)
      running.set(f, weight(f))
      runFile(f).then((r) => {
        running.delete(f)
        results.push(r)
        process.stdout.write(r.output)
        console.log(
          `# ${r.status === 0 ? 'ok' : 'FAILED'} ${r.f}  ${r.wall.toFixed(1)} s wall, ${r.cpu.toFixed(1)} s CPU\n`,
        )
        fill()
      })
    }
    if (running.size === 0 && queue.length === 0) done()
  }
  fill()
})

const count = (word) =>
  results.reduce(
    (n, r) =>
      n +
      [...r.output.matchAll(new RegExp(`^ℹ ${word} (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0),
    0,
  )
const failed = results.filter((r) => r.status !== 0)
const slowest = [...results].sort((a, b) => b.wall - a.wall).slice(0, 30)
console.log('Slowest files (wall s, CPU s):')
for (const r of slowest)
  console.log(`  ${r.wall.toFixed(1).padStart(6)} ${r.cpu.toFixed(1).padStart(6)}  ${r.f}`)
const wall = (performance.now() - started) / 1000
const cpu = results.reduce((a, r) => a + r.cpu, 0)
console.log(
  `${results.length} files, ${count('tests')} tests: ${count('pass')} passed, ${count('fail')} failed, ` +
    `${count('skipped')} skipped, ${count('todo')} todo in ${wall.toFixed(1)} s wall, ${cpu.toFixed(1)} s CPU`,
)
if (process.env.CAIRN_TEST_TIMES) {
  writeFileSync(
    process.env.CAIRN_TEST_TIMES,
    JSON.stringify(
      results.map(({ f, status, wall, cpu }) => ({ f, status, wall, cpu })),
      null,
      1,
    ),
  )
}
for (const r of failed) console.log(`FAILED: ${r.f}`)
process.exit(failed.length > 0 ? 1 : 0)
