import { randomBytes } from 'node:crypto'
import { type FileHandle, link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { CairnError, ioError } from '../util/index.js'
import { openDirect } from './_direct-write.js'
import { HandleCache } from './_handle-cache.js'
import { checkObjectName } from './_object-name.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

const TMP = '.tmp'
/** Objects from this size on are written past the page cache. */
const DIRECT_FROM = 1024 * 1024

/**
 * A vault backend on a local folder. Writes go to `.tmp/` first, are fsynced, then renamed (put) or
 * hard-linked (create: the link fails when the name exists, which makes create-if-absent atomic).
 */
export class FsVaultBackend implements VaultBackend {
  readonly kind = 'fs'
  readonly #root: string
  /** Open read handles of recently read objects (packs are immutable, so a handle never goes stale). */
  readonly #handles: HandleCache

  /** `openFiles`: read handles kept open while idle (default 32). */
  constructor(root: string, options: { openFiles?: number } = {}) {
    this.#root = root
    this.#handles = new HandleCache(options.openFiles ?? 32)
  }

  get location(): string {
    return this.#root
  }

  async list(prefix: string): Promise<BackendObject[]> {
    const out: BackendObject[] = []
    const walk = async (rel: string): Promise<void> => {
      let entries: import('node:fs').Dirent[]
      try {
        entries = await readdir(join(this.#root, rel), { withFileTypes: true })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
        throw err
      }
      for (const e of entries) {
        const name = rel === '' ? e.name : `${rel}/${e.name}`
        if (name === TMP) continue
        if (e.isDirectory()) {
          if (prefix.startsWith(`${name}/`) || name.startsWith(prefix) || prefix === '') await walk(name)
        } else if (name.startsWith(prefix)) {
          try {
            const s = await stat(join(this.#root, name))
            out.push({ name, size: s.size, modified: s.mtimeMs })
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
          }
        }
      }
    }
    await walk('')
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async get(name: string): Promise<Buffer> {
    let fh: FileHandle | undefined
    try {
      fh = await open(this.#path(name), 'r')
      return await fh.readFile()
    } catch (err) {
      throw this.#missing(err, name)
    } finally {
      await fh?.close()
    }
  }

  async getRange(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const path = this.#path(name)
    let fh: FileHandle
    try {
      fh = await this.#handles.acquire(path)
    } catch (err) {
      throw this.#missing(err, name)
    }
    try {
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafeSlow(length)
      let done = 0
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      return done === length ? buf : buf.subarray(0, done)
    } catch (err) {
      throw this.#missing(err, name)
    } finally {
      this.#handles.release(path)
    }
  }

  localPath(name: string): string {
    return this.#path(name)
  }

  /** Deletes temporary files older than `olderThanMs` (left by a killed writer); returns how many. */
  async sweepTemporary(olderThanMs: number): Promise<number> {
    const dir = join(this.#root, TMP)
    let names: string[]
    try {
      names = await readdir(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
      throw err
    }
    let n = 0
    for (const name of names) {
      try {
        if (Date.now() - (await stat(join(dir, name))).mtimeMs > olderThanMs) {
          await unlink(join(dir, name))
          n++
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    return n
  }

  /** Closes the cached read handles. */
  async close(): Promise<void> {
    await this.#handles.close()
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const tmp = await this.#writeTemp(name, data)
    const target = this.#path(name)
    try {
      await mkdir(dirname(target), { recursive: true })
      await rename(tmp, target)
      await syncDir(dirname(target))
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw this.#full(err, name)
    }
  }

  async create(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<boolean> {
    const tmp = await this.#writeTemp(name, data)
    const target = this.#path(name)
    try {
      await mkdir(dirname(target), { recursive: true })
      await link(tmp, target)
      await syncDir(dirname(target))
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw this.#full(err, name)
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  /** A full file system as VaultFull (a write that failed leaves nothing behind). */
  #full(err: unknown, name: string): unknown {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOSPC' && code !== 'EDQUOT') return err
    return new CairnError(
      'VaultFull',
      `Cannot write "${name}" to the vault at ${this.#root}: its file system is full (${(err as Error).message}); free space there, run \`cairn vault gc\` or prune recovery points`,
      { cause: err },
    )
  }

  async delete(name: string): Promise<void> {
    await this.#handles.drop(this.#path(name))
    try {
      await unlink(this.#path(name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  #path(name: string): string {
    checkObjectName(name)
    return join(this.#root, name)
  }

  /** Writes `data` to a new temporary file and fsyncs it; on failure the file is gone again. */
  async #writeTemp(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<string> {
    const dir = join(this.#root, TMP)
    const tmp = join(dir, randomBytes(12).toString('hex'))
    try {
      await mkdir(dir, { recursive: true })
      await this.#writeFile(tmp, data)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw this.#full(err, name)
    }
    return tmp
  }

  async #writeFile(tmp: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const parts = data instanceof Uint8Array ? [data] : data
    if (parts.reduce((n, p) => n + p.length, 0) >= DIRECT_FROM) {
      // Packs bypass the page cache (see _direct-write.ts).
      const file = await openDirect(tmp, 'wx')
      try {
        await file.write(0, parts)
        await file.fh.sync()
      } finally {
        await file.close()
      }
      return
    }
    const fh = await open(tmp, 'wx')
    try {
      // writev takes at most IOV_MAX (1024) buffers a call.
      for (let i = 0; i < parts.length; i += 1024) {
        let batch = parts.slice(i, i + 1024)
        let left = batch.reduce((n, p) => n + p.length, 0)
        while (left > 0) {
          const { bytesWritten } = await fh.writev(batch)
          left -= bytesWritten
          let skip = bytesWritten
          while (skip > 0 && batch.length > 0 && batch[0]!.length <= skip) {
            skip -= batch[0]!.length
            batch = batch.slice(1)
          }
          if (skip > 0 && batch.length > 0) batch = [batch[0]!.subarray(skip), ...batch.slice(1)]
        }
      }
      await fh.sync()
    } finally {
      await fh.close()
    }
  }

  #missing(err: unknown, name: string): unknown {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new CairnError(
        'VaultObjectMissing',
        `Cannot read "${name}": it is missing from the vault at ${this.#root}`,
      )
    }
    return ioError(err, `Cannot read "${name}" of the vault at ${this.#root}`)
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
