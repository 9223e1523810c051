import { execFile } from 'node:child_process'
import type { StepReport } from './agent-protocol.js'

function fsfreeze(flag: '--freeze' | '--unfreeze', mountPoint: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('fsfreeze', [flag, mountPoint], { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message))
      else resolve()
    })
  })
}

/** Freezes the mount points in order; on a failure thaws those already frozen. Never throws. */
export async function freezeAll(mountPoints: string[], timeoutMs: number): Promise<StepReport> {
  const started = Date.now()
  const frozen: string[] = []
  for (const mp of mountPoints) {
    try {
      await fsfreeze('--freeze', mp, timeoutMs)
      frozen.push(mp)
    } catch (err) {
      await thawAll(frozen, timeoutMs)
      return {
        status: 'Error',
        mountPoints: [],
        durationMs: Date.now() - started,
        error: 'FsFreezeFailed',
        message: `Cannot freeze "${mp}": ${(err as Error).message}`,
      }
    }
  }
  return { status: 'Success', mountPoints: frozen, durationMs: Date.now() - started }
}

/** Thaws the mount points in reverse order, trying every one even after a failure. Never throws. */
export async function thawAll(mountPoints: string[], timeoutMs: number): Promise<StepReport> {
  const started = Date.now()
  const thawed: string[] = []
  const failures: string[] = []
  for (const mp of [...mountPoints].reverse()) {
    try {
      await fsfreeze('--unfreeze', mp, timeoutMs)
      thawed.push(mp)
    } catch (err) {
      failures.push(`"${mp}": ${(err as Error).message}`)
    }
  }
  const report: StepReport = {
    status: failures.length === 0 ? 'Success' : 'Error',
    mountPoints: thawed,
    durationMs: Date.now() - started,
  }
  if (failures.length > 0) {
    report.error = 'FsThawFailed'
    report.message = `Cannot thaw ${failures.join('; ')}`
  }
  return report
}
