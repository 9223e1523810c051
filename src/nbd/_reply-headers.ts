// Replies of the NBD transmission phase: simple replies and structured reply chunks, each built as
// the parts of one message (the connection sends them together).

import type { Request } from './_check-request.js'
import { truncateUtf8 } from './_option-data.js'
import * as P from './_protocol.js'

/** One extent of a base:allocation answer. */
export interface BlockExtent {
  length: number
  hole: boolean
  zero: boolean
}

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

/** The reply to a READ of `data`: a simple reply, or one OFFSET_DATA chunk (NONE when empty). */
export function readReply(r: Request, data: Buffer, structured: boolean): Buffer[] {
  if (!structured) return [simpleHeader(r.cookie, 0), data]
  if (data.length === 0) return [structuredHeader(r.cookie, P.REPLY_TYPE_NONE, 0)]
  const h = Buffer.allocUnsafe(28)
  writeStructuredHeader(h, r.cookie, P.REPLY_TYPE_OFFSET_DATA, 8 + data.length)
  h.writeUIntBE(Math.floor(r.offset / 2 ** 32), 20, 4)
  h.writeUInt32BE(r.offset % 2 ** 32, 24)
  return [h, data]
}

/** The BLOCK_STATUS reply for base:allocation; an empty query or answer reports the range as data. */
export function blockStatusReply(r: Request, extents: BlockExtent[]): Buffer[] {
  // A successful reply needs at least one descriptor.
  const list = extents.length > 0 ? extents : [{ length: Math.max(r.length, 1), hole: false, zero: false }]
  const body = Buffer.allocUnsafe(4 + 8 * list.length)
  body.writeUInt32BE(P.BASE_ALLOCATION_ID, 0)
  let at = 4
  for (const e of list) {
    body.writeUInt32BE(e.length, at)
    body.writeUInt32BE((e.hole ? P.STATE_HOLE : 0) | (e.zero ? P.STATE_ZERO : 0), at + 4)
    at += 8
  }
  return [structuredHeader(r.cookie, P.REPLY_TYPE_BLOCK_STATUS, body.length), body]
}

/** An error reply: the errno alone (simple), or an ERROR chunk with the message (structured). */
export function errorReply(cookie: Buffer, errno: number, message: string, structured: boolean): Buffer[] {
  if (!structured) return [simpleHeader(cookie, errno)]
  const text = truncateUtf8(message, P.MAX_STRING)
  const body = Buffer.allocUnsafe(6 + text.length)
  body.writeUInt32BE(errno, 0)
  body.writeUInt16BE(text.length, 4)
  text.copy(body, 6)
  return [structuredHeader(cookie, P.REPLY_TYPE_ERROR, body.length), body]
}
