import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CairnError } from '../util/index.js'
import type { VaultCredentials } from '../vault/index.js'

const VAULT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

/**
 * The key files of encrypted vaults the service unlocks at start: files named per vault
 * (`--vault-key NAME=FILE`) and a folder of files named after their vaults (`--vault-key-dir`).
 * A file holds the vault's passphrase (one trailing newline ignored) or its key file's bytes; which
 * one is used follows the vault's key record. Every file must be a regular file readable by its
 * owner only (mode 0600 or 0400): a looser one is refused, never used.
 */
export class VaultKeys {
  readonly #files: Record<string, string>
  readonly #dir: string | undefined

  constructor(options: { files?: Record<string, string>; dir?: string } = {}) {
    this.#files = options.files ?? {}
    this.#dir = options.dir
  }

  /** True when no key is configured. */
  get empty(): boolean {
    return Object.keys(this.#files).length === 0 && this.#dir === undefined
  }

  /** Checks every configured file (and the folder's files) now; ConfigInvalid names the first bad one. */
  async check(): Promise<void> {
    for (const [name, file] of Object.entries(this.#files)) await checkFile(file, name)
    if (this.#dir === undefined) return
    let names: string[]
    try {
      const st = await stat(this.#dir)
      if (!st.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' })
      names = await readdir(this.#dir)
    } catch (err) {
      throw new CairnError(
        'ConfigInvalid',
        `Cannot use the vault key folder ${this.#dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : 'it is not a readable folder'}`,
      )
    }
    for (const n of names) if (VAULT_NAME.test(n)) await checkFile(join(this.#dir, n), n)
  }

  /** Where vault `name`'s key is, if one is configured (a named file first, then the folder). */
  async fileOf(name: string): Promise<string | undefined> {
    const named = this.#files[name]
    if (named !== undefined) return named
    if (this.#dir === undefined || !VAULT_NAME.test(name)) return undefined
    const path = join(this.#dir, name)
    try {
      await stat(path)
      return path
    } catch {
      return undefined
    }
  }

  /** The credentials in vault `name`'s key file (checked again), or undefined when none is configured. */
  async credentials(name: string): Promise<VaultCredentials | undefined> {
    const file = await this.fileOf(name)
    if (file === undefined) return undefined
    await checkFile(file, name)
    const bytes = await readFile(file)
    return { passphrase: bytes.toString('utf8').replace(/\r?\n$/, ''), keyFile: bytes }
  }
}

async function checkFile(file: string, name: string): Promise<void> {
  const refuse = (why: string) =>
    new CairnError('ConfigInvalid', `Cannot use the key file ${file} of vault "${name}": ${why}`)
  let st: Awaited<ReturnType<typeof stat>>
  try {
    st = await stat(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw refuse(code === 'ENOENT' ? 'it does not exist' : `it cannot be read (${code})`)
  }
  if (!st.isFile()) throw refuse('it is not a regular file')
  const mode = Number(st.mode) & 0o777
  if ((mode & 0o077) !== 0) {
    throw refuse(
      `its mode is ${mode.toString(8).padStart(4, '0')}; a key file must be readable by its owner only (chmod 600 ${file})`,
    )
  }
  if (Number(st.size) === 0) throw refuse('it is empty')
}
