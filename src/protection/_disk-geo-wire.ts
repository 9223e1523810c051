// The messages a primary site sends its paired secondary to replicate a storage account's disks
// (docs/replication.md, "Disks"). One message is one HTTP body:
//
//   offset 0  4 bytes  magic "CGD1"
//          4  4 bytes  header length H (uint32 LE)
//          8  H bytes  header: UTF-8 JSON, one of DiskGeoMessage
//        8+H  …        data: for `pages`, the bytes of `ranges` one after the other
//
// A `pages` header carries the CRC-32 of its data (`crc32`), checked on arrival; a SHA-256 (`sha256`, what
// primaries before it sent) is still checked when a message carries one. The digest guards against
// corruption between the primary's read and the secondary's write (a bug, a bad buffer, a bad link): the
// pair's authenticated link (TLS, the Site Peer token) is what keeps anyone else from sending messages,
// and a digest without a key would not add to that. CRC-32 costs a tenth of SHA-256 per byte.
// Every message names the point it belongs to (the primary's snapshot id `target`), so the receiver can
// refuse one out of order.
//
// A point's diff is cut into numbered chunks; its `plan` is the SHA-256 of the JSON list of every
// chunk's `{ ranges, clears }`. `begin` and every `pages` name the plan: a point cut short resumes with
// the chunks the secondary lacks only while the plan is the same (the same base, target and cutting),
// and a chunk of another plan is refused.
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { type ByteRange, type ContentProperties, crc32 } from '../diskstore/index.js'
import { ALIGN, alignedBuffer, CairnError } from '../util/index.js'

const MAGIC = Buffer.from('CGD1', 'latin1')
/** Largest header accepted (a pages header lists its ranges). */
const MAX_HEADER = 4 * 1024 * 1024

/** Bytes of disk data in one pages message. */
export const CHUNK_BYTES = 8 * 1024 * 1024
/** Room kept before a chunk's data in a message buffer for the magic and the header (page-aligned). */
export const HEADER_ROOM = 256 * 1024

/**
 * Page-aligned buffers of HEADER_ROOM + CHUNK_BYTES, reused: a pages message is built (primary) or
 * received (secondary) in one with its data on a page boundary, so the disk store reads and writes it
 * directly (O_DIRECT) and no message costs a fresh allocation.
 */
export class MessageBuffers {
  readonly #free: Buffer[] = []
  readonly #keep: number

  constructor(keep: number) {
    this.#keep = keep
  }

  take(): Buffer {
    return this.#free.pop() ?? alignedBuffer(HEADER_ROOM + CHUNK_BYTES)
  }

  give(b: Buffer): void {
    if (this.#free.length < this.#keep && b.length >= HEADER_ROOM + CHUNK_BYTES) this.#free.push(b)
  }
}

/**
 * A pages message in `buf` whose data already sits at HEADER_ROOM: writes the magic and header just
 * before it and answers the message (a view of `buf`, no copy), or undefined when the header does not
 * fit in the room.
 */
export function frameInPlace(buf: Buffer, header: DiskGeoMessage, dataBytes: number): Buffer | undefined {
  const h = Buffer.from(JSON.stringify(header), 'utf8')
  const start = HEADER_ROOM - 8 - h.length
  if (start < 0) return undefined
  MAGIC.copy(buf, start)
  buf.writeUInt32LE(h.length, start + 4)
  h.copy(buf, start + 8)
  return buf.subarray(start, HEADER_ROOM + dataBytes)
}

/**
 * Reads one message body from a stream into a buffer of `buffers` laid out so that its data starts on a
 * page boundary (bodies too large for one are read into their own). `release` gives the buffer back.
 * A Node stream (the request itself) is read through its `data` events: its async iterator costs a
 * promise and a `read()` per chunk, which made up a sixth of the secondary's CPU per GiB.
 */
export async function readMessage(
  source: AsyncIterable<Uint8Array> | Readable,
  buffers: MessageBuffers,
  limit: number,
): Promise<{ body: Buffer; release: () => void }> {
  const head: Buffer[] = []
  let headBytes = 0
  let buf: Buffer | undefined
  let start = 0
  let size = 0
  const tooLarge = () =>
    new CairnError('PayloadTooLarge', `Cannot accept a replication message of more than ${limit} bytes`)
  const place = (chunk: Uint8Array) => {
    if (buf === undefined) return
    if (start + size + chunk.length > buf.length) {
      if (size + chunk.length > limit) throw tooLarge()
      const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(size + chunk.length, size * 2)))
      buf.copy(grown, 0, start, start + size)
      if (buf.length === HEADER_ROOM + CHUNK_BYTES) buffers.give(buf)
      buf = grown
      start = 0
    }
    buf.set(chunk, start + size)
    size += chunk.length
  }
  const take = (chunk: Uint8Array) => {
    if (buf !== undefined) {
      place(chunk)
      return
    }
    head.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    headBytes += chunk.length
    if (headBytes < 8) return
    // The header's length is known: lay the body out so that the data after the header is aligned.
    const first = Buffer.concat(head)
    const hlen = first.readUInt32LE(4)
    buf = buffers.take()
    start = (ALIGN - ((8 + hlen) % ALIGN)) % ALIGN
    if (start + 8 + hlen > HEADER_ROOM) start = 0
    place(first)
  }
  try {
    if (isReadable(source)) await drain(source, take)
    else for await (const chunk of source) take(chunk)
  } catch (err) {
    if (buf !== undefined && buf.length === HEADER_ROOM + CHUNK_BYTES) buffers.give(buf)
    throw err
  }
  if (buf === undefined) {
    const small = Buffer.concat(head)
    return { body: small, release: () => undefined }
  }
  const owned: Buffer = buf
  return { body: owned.subarray(start, start + size), release: () => buffers.give(owned) }
}

