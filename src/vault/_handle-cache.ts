import { type FileHandle, open } from 'node:fs/promises'

interface Entry {
  fh: Promise<FileHandle>
  /** Callers between acquire and release: a handle in use is never closed. */
  users: number
}

/**
 * Read-only file handles shared by concurrent users. A handle lives from `acquire` to the matching
 * `release`; at most `limit` handles stay open once idle (oldest closed first), and one closed while
 * idle is opened again by the next `acquire`. The user is counted before anything is closed, so a
 * handle handed out is never closed under its user, however small `limit` is (files in use may
 * exceed it). Vault files are immutable: a handle stays valid even if its file is deleted.
 */
export class HandleCache {
  readonly #open = new Map<string, Entry>()
  readonly #limit: number

  constructor(limit: number) {
    this.#limit = Math.max(0, limit)
  }

  /** The open handle of `path`, held until `release(path)`; rejects with the open's error. */
  async acquire(path: string): Promise<FileHandle> {
    let entry = this.#open.get(path)
    if (!entry) {
      entry = { fh: open(path, 'r'), users: 0 }
      entry.fh.catch(() => {})
      this.#open.set(path, entry)
    }
    entry.users++
    this.#trim()
    try {
      return await entry.fh
    } catch (err) {
      entry.users--
      if (this.#open.get(path) === entry) this.#open.delete(path)
      throw err
    }
  }

  /** Ends one use of `path`'s handle (from a successful `acquire`). */
  release(path: string): void {
    const entry = this.#open.get(path)
    if (!entry || entry.users <= 0) throw new Error(`HandleCache: ${path} released without acquire`)
    entry.users--
    this.#trim()
  }

  /** Closes an idle handle of `path` at once (its file is about to be deleted). */
  async drop(path: string): Promise<void> {
    const entry = this.#open.get(path)
    if (!entry || entry.users > 0) return
    this.#open.delete(path)
    await entry.fh.then((fh) => fh.close()).catch(() => {})
  }

  /** Handles open now (in use or idle). */
  get size(): number {
    return this.#open.size
  }

  /** Closes idle handles, oldest first, while more than `limit` are open. */
  #trim(): void {
    for (const [path, e] of this.#open) {
      if (this.#open.size <= this.#limit) break
      if (e.users > 0) continue
      this.#open.delete(path)
      e.fh.then((fh) => fh.close()).catch(() => {})
    }
  }

  /** Closes every handle; callers must have released theirs. */
  async close(): Promise<void> {
    const all = [...this.#open.values()]
    this.#open.clear()
    await Promise.all(all.map((e) => e.fh.then((fh) => fh.close()).catch(() => {})))
  }
}
