// Page digests: a digest of every 4 KiB page of a disk as a recovery point holds it, kept in an
// object-store vault's local cache so that the next checksum backup of the disk (no change list: every
// byte is read) finds its changed pages without reading the base's bytes back from the store.
//
// A checksum backup hashes each 1 MiB piece of the disk; a piece whose chunk is new is compared page by
// page with the base so that only the changed pages are stored (scattered writes touch every chunk).
// Without digests the base's chunks are read back for that (about the stored size of the disk, every
// backup); with them the piece's page digests are compared with the base's, and nothing is read.
//
// A page's digest is its AES-CMAC (RFC 4493, AES-128) under the cache's digest key: a pseudorandom
// function of the page, so equal pages give equal digests while nobody without the key can make two
// pages with one digest, or tell anything of a page from its digest. In an encrypted vault the key is
// derived from the vault's id key (HKDF-SHA-256), so the cache tells nothing about the data; an
// unencrypted vault's cache keeps a random key of its own in `DIR/digest-key`. (CMAC rather than a
// SHA-256 per page: eight pages' AES chains run side by side with AES-NI, ~7 GB/s on one core here
// against 1.5 GB/s, which was a sixth of the CPU of a full backup to an object store.)
//
// One file per item and disk, `DIR/digests/<item>/<disk>` (names URI-encoded), replaced by each
// backup of the item that read its whole disk (full and checksum backups; not incrementals with a
// change list, which read only the changed runs, nor resumed ones):
//
//   offset  size  field
//   0       8     magic "CRNPGDG2"
//   8       8     disk size, u64 LE
//   16      8     the key's check: the first 8 bytes of the SHA-256 of the digest key
//   24      32    recovery point id, ASCII, space-padded
//   56      16n   the digests: AES-CMAC of each page under the digest key; the last page is short
//                 when the size is not a multiple of 4 KiB; a hole is hashed as zeros
//   56+16n  32    SHA-256 over bytes 0..56+16n
//
// A file is used only for the point, disk size and key it names and when its checksum holds; anything
// else (missing, damaged, another point, another key, the older SHA-256 form "CRNPGDG1") and the
// backup reads the base as before.
import { createCipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nativeAddon } from '../util/index.js'

/** Bytes of disk one digest covers. */
export const DIGEST_PAGE = 4096
/** Bytes of one page digest (an AES-CMAC tag). */
export const DIGEST_BYTES = 16
/** Bytes of a digest key (AES-128). */
export const DIGEST_KEY_BYTES = 16

const MAGIC = Buffer.from('CRNPGDG2', 'latin1')
const HEAD = 56
const SUM = 32
const BLOCK = 16
const ZERO_BLOCK = Buffer.alloc(BLOCK)

interface NativePageDigests {
  digests(data: Uint8Array, key: Uint8Array, out: Uint8Array, portable?: boolean): void
}

/** native/pagedigest.c (built by `npm run build`): every page of a piece in one call, eight at a time. */
const native = loadNative()

/** Which code computes the digests: the addon, or node:crypto a page at a time. */
export const pageDigestsImplementation: 'native' | 'javascript' = native ? 'native' : 'javascript'

/** The digests of each 4 KiB page of `data` (the last may be short), side by side, under `key`. */
export function pageDigests(data: Uint8Array, key: Uint8Array): Buffer {
  return nativeDigests(data, key, false) ?? pageDigestsJs(data, key)
}

/** The addon's portable way (OpenSSL's AES a block at a time, as where the CPU has no AES-NI); tests. */
export function pageDigestsPortable(data: Uint8Array, key: Uint8Array): Buffer | undefined {
  return nativeDigests(data, key, true)
}

function nativeDigests(data: Uint8Array, key: Uint8Array, portable: boolean): Buffer | undefined {
  checkKey(key)
  if (!native) return undefined
  const out = Buffer.allocUnsafe(Math.ceil(data.length / DIGEST_PAGE) * DIGEST_BYTES)
  native.digests(data, key, out, portable)
  return out
}

