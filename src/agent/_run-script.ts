import { spawn } from 'node:child_process'
import type { StepReport } from './agent-protocol.js'

/** How one script is run: its arguments, tries and per-try time limit. */
export interface ScriptRun {
  path: string
  params: string[]
  retries: number
  timeoutMs: number
}

interface TryResult {
  ok: boolean
  timedOut: boolean
  detail: string
}

/** Keeps the last bytes of a script's output for error messages. */
const TAIL = 400

function runOnce(path: string, params: string[], timeoutMs: number): Promise<TryResult> {
  return new Promise((resolve) => {
    // A process group of its own, so a timeout kills the script and everything it started.
    const child = spawn(path, params, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-TAIL)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ ok: false, timedOut: false, detail: err.message })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const tail = output.trim()
      if (timedOut) resolve({ ok: false, timedOut, detail: `no answer within ${timeoutMs / 1000} s` })
      else if (code === 0) resolve({ ok: true, timedOut, detail: tail })
      else
        resolve({
          ok: false,
          timedOut,
          detail: `exit ${signal ?? code}${tail ? `: ${tail.split('\n').at(-1)}` : ''}`,
        })
    })
  })
}

/** Runs a script up to 1 + retries times; reports its tries and the last failure, never throws. */
export async function runScript(run: ScriptRun): Promise<StepReport> {
  const started = Date.now()
  let last: TryResult = { ok: false, timedOut: false, detail: 'not run' }
  let attempts = 0
  for (let i = 0; i <= run.retries; i++) {
    attempts++
    last = await runOnce(run.path, run.params, run.timeoutMs)
    if (last.ok) break
  }
  const report: StepReport = {
    status: last.ok ? 'Success' : 'Error',
    attempts,
    durationMs: Date.now() - started,
  }
  if (!last.ok) {
    report.error = last.timedOut ? 'ScriptTimeout' : 'ScriptFailed'
    report.message = `"${run.path}" failed ${attempts === 1 ? 'its only try' : `all ${attempts} tries`}; last: ${last.detail}`
  }
  return report
}
