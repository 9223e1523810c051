import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../_util.js'
import type { BenchScenario } from '../bench-types.js'

const bin = join(fileURLToPath(new URL('../../../bin/cairn.js', import.meta.url)))

/** How long a CLI call takes to start and finish (`cairn version`), median of several. */
export const cliStartup: BenchScenario = {
  name: 'cli-startup',
  description: 'Wall time of `cairn version` and `cairn --help` (median of 15 runs)',
  async run(ctx) {
    const n = ctx.quick ? 5 : 15
    const results = []
    for (const args of [['version'], ['--help']]) {
      const times: number[] = []
      for (let i = 0; i < n; i++) times.push((await run(process.execPath, [bin, ...args])).ms)
      times.sort((a, b) => a - b)
      const median = times[Math.floor(times.length / 2)]!
      results.push({
        scenario: 'cli-startup',
        subject: 'cairn',
        metric: `cairn ${args.join(' ')}`,
        value: Math.round(median),
        unit: 'ms',
        target: '< 200 ms',
        pass: median < 200,
      })
    }
    return results
  },
}
