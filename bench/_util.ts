import { spawn, spawnSync } from 'node:child_process'
import type { BenchResult } from './bench-types.js'

/** Milliseconds taken by fn. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<{ stdout: string; stderr: string; ms: number; maxRssKiB: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now()
    // /usr/bin/time is not always there; measure peak memory via /proc after the fact is unreliable, so use
    // the resource usage node reports for the child.
    const child = spawn(cmd, args, { env: { ...process.env, ...options.env }, cwd: options.cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    if (options.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - t
      const maxRssKiB =
        (child as unknown as { resourceUsage?: () => { maxRSS: number } }).resourceUsage?.().maxRSS ?? 0
      if (code === 0) resolve({ stdout, stderr, ms, maxRssKiB })
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`))
    })
  })
}

/** True when `command` is on PATH. */
export function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0
}

/** Peak resident memory of the current process so far, in MiB (from /proc). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024
}

/**
 * A maker of one scenario's result rows (subject cairn): the value rounded to `decimals` places, the
 * target and whether it was met only when given.
 */
export function resultRow(scenario: string, decimals = 2) {
  const scale = 10 ** decimals
  return (metric: string, value: number, unit: string, target?: string, pass?: boolean): BenchResult => ({
    scenario,
    subject: 'cairn',
    metric,
    value: Math.round(value * scale) / scale,
    unit,
    ...(target ? { target } : {}),
    ...(pass === undefined ? {} : { pass }),
  })
}
