import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { hash, verify } from '@node-rs/argon2'

/** Hashes a password with argon2id (the library's default algorithm and costs: 19 MiB, 2 passes). */
export function hashPassword(password: string): Promise<string> {
  return hash(password)
}

let dummy: Promise<string> | undefined

/**
 * Checks a password against its argon2id hash in constant time; with no hash (an unknown user) it
 * checks against a throw-away hash, so that an unknown name costs as long as a wrong password.
 */
export async function verifyPassword(hashed: string | undefined, password: string): Promise<boolean> {
  dummy ??= hash(randomBytes(16).toString('hex'))
  const against = hashed ?? (await dummy)
  let ok: boolean
  try {
    ok = await verify(against, password)
  } catch {
    ok = false
  }
  return ok && hashed !== undefined
}

/** A new random secret of 256 bits, base64url, with a prefix saying what it is (`cairn_…`). */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`
}

/** A readable random password of 24 characters (about 143 bits). */
export function newPassword(): string {
  return randomBytes(18).toString('base64url')
}

/** SHA-256 of a high-entropy secret, hex: what the catalog keeps instead of the secret. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

/** Compares two strings in time independent of where they differ. */
export function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest()
  const y = createHash('sha256').update(b).digest()
  return timingSafeEqual(x, y)
}