/** `pageDigests` with node:crypto, whatever `pageDigests` uses (the fallback, kept callable for its tests). */
export function pageDigestsJs(data: Uint8Array, key: Uint8Array): Buffer {
  checkKey(key)
  const { k1, k2 } = cmacSubkeys(key)
  const n = Math.ceil(data.length / DIGEST_PAGE)
  const out = Buffer.allocUnsafe(n * DIGEST_BYTES)
  for (let i = 0; i < n; i++) {
    // CMAC: the CBC-MAC (zero IV) of the page whose last block is XORed with K1 when whole, or padded
    // with 0x80 0x00… and XORed with K2 when short.
    const from = i * DIGEST_PAGE
    const length = Math.min(DIGEST_PAGE, data.length - from)
    const before = (Math.ceil(length / BLOCK) - 1) * BLOCK
    const rest = length - before
    const last = Buffer.alloc(BLOCK)
    last.set(data.subarray(from + before, from + length))
    if (rest < BLOCK) last[rest] = 0x80
    const sub = rest === BLOCK ? k1 : k2
    for (let j = 0; j < BLOCK; j++) last[j]! ^= sub[j]!
    const cbc = createCipheriv('aes-128-cbc', key, ZERO_BLOCK).setAutoPadding(false)
    cbc.update(data.subarray(from, from + before))
    cbc.update(last).copy(out, i * DIGEST_BYTES)
  }
  return out
}

/** RFC 4493's subkeys: L = AES(key, 0), K1 = 2L, K2 = 4L in GF(2^128). */
function cmacSubkeys(key: Uint8Array): { k1: Buffer; k2: Buffer } {
  const l = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false).update(ZERO_BLOCK)
  const k1 = double(l)
  return { k1, k2: double(k1) }
}

function double(x: Buffer): Buffer {
  const out = Buffer.allocUnsafe(BLOCK)
  for (let i = 0; i < BLOCK - 1; i++) out[i] = ((x[i]! << 1) | (x[i + 1]! >> 7)) & 0xff
  out[BLOCK - 1] = ((x[BLOCK - 1]! << 1) ^ (x[0]! & 0x80 ? 0x87 : 0)) & 0xff
  return out
}

function checkKey(key: Uint8Array): void {
  if (key.length !== DIGEST_KEY_BYTES) throw new RangeError(`a digest key is ${DIGEST_KEY_BYTES} bytes`)
}

function loadNative(): NativePageDigests | undefined {
  if (process.env.CAIRN_PAGE_DIGESTS === 'javascript') return undefined
  return nativeAddon<NativePageDigests>('pagedigest')
}

/**
 * The digest key of the cache in `dir`: derived from the vault's id key when it has one (encrypted), else
 * the cache's own random key, made on first use (two backups making it at once agree: the first link wins).
 */
