// Page digests: a digest of every 4 KiB page of a disk as a recovery point holds it, kept in an
// object-store vault's local cache so that the next checksum backup of the disk (no change list: every
// byte is read) finds its changed pages without reading the base's bytes back from the store.
//
// A checksum backup hashes each 1 MiB piece of the disk; a piece whose chunk is new is compared page by
// page with the base so that only the changed pages are stored (scattered writes touch every chunk).
// Without digests the base's chunks are read back for that (about the stored size of the disk, every
// backup); with them the piece's page digests are compared with the base's, and nothing is read.
//
// One file per item and disk, `DIR/digests/<item>/<disk>` (names URI-encoded), replaced by each
// backup of the item that read its whole disk (full and checksum backups; not incrementals with a
// change list, which read only the changed runs, nor resumed ones):
//
//   offset  size  field
//   0       8     magic "CRNPGDG1"
//   8       8     disk size, u64 LE
//   16      32    recovery point id, ASCII, space-padded
//   48      16n   the digests: SHA-256 of each page (HMAC-SHA-256 with the vault's id key in an
//                 encrypted vault, as chunk ids are, so the cache tells nothing about the data); the
//                 last page is short when the size is not a multiple of 4 KiB; a hole is hashed as
//                 zeros; first 16 bytes
//   48+16n  32    SHA-256 over bytes 0..48+16n
//
// A file is used only for the point and disk size it names and when its checksum holds; anything
// else (missing, damaged, another point) and the backup reads the base as before.
import { createHash, createHmac, hash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nativeAddon } from '../util/index.js'

/** Bytes of disk one digest covers. */
export const DIGEST_PAGE = 4096
/** Bytes of one page digest (a truncated SHA-256: 128 bits, no practical collisions). */
export const DIGEST_BYTES = 16

const MAGIC = Buffer.from('CRNPGDG1', 'latin1')
const HEAD = 48
const SUM = 32

interface NativePageDigests {
  digests(data: Uint8Array, key: Uint8Array | null, out: Uint8Array): void
}

/** native/pagedigest.c (built by `npm run build`): every page of a piece in one call, ~1.7x the speed. */
const native = loadNative()

/** Which code hashes the pages: the addon, or one crypto call a page in JavaScript. */
export const pageDigestsImplementation: 'native' | 'javascript' = native ? 'native' : 'javascript'

/** The digests of each 4 KiB page of `data` (the last may be short), side by side; keyed with `idKey`. */
export function pageDigests(data: Uint8Array, idKey: Uint8Array | null): Buffer {
  if (!native) return pageDigestsJs(data, idKey)
  const out = Buffer.allocUnsafe(Math.ceil(data.length / DIGEST_PAGE) * DIGEST_BYTES)
  native.digests(data, idKey, out)
  return out
}

/** `pageDigests` in JavaScript, whatever `pageDigests` uses (the fallback, kept callable for its tests). */
export function pageDigestsJs(data: Uint8Array, idKey: Uint8Array | null): Buffer {
  const n = Math.ceil(data.length / DIGEST_PAGE)
  const out = Buffer.allocUnsafe(n * DIGEST_BYTES)
  for (let i = 0; i < n; i++) {
    const page = data.subarray(i * DIGEST_PAGE, (i + 1) * DIGEST_PAGE)
    // The one-shot hash: no Hash object per page (a 1 MiB piece has 256 pages; a quarter less CPU).
    ;(idKey ? createHmac('sha256', idKey).update(page).digest() : hash('sha256', page, 'buffer')).copy(
      out,
      i * DIGEST_BYTES,
      0,
      DIGEST_BYTES,
    )
  }
  return out
}

function loadNative(): NativePageDigests | undefined {
  if (process.env.CAIRN_PAGE_DIGESTS === 'javascript') return undefined
  return nativeAddon<NativePageDigests>('pagedigest')
}

/** The page digests of one disk of one recovery point, filled in as a backup reads it. */
export class DiskDigests {
  readonly size: number
  readonly digests: Buffer

  /** A disk of `size` bytes, all holes (pieces that hold data overwrite theirs), or the digests given. */
  constructor(size: number, from: { idKey: Uint8Array | null } | { digests: Buffer }) {
    this.size = size
    const pages = Math.ceil(size / DIGEST_PAGE)
    if ('digests' in from) this.digests = from.digests
    else {
      this.digests = Buffer.allocUnsafe(pages * DIGEST_BYTES)
      const zero = pageDigests(Buffer.alloc(DIGEST_PAGE), from.idKey)
      for (let i = 0; i < pages; i++) zero.copy(this.digests, i * DIGEST_BYTES)
      const tail = size % DIGEST_PAGE
      if (tail > 0) pageDigests(Buffer.alloc(tail), from.idKey).copy(this.digests, (pages - 1) * DIGEST_BYTES)
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

/** The digests of `disk` of point `point` (of `size` bytes), or undefined when none are kept for it. */
export async function loadDiskDigests(
  dir: string,
  item: string,
  disk: string,
  point: string,
  size: number,
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
  if (data.toString('latin1', 16, HEAD).trimEnd() !== point) return undefined
  const sum = createHash('sha256')
    .update(data.subarray(0, HEAD + length))
    .digest()
  if (!sum.equals(data.subarray(HEAD + length))) return undefined
  return new DiskDigests(size, { digests: data.subarray(HEAD, HEAD + length) })
}

/** Keeps the digests of `disk` of point `point` (replacing the item's earlier ones); failures only cost a later read. */
export async function saveDiskDigests(
  dir: string,
  item: string,
  disk: string,
  point: string,
  digests: DiskDigests,
): Promise<void> {
  const head = Buffer.alloc(HEAD, ' ')
  MAGIC.copy(head)
  head.writeBigUInt64LE(BigInt(digests.size), 8)
  head.write(point.slice(0, HEAD - 16), 16, 'latin1')
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
