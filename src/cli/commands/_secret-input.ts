import { readFileSync } from 'node:fs'
import { CairnError } from '../../util/index.js'

/** A password from a file (its first line), as `--password-file FILE` gives it. */
export function passwordFromFile(file: string): string {
  const text = readFileSync(file, 'utf8')
  const line = text.split(/\r?\n/)[0] ?? ''
  if (line === '')
    throw new CairnError('UsageError', `Cannot use --password-file ${file}: its first line is empty`)
  return line
}

/**
 * Reads a password: on a terminal, prompted without echo; otherwise the first line of standard input
 * (so `cairn login < file` works too).
 */
export async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) {
    const chunks: Buffer[] = []
    for await (const chunk of stdin) chunks.push(chunk as Buffer)
    const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? ''
    if (line === '')
      throw new CairnError(
        'UsageError',
        'Cannot read a password: standard input is empty (use --password-file)',
      )
    return line
  }
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = ''
      const onData = (data: string) => {
        for (const ch of data) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            process.stderr.write('\n')
            return resolve(value)
          }
          if (ch === '\u0003') {
            stdin.off('data', onData)
            process.stderr.write('\n')
            return reject(new CairnError('Cancelled', 'Interrupted'))
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
          else value += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

/** `30d`, `12h`, `90m`, `3600s` as seconds; `never` as undefined. */
export function parseExpiry(text: string): number | undefined {
  if (text === 'never') return undefined
  const m = /^(\d+)([smhd])$/.exec(text.trim())
  if (!m)
    throw new CairnError('UsageError', `Cannot read --expires "${text}": give 30d, 12h, 90m, 3600s or never`)
  const n = Number(m[1])
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd']
  if (n <= 0) throw new CairnError('UsageError', `Cannot read --expires "${text}": it must be in the future`)
  return n * unit
}
