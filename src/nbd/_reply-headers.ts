// Reply headers of the NBD transmission phase: simple replies and structured reply chunks.

import * as P from './_protocol.js'

/** A simple reply header: magic, error, cookie. */
export function simpleHeader(cookie: Buffer, errno: number): Buffer {
  const h = Buffer.allocUnsafe(16)
  h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0)
  h.writeUInt32BE(errno, 4)
  cookie.copy(h, 8)
  return h
}

/** Writes a structured reply chunk header (flag DONE) into `h` (20 bytes). */
export function writeStructuredHeader(h: Buffer, cookie: Buffer, type: number, length: number): void {
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0)
  h.writeUInt16BE(P.REPLY_FLAG_DONE, 4)
  h.writeUInt16BE(type, 6)
  cookie.copy(h, 8)
  h.writeUInt32BE(length, 16)
}

/** A structured reply chunk header (flag DONE). */
export function structuredHeader(cookie: Buffer, type: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(20)
  writeStructuredHeader(h, cookie, type, length)
  return h
}
