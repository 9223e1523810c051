// The vault key: 64 random bytes made at creation (32 for AES-256-GCM, 32 for the chunk-id HMAC),
// kept in the `keys` record wrapped by a key-encryption key derived from a passphrase (scrypt) or a
// key file (HKDF-SHA-256). Changing the passphrase rewraps the same key: no data is rewritten.
//
// `keys` record (tag KEYS, version 1) body:
//   { "kind": "passphrase" | "keyfile", "salt": base64(16), "scrypt": { "N", "r", "p" } (passphrase only),
//     "nonce": base64(12), "wrapped": base64(64-byte key ‖ 16-byte GCM tag), "createdAt": ISO time }
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scrypt as scryptCb } from 'node:crypto'
import { CairnError } from '../util/index.js'
import type { ChunkKeys } from './_chunk-codec.js'
import { decodeRecord, encodeRecord } from './_record.js'

/** How to open (or protect) an encrypted vault's key: a passphrase or the bytes of a key file. */
export interface VaultCredentials {
  passphrase?: string
  keyFile?: Uint8Array
}

interface KeysBody {
  kind: 'passphrase' | 'keyfile'
  salt: string
  scrypt?: { N: number; r: number; p: number }
  nonce: string
  wrapped: string
  createdAt: string
}

/** scrypt cost of new passphrase wraps (Proxmox uses the same). */
export const DEFAULT_SCRYPT_N = 65536

function scrypt(pass: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(pass, salt, 32, { ...p, maxmem: 256 * p.N * p.r + 16 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  )
}

async function kek(
  body: Pick<KeysBody, 'kind' | 'salt' | 'scrypt'>,
  creds: VaultCredentials,
): Promise<Buffer> {
  const salt = Buffer.from(body.salt, 'base64')
  if (body.kind === 'passphrase') {
    if (creds.passphrase === undefined) {
      throw new CairnError(
        'VaultKeyRequired',
        'Cannot open the vault key: it is protected by a passphrase and none was given',
      )
    }
    return scrypt(creds.passphrase, salt, body.scrypt ?? { N: DEFAULT_SCRYPT_N, r: 8, p: 1 })
  }
  if (!creds.keyFile) {
    throw new CairnError(
      'VaultKeyRequired',
      'Cannot open the vault key: it is protected by a key file and none was given',
    )
  }
  return Buffer.from(hkdfSync('sha256', creds.keyFile, salt, 'cairn vault key file', 32))
}

/** Makes a new random vault key. */
export function newVaultKey(): Buffer {
  return randomBytes(64)
}

/** Splits a 64-byte vault key into its two halves. */
export function chunkKeys(master: Buffer): ChunkKeys {
  return { dataKey: master.subarray(0, 32), idKey: master.subarray(32, 64) }
}

/** Wraps the vault key with credentials into a `keys` record. */
export async function wrapKey(
  master: Buffer,
  creds: VaultCredentials,
  scryptN = DEFAULT_SCRYPT_N,
): Promise<Buffer> {
  if (creds.passphrase === undefined && !creds.keyFile) {
    throw new CairnError('VaultKeyRequired', 'Cannot protect the vault key: give a passphrase or a key file')
  }
  if (creds.keyFile && creds.keyFile.length < 16) {
    throw new CairnError(
      'InvalidRequest',
      'Cannot protect the vault key: a key file must hold at least 16 bytes',
    )
  }
  const kind = creds.passphrase !== undefined ? 'passphrase' : 'keyfile'
  const salt = randomBytes(16).toString('base64')
  const params = kind === 'passphrase' ? { N: scryptN, r: 8, p: 1 } : undefined
  const k = await kek({ kind, salt, ...(params ? { scrypt: params } : {}) }, creds)
  const nonce = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', k, nonce)
  const wrapped = Buffer.concat([c.update(master), c.final(), c.getAuthTag()])
  const body: KeysBody = {
    kind,
    salt,
    ...(params ? { scrypt: params } : {}),
    nonce: nonce.toString('base64'),
    wrapped: wrapped.toString('base64'),
    createdAt: new Date().toISOString(),
  }
  return encodeRecord('KEYS', 1, body)
}

/** Unwraps the vault key from a `keys` record; a wrong passphrase or key file is VaultKeyInvalid. */
export async function unwrapKey(record: Buffer, creds: VaultCredentials): Promise<Buffer> {
  const { body } = decodeRecord(record, 'KEYS', 'the vault key record "keys"')
  const b = body as KeysBody
  const k = await kek(b, creds)
  const wrapped = Buffer.from(b.wrapped, 'base64')
  try {
    const d = createDecipheriv('aes-256-gcm', k, Buffer.from(b.nonce, 'base64'))
    d.setAuthTag(wrapped.subarray(wrapped.length - 16))
    const master = Buffer.concat([d.update(wrapped.subarray(0, wrapped.length - 16)), d.final()])
    if (master.length !== 64) throw new Error('bad length')
    return master
  } catch {
    throw new CairnError(
      'VaultKeyInvalid',
      `Cannot open the vault key: the ${b.kind === 'passphrase' ? 'passphrase' : 'key file'} is wrong`,
    )
  }
}
