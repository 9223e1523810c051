import { randomBytes } from 'node:crypto'
import { link, lstat, open, realpath, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path'
import { CairnError } from './cairn-error.js'

// The one gate between an API request and a file of the service's host. Every API field that names a
// host path (disk import/export, backup from a file, restore into a file) goes through HostPaths:
// server-side paths are off unless the operator names roots, and a path that passes is inside a root
// after every symbolic link is resolved, names a regular file, and lies outside the data folder and
// every vault. The rules are listed in docs/security.md.

/** True when `path` is `folder` or inside it (both absolute and normalized). */
export function isWithin(path: string, folder: string): boolean {
  if (path === folder) return true
  const f = folder.endsWith(sep) ? folder : folder + sep
  return path.startsWith(f)
}

/**
 * The real path of `path` (absolute, `..` taken lexically first): symbolic links of the longest
 * existing prefix resolved, the missing rest appended as given. The answer is the path to use, not only
 * to check.
 */
export async function realpathOfNearest(path: string): Promise<string> {
  const missing: string[] = []
  let at = normalize(path)
  for (;;) {
    try {
      const real = await realpath(at)
      return missing.length === 0 ? real : join(real, ...missing.reverse())
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
      const parent = dirname(at)
      if (parent === at) return normalize(path)
      missing.push(basename(at))
      at = parent
    }
  }
}

/** Roots and forbidden folders of HostPaths. */
export interface HostPathsOptions {
  /** Folders the service may read files from (disk import, backup from a file). */
  importRoots: readonly string[]
  /** Folders the service may write files into (disk export, restore into a file). */
  exportRoots: readonly string[]
  /** The data folder: never read or written through a host path. */
  dataDir: string
  /** The folders of the service's vaults, asked at every check: never read or written either. */
  vaultFolders: () => Promise<readonly string[]>
}

type Direction = 'import' | 'export'

/**
 * Confines the host paths of API requests to the operator's roots. `checkImport` answers the real path
 * of a file that may be read; `export` writes a file through a temporary name beside it and renames it
 * into place. Breaking a rule throws `PathNotAllowed` naming the rule.
 */
export class HostPaths {
  readonly #options: HostPathsOptions

  constructor(options: HostPathsOptions) {
    this.#options = options
  }

  /** True when the operator configured roots for `direction`. */
  enabled(direction: Direction): boolean {
    return this.#roots(direction).length > 0
  }

  /**
   * The real path of `path`, a regular file under an import root that the service may read. The file is
   * to be opened with O_NOFOLLOW (the engines do), so a link swapped in afterwards is not followed.
   */
  async checkImport(path: string): Promise<string> {
    const what = `read "${path}"`
    const given = this.#absolute(path, 'import', what)
    // Confined first, so that nothing is told about files outside the roots, not even whether they exist.
    await this.#confine(await realpathOfNearest(given), 'import', what)
    let st: Awaited<ReturnType<typeof lstat>>
    try {
      st = await lstat(given)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR')
        throw new CairnError('FileNotFound', `Cannot ${what}: it does not exist`)
      throw err
    }
    if (st.isSymbolicLink()) refuse(what, 'it is a symbolic link; name the file itself')
    const real = await realpath(given)
    await this.#confine(real, 'import', what)
    const target = await stat(real)
    if (!target.isFile()) refuse(what, `it is ${kindOf(target)}, not a regular file`)
    return real
  }

  /**
   * The real path `path` would be written at, after checking every export rule; `export` checks them
   * again when it writes. Answers without touching the file system beyond stat calls.
   */
  async checkExport(path: string, options: { overwrite?: boolean } = {}): Promise<string> {
    const what = `write "${path}"`
    const given = this.#absolute(path, 'export', what)
    const name = basename(given)
    if (name === '' || name === '.' || name === '..' || given.endsWith(sep))
      refuse(what, 'it names a folder, not a file')
    const folder = await realpathOfNearest(dirname(given))
    const target = join(folder, name)
    await this.#confine(target, 'export', what)
    let st: Awaited<ReturnType<typeof stat>>
    try {
      st = await stat(folder)
    } catch {
      throw new CairnError('FileNotFound', `Cannot ${what}: its folder ${dirname(given)} does not exist`)
    }
    if (!st.isDirectory()) refuse(what, `${dirname(given)} is not a folder`)
    await this.#checkTarget(target, options, what)
    return target
  }

  /**
   * Writes the file `path` under an export root: `write` fills a new temporary file beside it (the
   * name it is given does not exist yet; create it exclusively), then the file is renamed into place.
   * An existing file is replaced only with `overwrite`; anything but a regular file never is.
   */
  async export<T>(
    path: string,
    options: { overwrite?: boolean },
    write: (temporaryPath: string) => Promise<T>,
  ): Promise<T> {
    const what = `write "${path}"`
    const target = await this.checkExport(path, options)
    const folder = dirname(target)
    const temporary = join(folder, `.${basename(target)}.${randomBytes(6).toString('hex')}.cairn-tmp`)
    try {
      const result = await write(temporary)
      await this.#checkTarget(target, options, what)
      if (options.overwrite) {
        await rename(temporary, target)
      } else {
        // link(2) fails when the name exists: a file made meanwhile is never replaced.
        try {
          await link(temporary, target)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST')
            refuse(what, 'it exists; set overwrite (--overwrite) to replace it')
          throw err
        }
        await rm(temporary, { force: true })
      }
      await syncFolder(folder)
      return result
    } catch (err) {
      await rm(temporary, { force: true }).catch(() => {})
      throw err
    }
  }

  async #checkTarget(target: string, options: { overwrite?: boolean }, what: string): Promise<void> {
    let st: Awaited<ReturnType<typeof lstat>>
    try {
      st = await lstat(target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    if (st.isSymbolicLink()) refuse(what, 'it is a symbolic link; it is never replaced')
    if (!st.isFile()) refuse(what, `it is ${kindOf(st)}; only regular files are written`)
    if (!options.overwrite) refuse(what, 'it exists; set overwrite (--overwrite) to replace it')
  }

  #roots(direction: Direction): readonly string[] {
    return direction === 'import' ? this.#options.importRoots : this.#options.exportRoots
  }

  #absolute(path: string, direction: Direction, what: string): string {
    if (!this.enabled(direction))
      refuse(
        what,
        `server-side paths are disabled; start the service with --${direction}-root DIR, or let the cairn command stream the file`,
      )
    if (path.includes('\0')) refuse(what, 'the path holds a NUL character')
    if (!isAbsolute(path)) refuse(what, 'the path is not absolute')
    return normalize(path)
  }

  /** Refuses a real path outside every root, inside the data folder or inside a vault. */
  async #confine(real: string, direction: Direction, what: string): Promise<void> {
    const roots = await Promise.all(this.#roots(direction).map((r) => realpathOfNearest(r)))
    if (!roots.some((r) => isWithin(real, r)))
      refuse(
        what,
        `it resolves to ${real}, outside every --${direction}-root (${this.#roots(direction).join(', ')})`,
      )
    const data = await realpathOfNearest(this.#options.dataDir)
    if (isWithin(real, data)) refuse(what, 'it is inside the data folder')
    for (const v of await this.#options.vaultFolders()) {
      if (!isAbsolute(v)) continue
      const folder = await realpathOfNearest(v)
      if (isWithin(real, folder)) refuse(what, `it is inside the vault at ${v}`)
    }
  }
}

function refuse(what: string, why: string): never {
  throw new CairnError('PathNotAllowed', `Cannot ${what}: ${why}`)
}

function kindOf(st: {
  isDirectory(): boolean
  isBlockDevice(): boolean
  isCharacterDevice(): boolean
  isFIFO(): boolean
  isSocket(): boolean
}): string {
  if (st.isDirectory()) return 'a folder'
  if (st.isBlockDevice()) return 'a block device'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  return 'not a regular file'
}

async function syncFolder(folder: string): Promise<void> {
  const fh = await open(folder, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
