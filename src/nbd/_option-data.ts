// The data of NBD handshake options: parsing INFO/GO and META_CONTEXT requests, building INFO
// replies and the text of an unknown export.

import * as P from './_protocol.js'

/** The message for an export name that names nothing. */
export function unknownExport(name: string): string {
  const hint =
    'exports are named ACCOUNT/CONTAINER/DISK or ACCOUNT/CONTAINER/DISK@SNAPSHOT (nbdinfo --list shows them)'
  return name === ''
    ? `Cannot use the default export: there is none; ${hint}`
    : `Cannot open export "${name}": it does not exist; ${hint}`
}

/** An NBD_REP_INFO body carrying a string (name or description). */
export function infoString(type: number, text: string): Buffer {
  const bytes = truncateUtf8(text, P.MAX_STRING)
  const body = Buffer.alloc(2 + bytes.length)
  body.writeUInt16BE(type, 0)
  bytes.copy(body, 2)
  return body
}

/** UTF-8 bytes of `text`, cut to at most `max` bytes on a character boundary. */
export function truncateUtf8(text: string, max: number): Buffer {
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= max) return bytes
  let end = max
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}

/** NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 count, count x u16 info types. */
export function parseInfoRequest(data: Buffer): { name: string; requests: number[] } | string {
  if (data.length < 6) return 'The option data is shorter than 6 bytes'
  const nameLength = data.readUInt32BE(0)
  if (nameLength > data.length - 6) return 'The export name runs past the option data'
  if (nameLength > P.MAX_STRING) return `The export name is longer than ${P.MAX_STRING} bytes`
  const name = data.toString('utf8', 4, 4 + nameLength)
  const count = data.readUInt16BE(4 + nameLength)
  if (data.length !== 6 + nameLength + 2 * count)
    return 'The information requests do not fill the option data'
  const requests: number[] = []
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(6 + nameLength + 2 * i))
  return { name, requests }
}

/** NBD_OPT_{LIST,SET}_META_CONTEXT data: u32 name length, name, u32 count, count x (u32 length, query). */
export function parseMetaContextRequest(data: Buffer): { name: string; queries: string[] } | string {
  if (data.length < 8) return 'The option data is shorter than 8 bytes'
  const nameLength = data.readUInt32BE(0)
  if (nameLength > data.length - 8) return 'The export name runs past the option data'
  if (nameLength > P.MAX_STRING) return `The export name is longer than ${P.MAX_STRING} bytes`
  const name = data.toString('utf8', 4, 4 + nameLength)
  const count = data.readUInt32BE(4 + nameLength)
  let at = 8 + nameLength
  const queries: string[] = []
  for (let i = 0; i < count; i++) {
    if (at + 4 > data.length) return 'A query runs past the option data'
    const length = data.readUInt32BE(at)
    at += 4
    if (length > data.length - at) return 'A query runs past the option data'
    queries.push(data.toString('utf8', at, at + length))
    at += length
  }
  if (at !== data.length) return 'Bytes are left over after the queries'
  return { name, queries }
}
