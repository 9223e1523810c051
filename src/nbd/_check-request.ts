// Requests of the NBD transmission phase: their names, the checks before one is served, and the NBD
// error a failed operation answers with.

import { isCairnError } from '../util/index.js'
import * as P from './_protocol.js'
import type { NbdExport } from './export-provider.js'

/** A request of the transmission phase, as parsed from its header. */
export interface Request {
  flags: number
  type: number
  cookie: Buffer
  /** Byte offset; -1 when the client sent a value past 2^53 (always out of range). */
  offset: number
  length: number
}

/** The names of the commands the server knows (others are refused). */
export const COMMAND_NAMES: Record<number, string> = {
  [P.CMD_READ]: 'READ',
  [P.CMD_WRITE]: 'WRITE',
  [P.CMD_DISC]: 'DISC',
  [P.CMD_FLUSH]: 'FLUSH',
  [P.CMD_TRIM]: 'TRIM',
  [P.CMD_CACHE]: 'CACHE',
  [P.CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [P.CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
}

/** Why a request cannot be served (an NBD error and message), or undefined when it can. */
export function checkRequest(
  r: Request,
  exp: NbdExport,
  session: { structured: boolean; allocation: boolean; maxRequest: number },
): { errno: number; message: string } | undefined {
  const name = COMMAND_NAMES[r.type]
  if (name === undefined) return { errno: P.EINVAL, message: `Command ${r.type} is not supported` }
  let allowed = P.CMD_FLAG_FUA
  if (r.type === P.CMD_READ && session.structured) allowed |= P.CMD_FLAG_DF
  if (r.type === P.CMD_WRITE_ZEROES) allowed |= P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO
  if (r.type === P.CMD_BLOCK_STATUS) allowed |= P.CMD_FLAG_REQ_ONE
  if ((r.flags & ~allowed) !== 0) {
    return { errno: P.EINVAL, message: `${name} does not take flags 0x${r.flags.toString(16)}` }
  }
  const mutates = r.type === P.CMD_WRITE || r.type === P.CMD_TRIM || r.type === P.CMD_WRITE_ZEROES
  if (mutates && exp.readOnly) {
    return { errno: P.EPERM, message: `Cannot ${name} export "${exp.name}": it is read-only` }
  }
  if (r.type === P.CMD_FLUSH) return undefined
  if (r.type === P.CMD_READ && r.length > session.maxRequest) {
    return {
      errno: session.structured ? P.EOVERFLOW : P.EINVAL,
      message: `Cannot READ ${r.length} bytes at once: the limit is ${session.maxRequest}`,
    }
  }
  if (r.offset < 0 || r.offset + r.length > exp.size) {
    const errno = r.type === P.CMD_WRITE || r.type === P.CMD_WRITE_ZEROES ? P.ENOSPC : P.EINVAL
    return {
      errno,
      message: `Cannot ${name} ${r.length} bytes at offset ${r.offset < 0 ? 'beyond 2^53' : r.offset}: the export holds ${exp.size} bytes`,
    }
  }
  if (r.type === P.CMD_BLOCK_STATUS && !session.allocation) {
    return { errno: P.EINVAL, message: 'BLOCK_STATUS needs the base:allocation metadata context' }
  }
  return undefined
}

/** The NBD error value and message for a failed operation. */
export function describeFailure(err: unknown): { errno: number; message: string } {
  if (!isCairnError(err)) return { errno: P.EIO, message: err instanceof Error ? err.message : String(err) }
  switch (err.code) {
    case 'SnapshotIsReadOnly':
    case 'DiskIsReadOnly':
    case 'LeaseIdMissing':
    case 'LeaseIdMismatch':
    case 'ConditionNotMet':
    case 'SequenceNumberConditionNotMet':
      return { errno: P.EPERM, message: err.message }
    case 'RangeOutOfBounds':
    case 'RangeNotAligned':
    case 'WriteTooLarge':
    case 'ReadTooLarge':
    case 'InvalidRequest':
      return { errno: P.EINVAL, message: err.message }
    case 'StoreFull':
      return { errno: P.ENOSPC, message: err.message }
    case 'ServiceUnavailable':
      return { errno: P.ESHUTDOWN, message: err.message }
    default:
      return { errno: P.EIO, message: err.message }
  }
}
