import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { CairnError } from '../util/index.js'

/**
 * Keeps a second service off a data folder: `cairn.lock` holds the owner's pid and its start time
 * (from /proc, so a pid used again by another process does not count). A lock whose process is gone
 * (a crash, kill -9) is taken over, and so is one whose process is a zombie: a process killed with
 * `kill -9` stays a zombie until its parent collects it (1–2 s after a kill in a shell script), yet it
 * runs no code and holds nothing.
 */
export class DataFolderLock {
  readonly #path: string
  #held = false

  constructor(dataDir: string) {
    this.#path = join(dataDir, 'cairn.lock')
  }

  /** Takes the lock or throws DataFolderLocked naming the owner. */
  acquire(): void {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(this.#path, 'wx', 0o644)
        const started = processStat(process.pid)?.startTime
        writeSync(fd, started === undefined ? `${process.pid}\n` : `${process.pid} ${started}\n`)
        closeSync(fd)
        this.#held = true
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const owner = this.#owner()
      if (owner !== undefined && owner.pid !== process.pid && alive(owner)) {
        throw new CairnError(
          'DataFolderLocked',
          `Cannot start: the data folder ${join(this.#path, '..')} is in use by another Cairn service (pid ${owner.pid})`,
        )
      }
      rmSync(this.#path, { force: true })
    }
    throw new CairnError('DataFolderLocked', `Cannot start: cannot take the lock ${this.#path}`)
  }

  release(): void {
    if (!this.#held) return
    if (this.#owner()?.pid === process.pid) rmSync(this.#path, { force: true })
    this.#held = false
  }

  /** The pid (and start time, when written) in the lock file. */
  #owner(): { pid: number; startTime?: string } | undefined {
    try {
      const [pid, startTime] = readFileSync(this.#path, 'utf8').trim().split(/\s+/)
      const n = Number.parseInt(pid ?? '', 10)
      if (!Number.isFinite(n)) return undefined
      return startTime === undefined ? { pid: n } : { pid: n, startTime }
    } catch {
      return undefined
    }
  }
}

/** True when the lock's owner still runs: it exists, is no zombie, and started when the lock says. */
function alive(owner: { pid: number; startTime?: string }): boolean {
  try {
    process.kill(owner.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const stat = processStat(owner.pid)
  if (stat === undefined) return true // no /proc: the signal check is all there is
  if (stat.state === 'Z' || stat.state === 'X') return false
  return owner.startTime === undefined || owner.startTime === stat.startTime
}

/** State letter and start time (clock ticks since boot) of a process from /proc/PID/stat, if readable. */
function processStat(pid: number): { state: string; startTime: string } | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const state = fields[0]
  const startTime = fields[19]
  return state === undefined || startTime === undefined ? undefined : { state, startTime }
}