export async function digestKey(dir: string, idKey: Uint8Array | null): Promise<Buffer> {
  if (idKey)
    return Buffer.from(hkdfSync('sha256', idKey, Buffer.alloc(0), 'cairn page digests', DIGEST_KEY_BYTES))
  const file = join(dir, 'digest-key')
  const kept = await readFile(file).catch(() => undefined)
  if (kept?.length === DIGEST_KEY_BYTES) return kept
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.tmp-digest-key-${randomBytes(6).toString('hex')}`)
  await writeFile(tmp, randomBytes(DIGEST_KEY_BYTES), { mode: 0o600 })
  try {
    if (kept !== undefined)
      await rename(tmp, file) // damaged: replaced (digests made with it are then unused)
    else
      await link(tmp, file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err
      })
  } finally {
    await unlink(tmp).catch(() => {})
  }
  const key = await readFile(file)
  if (key.length !== DIGEST_KEY_BYTES) throw new Error(`${file} is not a digest key`)
  return key
}

/** The first 8 bytes of the SHA-256 of a digest key: names the key in a digest file. */
function keyCheck(key: Uint8Array): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 8)
}

/** The page digests of one disk of one recovery point, filled in as a backup reads it. */
export class DiskDigests {
  readonly size: number
  readonly digests: Buffer

  /** A disk of `size` bytes, all holes (pieces that hold data overwrite theirs), or the digests given. */
  constructor(size: number, from: { key: Uint8Array } | { digests: Buffer }) {
    this.size = size
    const pages = Math.ceil(size / DIGEST_PAGE)
    if ('digests' in from) this.digests = from.digests
    else {
      this.digests = Buffer.allocUnsafe(pages * DIGEST_BYTES)
      const zero = pageDigests(Buffer.alloc(DIGEST_PAGE), from.key)
      for (let i = 0; i < pages; i++) zero.copy(this.digests, i * DIGEST_BYTES)
      const tail = size % DIGEST_PAGE
      if (tail > 0) pageDigests(Buffer.alloc(tail), from.key).copy(this.digests, (pages - 1) * DIGEST_BYTES)
    }
  }

  /** Records the digests of the pages from `start` (page-aligned). */
  set(start: number, digests: Buffer): void {
    digests.copy(this.digests, (start / DIGEST_PAGE) * DIGEST_BYTES)
  }

  /** True when page `i` of `digests` (a piece's, from `start`) equals this disk's page there. */
  same(start: number, digests: Buffer, i: number): boolean {
    const at = (start / DIGEST_PAGE + i) * DIGEST_BYTES
    return (
      digests.compare(this.digests, at, at + DIGEST_BYTES, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES) === 0
    )
  }
}

function fileOf(dir: string, item: string, disk: string): string {
  return join(dir, 'digests', encodeURIComponent(item), encodeURIComponent(disk))
}

/** The digests of `disk` of point `point` (of `size` bytes) under `key`, or undefined when none are kept for it. */
export async function loadDiskDigests(
  dir: string,
  item: string,
  disk: string,
  point: string,
  size: number,
  key: Uint8Array,
): Promise<DiskDigests | undefined> {
  let data: Buffer
  try {
    data = await readFile(fileOf(dir, item, disk))
  } catch {
    return undefined
  }
  const length = Math.ceil(size / DIGEST_PAGE) * DIGEST_BYTES
  if (data.length !== HEAD + length + SUM || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined
  if (data.readBigUInt64LE(8) !== BigInt(size)) return undefined
  if (!data.subarray(16, 24).equals(keyCheck(key))) return undefined
  if (data.toString('latin1', 24, HEAD).trimEnd() !== point) return undefined
  const sum = createHash('sha256')
    .update(data.subarray(0, HEAD + length))
    .digest()
  if (!sum.equals(data.subarray(HEAD + length))) return undefined
  return new DiskDigests(size, { digests: data.subarray(HEAD, HEAD + length) })
}

/**
 * Keeps the digests of `disk` of point `point`, made under `key` (replacing the item's earlier ones);
 * failures only cost a later read.
 */
export async function saveDiskDigests(
  dir: string,
  item: string,
  disk: string,
  point: string,
  digests: DiskDigests,
  key: Uint8Array,
): Promise<void> {
  const head = Buffer.alloc(HEAD, ' ')
  MAGIC.copy(head)
  head.writeBigUInt64LE(BigInt(digests.size), 8)
  keyCheck(key).copy(head, 16)
  head.write(point.slice(0, HEAD - 24), 24, 'latin1')
  const sum = createHash('sha256').update(head).update(digests.digests).digest()
  const file = fileOf(dir, item, disk)
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`
  try {
    await mkdir(join(dir, 'digests', encodeURIComponent(item)), { recursive: true })
    await writeFile(tmp, Buffer.concat([head, digests.digests, sum]))
    await rename(tmp, file)
  } catch {
    await unlink(tmp).catch(() => {})
  }
}

/** Forgets the digests of `disk` of an item (a backup that could not make them must not leave older ones). */
export async function dropDiskDigests(dir: string, item: string, disk: string): Promise<void> {
  await unlink(fileOf(dir, item, disk)).catch(() => {})
}
