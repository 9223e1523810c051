import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { CairnError } from '../util/index.js'

/**
 * Keeps a second service off a data folder: `cairn.lock` holds the owner's pid. A lock whose process
 * is gone (a crash, kill -9) is taken over.
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
        writeSync(fd, `${process.pid}\n`)
        closeSync(fd)
        this.#held = true
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const owner = this.#owner()
      if (owner !== undefined && owner !== process.pid && alive(owner)) {
        throw new CairnError(
          'DataFolderLocked',
          `Cannot start: the data folder ${join(this.#path, '..')} is in use by another Cairn service (pid ${owner})`,
        )
      }
      rmSync(this.#path, { force: true })
    }
    throw new CairnError('DataFolderLocked', `Cannot start: cannot take the lock ${this.#path}`)
  }

  release(): void {
    if (!this.#held) return
    if (this.#owner() === process.pid) rmSync(this.#path, { force: true })
    this.#held = false
  }

  #owner(): number | undefined {
    try {
      const n = Number.parseInt(readFileSync(this.#path, 'utf8'), 10)
      return Number.isFinite(n) ? n : undefined
    } catch {
      return undefined
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
