import { formatBytes, formatDuration } from '../util/index.js'

/** One column of a table: a header and how to show a row's value. */
export interface Column<T> {
  header: string
  value: (row: T) => string | number | undefined
  align?: 'left' | 'right'
}

/** Where a command prints: JSON when --json, readable text otherwise. */
export class Output {
  readonly json: boolean
  readonly #stdout: NodeJS.WritableStream
  readonly #stderr: NodeJS.WritableStream & { isTTY?: boolean }

  constructor(json: boolean, stdout: NodeJS.WritableStream = process.stdout, stderr = process.stderr) {
    this.json = json
    this.#stdout = stdout
    this.#stderr = stderr
  }

  /** True when progress can be drawn: stderr is a terminal and output is not JSON. */
  get interactive(): boolean {
    return !this.json && this.#stderr.isTTY === true
  }

  line(text = ''): void {
    this.#stdout.write(`${text}\n`)
  }

  /** A note for people on stderr (never mixed into JSON output). */
  note(text: string): void {
    if (!this.json) this.#stderr.write(`${text}\n`)
  }

  printJson(value: unknown): void {
    this.#stdout.write(`${JSON.stringify(value, null, 2)}\n`)
  }

  /** Prints `data` as JSON, or as text through `text` when not --json. */
  result<T>(data: T, text: (data: T) => void): void {
    if (this.json) this.printJson(data)
    else text(data)
  }

  /** Prints rows as an aligned table. */
  table<T>(rows: T[], columns: Column<T>[]): void {
    const cells = rows.map((r) => columns.map((c) => String(c.value(r) ?? '-')))
    const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)))
    const fmt = (vals: string[]) =>
      vals
        .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd()
    this.line(fmt(columns.map((c) => c.header.toUpperCase())))
    for (const row of cells) this.line(fmt(row))
    if (rows.length === 0) this.note('(none)')
  }

  /** Prints an object as `key: value` lines. */
  keyValues(entries: [string, unknown][]): void {
    const w = Math.max(...entries.map(([k]) => k.length))
    for (const [k, v] of entries) {
      if (v === undefined) continue
      this.line(`${`${k}:`.padEnd(w + 2)}${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    }
  }
}

/** A progress bar on stderr, drawn only on a terminal; `update` is cheap to call often. */
export class ProgressBar {
  readonly #out: NodeJS.WritableStream & { columns?: number }
  readonly #enabled: boolean
  readonly #label: string
  readonly #started = performance.now()
  #last = 0

  constructor(
    label: string,
    enabled: boolean,
    stream: NodeJS.WritableStream & { columns?: number } = process.stderr,
  ) {
    this.#label = label
    this.#enabled = enabled
    this.#out = stream
  }

  update(done: number, total: number): void {
    if (!this.#enabled) return
    const now = performance.now()
    if (now - this.#last < 100 && done < total) return
    this.#last = now
    const elapsed = (now - this.#started) / 1000
    const rate = elapsed > 0 ? done / elapsed : 0
    const pct = total > 0 ? Math.min(1, done / total) : 0
    const eta = rate > 0 && total > done ? formatDuration(((total - done) / rate) * 1000) : '-'
    const width = Math.max(10, Math.min(40, (this.#out.columns ?? 80) - 60))
    const filled = Math.round(pct * width)
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`
    this.#out.write(
      `\r${this.#label} [${bar}] ${(pct * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${eta}\x1b[K`,
    )
  }

  done(): void {
    if (this.#enabled) this.#out.write('\n')
  }
}
