// Framed records: every small vault file (config, key, recovery-point manifest, lock) is one.
//
//   offset  size  field
//   0       4     magic "CRN1"
//   4       4     tag, 4 ASCII bytes: CONF, KEYS, MANI, LOCK, SETT, SDEL
//   8       2     version of the body, u16 LE
//   10      1     flags: bit 0 = body encrypted
//   11      1     reserved, 0
//   12      4     body length n, u32 LE
//   16      n     body: UTF-8 JSON; when encrypted, nonce(12) ‖ AES-256-GCM ciphertext ‖ tag(16),
//                 with bytes 0..16 as additional data
//   16+n    32    SHA-256 over bytes 0..16+n
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { CairnError } from '../util/index.js'

const MAGIC = Buffer.from('CRN1', 'ascii')
const HEADER = 16
const SUM = 32

/** The kinds of framed record. */
export type RecordTag = 'CONF' | 'KEYS' | 'MANI' | 'LOCK' | 'SETT' | 'SDEL'

/** Encodes a JSON body as a framed record, encrypted when a key is given. */
export function encodeRecord(tag: RecordTag, version: number, body: unknown, key?: Buffer): Buffer {
  let payload = Buffer.from(JSON.stringify(body), 'utf8')
  const header = Buffer.alloc(HEADER)
  MAGIC.copy(header, 0)
  header.write(tag, 4, 'ascii')
  header.writeUInt16LE(version, 8)
  header[10] = key ? 1 : 0
  if (key) {
    const nonce = randomBytes(12)
    header.writeUInt32LE(12 + payload.length + 16, 12)
    const c = createCipheriv('aes-256-gcm', key, nonce)
    c.setAAD(header)
    payload = Buffer.concat([nonce, c.update(payload), c.final(), c.getAuthTag()])
  } else {
    header.writeUInt32LE(payload.length, 12)
  }
  const head = Buffer.concat([header, payload])
  return Buffer.concat([head, createHash('sha256').update(head).digest()])
}

/** What a decoded record holds. */
export interface DecodedRecord {
  version: number
  encrypted: boolean
  body: unknown
}

/**
 * Decodes a framed record, checking magic, tag, length and checksum before anything else.
 * `what` names the file in error messages. An encrypted body needs `key`.
 */
export function decodeRecord(data: Buffer, tag: RecordTag, what: string, key?: Buffer): DecodedRecord {
  const bad = (why: string) => new CairnError('VaultCorrupt', `Cannot read ${what}: ${why}`)
  if (data.length < HEADER + SUM) throw bad(`it is truncated (${data.length} bytes)`)
  if (!data.subarray(0, 4).equals(MAGIC)) throw bad('it does not start with the record magic CRN1')
  if (data.toString('ascii', 4, 8) !== tag) throw bad(`it is not a ${tag} record`)
  const n = data.readUInt32LE(12)
  if (data.length !== HEADER + n + SUM)
    throw bad(`its length ${data.length} does not match ${HEADER + n + SUM}`)
  const sum = createHash('sha256')
    .update(data.subarray(0, HEADER + n))
    .digest()
  if (!sum.equals(data.subarray(HEADER + n))) throw bad('its checksum does not match its content')
  const version = data.readUInt16LE(8)
  const encrypted = (data[10]! & 1) === 1
  let payload = data.subarray(HEADER, HEADER + n)
  if (encrypted) {
    if (!key)
      throw new CairnError('VaultKeyRequired', `Cannot read ${what}: it is encrypted and no key is open`)
    if (n < 28) throw bad('its encrypted body is too short')
    try {
      const d = createDecipheriv('aes-256-gcm', key, payload.subarray(0, 12))
      d.setAAD(data.subarray(0, HEADER))
      d.setAuthTag(payload.subarray(n - 16))
      payload = Buffer.concat([d.update(payload.subarray(12, n - 16)), d.final()])
    } catch {
      throw bad('it does not decrypt with the vault key')
    }
  }
  try {
    return { version, encrypted, body: JSON.parse(payload.toString('utf8')) }
  } catch {
    throw bad('its body is not valid JSON')
  }
}
