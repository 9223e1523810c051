import { CairnError } from '../util/index.js'

/** One pre-shared key and the exports its identity may open. */
interface PskEntry {
  key: Buffer
  /** Export patterns; undefined: every export. */
  exports: string[] | undefined
}

/** What the NBD server asks of its pre-shared keys: a file's (PskKeys) or keys given out at run time. */
export interface PskKeyring {
  /** The key of `identity`, or undefined (the handshake then fails). */
  key(identity: string): Buffer | undefined
  /** Whether `identity` may open export `name`. */
  allows(identity: string, name: string): boolean
}

const IDENTITY = /^[A-Za-z0-9._@+-]{1,128}$/

/**
 * The NBD server's pre-shared keys, by identity (TLS-PSK, RFC 4279), read from a file in the format
 * of GnuTLS's `psktool`, which qemu, nbdinfo and nbdcopy read with `tls-psk-file=`:
 *
 *     identity:hexkey [EXPORT ...]
 *
 * one identity per line (blank lines and lines starting with `#` are skipped). After the key, a line
 * may name the exports its identity may open, separated by spaces: `ACCOUNT/CONTAINER/DISK` (that
 * disk and its snapshots `DISK@SNAPSHOT`), or a prefix ending in `*` (`devstoreaccount1/web/*`). A
 * line without exports opens every export. The client's own file holds only its `identity:hexkey`.
 */
export class PskKeys implements PskKeyring {
  readonly #entries: Map<string, PskEntry>

  private constructor(entries: Map<string, PskEntry>) {
    this.#entries = entries
  }

  /** Parses a key file's text; `source` names it in errors. Throws ConfigInvalid naming the line. */
  static parse(text: string, source: string): PskKeys {
    const entries = new Map<string, PskEntry>()
    const lines = text.split(/\r?\n/)
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] as string).trim()
      if (line === '' || line.startsWith('#')) continue
      const bad = (why: string) =>
        new CairnError('ConfigInvalid', `Cannot use the NBD PSK file ${source}: line ${i + 1}: ${why}`)
      const [first, ...patterns] = line.split(/\s+/)
      const colon = (first as string).indexOf(':')
      if (colon <= 0) throw bad('expected identity:hexkey (as psktool writes it)')
      const identity = (first as string).slice(0, colon)
      const hex = (first as string).slice(colon + 1)
      if (!IDENTITY.test(identity))
        throw bad(`the identity "${identity}" is not 1-128 letters, digits or . _ @ + -`)
      if (!/^([0-9a-fA-F]{2}){16,64}$/.test(hex))
        throw bad('the key is not 16 to 64 bytes of hexadecimal digits (psktool -s 32 makes one)')
      if (entries.has(identity)) throw bad(`the identity "${identity}" is given twice`)
      entries.set(identity, {
        key: Buffer.from(hex, 'hex'),
        exports: patterns.length === 0 ? undefined : patterns,
      })
    }
    if (entries.size === 0)
      throw new CairnError('ConfigInvalid', `Cannot use the NBD PSK file ${source}: it holds no key`)
    return new PskKeys(entries)
  }

  /** Identities in the file. */
  get identities(): string[] {
    return [...this.#entries.keys()]
  }

  /** The key of `identity`, or undefined (the handshake then fails). */
  key(identity: string): Buffer | undefined {
    return this.#entries.get(identity)?.key
  }

  /** Whether `identity` may open export `name`. */
  allows(identity: string, name: string): boolean {
    const entry = this.#entries.get(identity)
    if (entry === undefined) return false
    if (entry.exports === undefined) return true
    return entry.exports.some((p) =>
      p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p || name.startsWith(`${p}@`),
    )
  }
}
