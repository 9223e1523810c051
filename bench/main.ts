import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { has } from './_util.js'
import type { BenchResult } from './bench-types.js'
import { SCENARIOS } from './scenarios/index.js'

// npm run bench -- [--quick] [--list] [scenario...]
// Runs the named scenarios (all by default), prints a table and writes bench-results/results.json.

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
if (argv.includes('--list') || argv.includes('--help')) {
  console.log('Usage: npm run bench -- [--quick] [scenario...]\n\nScenarios:')
  for (const s of SCENARIOS) console.log(`  ${s.name.padEnd(22)} ${s.description}`)
  process.exit(0)
}
const names = argv.filter((a) => !a.startsWith('--'))
const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n))
if (unknown.length) {
  console.error(`Unknown scenario ${unknown.join(', ')}; see npm run bench -- --list`)
  process.exit(2)
}
const chosen = names.length ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS
const results: BenchResult[] = []
const baseTmp = process.env.CAIRN_BENCH_DIR ?? tmpdir()
for (const s of chosen) {
  const dir = mkdtempSync(join(baseTmp, `cairn-bench-${s.name}-`))
  console.error(`== ${s.name}: ${s.description}`)
  try {
    const r = await s.run({ dir, quick, log: (m) => console.error(`   ${m}`), has })
    results.push(...r)
    for (const x of r) console.error(`   ${x.subject} ${x.metric}: ${x.value} ${x.unit}`)
  } catch (err) {
    console.error(`   FAILED: ${(err as Error).stack}`)
    results.push({
      scenario: s.name,
      subject: 'cairn',
      metric: 'error',
      value: Number.NaN,
      unit: String(err),
      pass: false,
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const rows = results.map((r) => [
  r.scenario,
  r.subject,
  r.metric,
  Number.isFinite(r.value) ? String(r.value) : 'failed',
  r.unit,
  r.target ?? '',
  r.pass === undefined ? '' : r.pass ? 'yes' : 'NO',
])
const header = ['scenario', 'subject', 'metric', 'value', 'unit', 'target', 'met']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
console.log(line(header))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows) console.log(line(r))
mkdirSync('bench-results', { recursive: true })
const file = join('bench-results', 'results.json')
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), quick, results }, null, 2)}\n`)
console.error(`\nWrote ${file}`)
