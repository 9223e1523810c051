/** Severity of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

/** Structured logger: JSON lines when the output is not a terminal, readable lines when it is. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
}

/** Options of createLogger. */
export interface LoggerOptions {
  level?: LogLevel
  /** JSON lines (default: when the stream is not a terminal). */
  json?: boolean
  stream?: NodeJS.WritableStream & { isTTY?: boolean }
  fields?: Record<string, unknown>
}

/** Makes a structured logger writing to stderr (or the given stream). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr
  const json = options.json ?? !stream.isTTY
  const min = LEVELS[options.level ?? 'info']
  const make = (base: Record<string, unknown>): Logger => {
    const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
      if (LEVELS[level] < min) return
      const all = { ...base, ...fields }
      if (json) {
        stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...all })}\n`)
      } else {
        const extra = Object.entries(all)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ')
        const time = new Date().toISOString().slice(11, 23)
        stream.write(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? `  ${extra}` : ''}\n`)
      }
    }
    return {
      debug: (m, f) => write('debug', m, f),
      info: (m, f) => write('info', m, f),
      warn: (m, f) => write('warn', m, f),
      error: (m, f) => write('error', m, f),
      child: (fields) => make({ ...base, ...fields }),
    }
  }
  return make(options.fields ?? {})
}

/** A logger that drops everything (for tests and library use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
}
