// The messages a primary site sends its paired secondary to replicate a storage account's disks
// (docs/replication.md, "Disks"). One message is one HTTP body:
//
//   offset 0  4 bytes  magic "CGD1"
//          4  4 bytes  header length H (uint32 LE)
//          8  H bytes  header: UTF-8 JSON, one of DiskGeoMessage
//        8+H  …        data: for `pages`, the bytes of `ranges` one after the other
//
// A `pages` header carries the SHA-256 of its data, checked on arrival. Every message names the point it
// belongs to (the primary's snapshot id `target`), so the receiver can refuse one out of order.
//
// A point's diff is cut into numbered chunks; its `plan` is the SHA-256 of the JSON list of every
// chunk's `{ ranges, clears }`. `begin` and every `pages` name the plan: a point cut short resumes with
// the chunks the secondary lacks only while the plan is the same (the same base, target and cutting),
// and a chunk of another plan is refused.
import { createHash } from 'node:crypto'
import type { ByteRange, ContentProperties } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'

const MAGIC = Buffer.from('CGD1', 'latin1')
/** Largest header accepted (a pages header lists its ranges). */
const MAX_HEADER = 4 * 1024 * 1024

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
  sha256: string
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

/** The SHA-256 (hex) of a pages message's data. */
export function dataDigest(data: Buffer[]): string {
  const h = createHash('sha256')
  for (const b of data) h.update(b)
  return h.digest('hex')
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
      if (dataDigest([data]) !== header.sha256)
        throw refuse(`chunk ${header.chunk} of ${header.target} does not match its SHA-256`)
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