const isReadable = (s: AsyncIterable<Uint8Array> | Readable): s is Readable =>
  typeof (s as Readable).on === 'function' && typeof (s as Readable).pause === 'function'

/** Feeds every chunk of a Node stream to `take` as it comes; rejects on the stream's error or `take`'s. */
function drain(stream: Readable, take: (chunk: Uint8Array) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown) => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      stream.off('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onData = (chunk: Uint8Array) => {
      try {
        take(chunk)
      } catch (err) {
        // The rest is left unread: the HTTP server discards it (or drops the connection) after the answer.
        stream.pause()
        done(err)
      }
    }
    const onEnd = () => done()
    const onError = (err: Error) => done(err)
    const onClose = () => {
      if (!stream.readableEnded)
        done(new CairnError('Cancelled', 'The replication message was cut short: the connection closed'))
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
    stream.on('close', onClose)
  })
}
/** Who the account is: sent at the start of each round so the secondary can hold its replica. */
export interface GeoAccountMessage {
  kind: 'account'
  account: string
  region: string
  redundancy: string
  keys: [string, string]
}

/** Starts shipping one point of one disk: the diff from `base` (null: from an empty disk) to `target`. */
export interface GeoBeginMessage {
  kind: 'begin'
  account: string
  container: string
  disk: string
  base: string | null
  target: string
  size: number
  /** The chunk plan's digest, and how many chunks it has. */
  plan: string
  chunks: number
}

/** Part of a point: written ranges with their bytes, and ranges cleared back to holes. */
export interface GeoPagesMessage {
  kind: 'pages'
  account: string
  container: string
  disk: string
  target: string
  plan: string
  chunk: number
  ranges: ByteRange[]
  clears: ByteRange[]
  /** CRC-32 (IEEE) of the data; a message of an older primary carries `sha256` (hex) instead. */
  crc32?: number
  sha256?: string
}

/** Ends a point: the secondary takes it once it holds all `chunks` chunks. */
export interface GeoCommitMessage {
  kind: 'commit'
  account: string
  container: string
  disk: string
  target: string
  plan: string
  chunks: number
  /** The target is a client's snapshot: the replica keeps it under the same id. */
  userSnapshot?: boolean
  sequenceNumber: number
  metadata: Record<string, string>
  content: ContentProperties
}

/** Ends a round: every write before `syncTime` is on the secondary; what is not listed was deleted. */
export interface GeoRoundMessage {
  kind: 'round'
  account: string
  syncTime: number
  containers: string[]
  /** `container/disk` of every disk of the account at `syncTime`. */
  disks: string[]
  /** `container/disk` → the ids of the clients' snapshots of the disk (one missing here is deleted). */
  snapshots?: Record<string, string[]>
}

export type DiskGeoMessage =
  | GeoAccountMessage
  | GeoBeginMessage
  | GeoPagesMessage
  | GeoCommitMessage
  | GeoRoundMessage

/** One message as bytes. */
export function encodeGeoMessage(header: DiskGeoMessage, data?: Buffer[]): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(8)
  MAGIC.copy(prefix, 0)
  prefix.writeUInt32LE(h.length, 4)
  return Buffer.concat([prefix, h, ...(data ?? [])])
}

/** The digest of a point's chunk plan (the `plan` of its begin and pages messages). */
export function planDigest(chunks: readonly { ranges: ByteRange[]; clears: ByteRange[] }[]): string {
  const h = createHash('sha256')
  for (const c of chunks) h.update(JSON.stringify({ ranges: c.ranges, clears: c.clears }))
  return h.digest('hex')
}

