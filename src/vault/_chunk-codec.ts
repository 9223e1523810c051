// Chunk blobs: how one chunk (disk data or an index-tree page) is stored inside a pack.
//
//   offset  size  field
//   0       1     magic 0xCB
//   1       1     version, 1
//   2       1     flags: bit 0 = zstd-compressed, bit 1 = AES-256-GCM encrypted
//   3       1     kind: 0 = disk data, 1 = index-tree page
//   4       4     plaintext length, u32 LE
//   8       4     CRC-32 of bytes 12..end
//   12      n     payload: the (compressed) bytes; when encrypted nonce(12) ‖ ciphertext ‖ tag(16),
//                 with the chunk id (32) ‖ bytes 0..8 as additional data, so a blob cannot be swapped
//
// The chunk id is SHA-256(plaintext), or HMAC-SHA-256(id key, plaintext) in an encrypted vault so that
// ids leak nothing about content. Compression is kept only when it makes the chunk smaller.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomFillSync } from 'node:crypto'
import { createRequire } from 'node:module'
import { crc32 } from 'node:zlib'
import { release } from './_memory.js'

// zstd through zstd-napi's thin binding: one compression and one decompression context per thread,
// reused for every chunk, writing into buffers this module sizes. (The previous binding made a context
// per call on a thread pool of its own, and silently compressed at level 3 whatever level it was given.)
const require = createRequire(import.meta.url)
const zstd = require('zstd-napi/binding') as {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number }
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number }
  compressBound(size: number): number
}

let cctx: InstanceType<typeof zstd.CCtx> | undefined
let dctx: InstanceType<typeof zstd.DCtx> | undefined
/** Output buffer of this thread's compressor, reused: its contents are copied or encrypted out at once. */
let zout: Buffer | undefined

/** Compresses `plain` into this thread's output buffer; returns the compressed bytes (a view of it). */
function compressReused(plain: Buffer, level: number): Buffer {
  cctx ??= new zstd.CCtx()
  const bound = zstd.compressBound(plain.length)
  if (!zout || zout.length < bound) zout = Buffer.allocUnsafeSlow(Math.max(bound, 64 * 1024))
  return zout.subarray(0, cctx.compress(zout, plain, level))
}

const MAGIC = 0xcb
const VERSION = 1
/** Bytes of a chunk blob's header. */
export const BLOB_HEADER = 12
const F_ZSTD = 1
const F_AES = 2

/** Kinds of chunk. */
export const ChunkKind = { data: 0, tree: 1 } as const
export type ChunkKind = (typeof ChunkKind)[keyof typeof ChunkKind]

/** The secret keys of an encrypted vault (null for an unencrypted one). */
export interface ChunkKeys {
  /** AES-256-GCM key for chunk payloads and encrypted records. */
  dataKey: Buffer
  /** HMAC key that makes chunk ids. */
  idKey: Buffer
}

/** Chunk id of a plaintext. */
export function chunkId(plain: Uint8Array, keys: ChunkKeys | null): Buffer {
  return keys
    ? createHmac('sha256', keys.idKey).update(plain).digest()
    : createHash('sha256').update(plain).digest()
}

/**
 * Compresses (when it helps) and encrypts (when keyed) a chunk; returns its id and its blob as parts
 * (header, payload pieces) so that nobody has to copy them into one buffer before they reach a pack.
 */
export function sealChunk(
  plain: Buffer,
  kind: ChunkKind,
  keys: ChunkKeys | null,
  level: number,
): { id: Buffer; parts: Buffer[]; length: number } {
  const id = chunkId(plain, keys)
  let flags = 0
  let body = plain
  if (level > 0 && plain.length >= 64) {
    const z = compressReused(plain, level)
    if (z.length < plain.length) {
      // Encryption reads the reused buffer into a new one; without it the bytes are copied out.
      body = keys ? z : Buffer.from(z)
      flags |= F_ZSTD
    }
  }
  const header = Buffer.alloc(keys ? BLOB_HEADER + 12 : BLOB_HEADER)
  header[0] = MAGIC
  header[1] = VERSION
  header[3] = kind
  header.writeUInt32LE(plain.length, 4)
  let parts: Buffer[]
  if (keys) {
    flags |= F_AES
    header[2] = flags
    const nonce = header.subarray(BLOB_HEADER)
    randomFillSync(nonce)
    const c = createCipheriv('aes-256-gcm', keys.dataKey, nonce)
    c.setAAD(Buffer.concat([id, header.subarray(0, 8)]))
    const ct = c.update(body)
    const fin = c.final()
    parts = fin.length ? [header, ct, fin, c.getAuthTag()] : [header, ct, c.getAuthTag()]
  } else {
    header[2] = flags
    parts = [header, body]
  }
  let crc = crc32(header.subarray(BLOB_HEADER))
  for (const p of parts.slice(1)) crc = crc32(p, crc)
  header.writeUInt32LE(crc, 8)
  return { id, parts, length: parts.reduce((n, p) => n + p.length, 0) }
}

