import { type ErrorCode, errorCatalogue } from './error-codes.js'

/** The one error type of Cairn: a stable code, an HTTP status and a message that says what and why. */
export class CairnError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly details: Record<string, unknown> | undefined

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CairnError'
    this.code = code
    this.status = errorCatalogue[code].status
    this.details = options.details
  }

  /** The CLI exit status for this error. */
  get exitStatus(): number {
    return errorCatalogue[this.code].exit
  }

  /** The body the management API answers with. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } }
  }
}

/** True for a CairnError (also across module copies). */
export function isCairnError(err: unknown): err is CairnError {
  return err instanceof CairnError
}