/** The CRC-32 of a pages message's data (its `crc32`). */
export function dataCrc(data: Uint8Array): number {
  return crc32(data)
}

/** The SHA-256 (hex) of a pages message's data (the `sha256` of older primaries). */
function dataSha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

const refuse = (why: string) =>
  new CairnError('ReplicationRefused', `Cannot accept the replication message: ${why}`)

const isRanges = (v: unknown): v is ByteRange[] =>
  Array.isArray(v) &&
  v.every(
    (r: unknown) =>
      typeof r === 'object' &&
      r !== null &&
      Number.isSafeInteger((r as ByteRange).start) &&
      Number.isSafeInteger((r as ByteRange).end) &&
      (r as ByteRange).start >= 0 &&
      (r as ByteRange).start < (r as ByteRange).end &&
      (r as ByteRange).start % 512 === 0 &&
      (r as ByteRange).end % 512 === 0,
  )

const str = (v: unknown) => typeof v === 'string' && v.length > 0

/** Parses and checks one message (magic, header shape, data length and digest) before anything believes it. */
export function decodeGeoMessage(body: Uint8Array): { header: DiskGeoMessage; data: Buffer } {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (buf.length < 8 || !buf.subarray(0, 4).equals(MAGIC)) throw refuse('it does not start with CGD1')
  const hlen = buf.readUInt32LE(4)
  if (hlen > MAX_HEADER || 8 + hlen > buf.length) throw refuse(`its header length ${hlen} is out of range`)
  let header: DiskGeoMessage
  try {
    header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')) as DiskGeoMessage
  } catch {
    throw refuse('its header is not JSON')
  }
  const data = buf.subarray(8 + hlen)
  const h = header as unknown as Record<string, unknown>
  if (typeof h !== 'object' || h === null || !str(h.account)) throw refuse('its header names no account')
  const disk = () => str(h.container) && str(h.disk) && str(h.target)
  switch (header.kind) {
    case 'account':
      if (!str(h.region) || !str(h.redundancy) || !Array.isArray(h.keys) || h.keys.length !== 2)
        throw refuse('an account message needs region, redundancy and two keys')
      break
    case 'begin':
      if (
        !disk() ||
        !Number.isSafeInteger(h.size) ||
        (h.base !== null && !str(h.base)) ||
        !str(h.plan) ||
        !Number.isSafeInteger(h.chunks)
      )
        throw refuse('a begin message needs container, disk, target, base, size, plan and chunks')
      break
    case 'pages': {
      if (
        !disk() ||
        !str(h.plan) ||
        !Number.isSafeInteger(h.chunk) ||
        !isRanges(h.ranges) ||
        !isRanges(h.clears)
      )
        throw refuse('a pages message needs container, disk, target, plan, chunk and aligned ranges')
      const bytes = header.ranges.reduce((n, r) => n + r.end - r.start, 0)
      if (bytes !== data.length)
        throw refuse(`chunk ${header.chunk} carries ${data.length} bytes for ${bytes} bytes of ranges`)
      if (Number.isSafeInteger(h.crc32)) {
        if (dataCrc(data) !== header.crc32)
          throw refuse(`chunk ${header.chunk} of ${header.target} does not match its CRC-32`)
      } else if (str(h.sha256)) {
        if (dataSha256(data) !== header.sha256)
          throw refuse(`chunk ${header.chunk} of ${header.target} does not match its SHA-256`)
      } else throw refuse(`chunk ${header.chunk} of ${header.target} carries no digest of its data`)
      break
    }
    case 'commit':
      if (
        !disk() ||
        !str(h.plan) ||
        !Number.isSafeInteger(h.chunks) ||
        !Number.isSafeInteger(h.sequenceNumber)
      )
        throw refuse('a commit message needs container, disk, target, plan, chunks and sequenceNumber')
      break
    case 'round':
      if (!Number.isSafeInteger(h.syncTime) || !Array.isArray(h.disks) || !Array.isArray(h.containers))
        throw refuse('a round message needs syncTime, containers and disks')
      if (
        h.snapshots !== undefined &&
        (typeof h.snapshots !== 'object' ||
          h.snapshots === null ||
          !Object.values(h.snapshots).every((v) => Array.isArray(v) && v.every(str)))
      )
        throw refuse("a round message's snapshots must list snapshot ids per disk")
      break
    default:
      throw refuse(`"${String(h.kind)}" is not a kind of message`)
  }
  return { header, data }
}