/** Thrown by openChunk with the reason a blob is bad; callers add which disk and offset needed it. */
export class ChunkDamage extends Error {
  /** Which chunk of a request for several (a restored leaf's) was bad. */
  chunk?: number
}

/**
 * Checks, decrypts, decompresses and re-hashes a chunk blob; throws ChunkDamage on any mismatch.
 * With `rehash: false` an encrypted blob is trusted on its GCM tag alone (which binds it to its id:
 * only the key holder can make one), skipping the CRC and the hash; verify always re-hashes.
 * `alloc` gives the buffer (exactly `length` bytes) a compressed chunk is decompressed into.
 */
export function openChunk(
  blob: Buffer,
  id: Buffer,
  keys: ChunkKeys | null,
  options: { rehash?: boolean; alloc?: (length: number) => Buffer } = {},
): { plain: Buffer; kind: ChunkKind } {
  const full = options.rehash !== false || !keys
  if (blob.length < BLOB_HEADER) throw new ChunkDamage(`its blob is truncated (${blob.length} bytes)`)
  if (blob[0] !== MAGIC) throw new ChunkDamage('its blob does not start with the chunk magic')
  if (blob[1] !== VERSION) throw new ChunkDamage(`its blob has unknown version ${blob[1]}`)
  if (full && crc32(blob.subarray(BLOB_HEADER)) !== blob.readUInt32LE(8)) {
    throw new ChunkDamage('its blob fails the CRC-32 check')
  }
  const flags = blob[2]!
  const kind = blob[3] as ChunkKind
  const rawLength = blob.readUInt32LE(4)
  let body = blob.subarray(BLOB_HEADER)
  if (flags & F_AES) {
    if (!keys) throw new ChunkDamage('it is encrypted but the vault has no key open')
    if (body.length < 28) throw new ChunkDamage('its encrypted payload is truncated')
    try {
      const d = createDecipheriv('aes-256-gcm', keys.dataKey, body.subarray(0, 12))
      d.setAAD(Buffer.concat([id, blob.subarray(0, 8)]))
      d.setAuthTag(body.subarray(body.length - 16))
      const head = d.update(body.subarray(12, body.length - 16))
      const tail = d.final()
      // GCM is a stream mode: final() yields nothing, so the plaintext is used as is (no copy).
      body = tail.length ? Buffer.concat([head, tail]) : head
    } catch {
      throw new ChunkDamage('it fails AES-GCM authentication')
    }
  } else if (keys) {
    throw new ChunkDamage('it is not encrypted in an encrypted vault')
  }
  let plain = body
  if (flags & F_ZSTD) {
    // Straight into a buffer of the recorded length: a stream that would not fit is damage.
    dctx ??= new zstd.DCtx()
    plain = options.alloc ? options.alloc(rawLength) : Buffer.allocUnsafeSlow(rawLength)
    let n: number
    try {
      n = dctx.decompress(plain, body)
    } catch {
      throw new ChunkDamage('its zstd stream does not decompress')
    }
    if (n !== rawLength) throw new ChunkDamage(`it holds ${n} bytes, not ${rawLength}`)
    // The decrypted stream is spent: free it now rather than at some later collection.
    if (flags & F_AES) release([body])
  }
  if (plain.length !== rawLength) throw new ChunkDamage(`it holds ${plain.length} bytes, not ${rawLength}`)
  if (full && !chunkId(plain, keys).equals(id)) throw new ChunkDamage('its content does not hash to its id')
  return { plain, kind }
}
