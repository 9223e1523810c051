// What every blob API operation receives, and what it answers.
import type { IncomingMessage } from 'node:http'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { alignedBuffer } from '../util/index.js'
import { crc64WantsSharedBodies } from './_crc64-offload.js'
import { DIRECT_BODY, type DirectBody } from './_direct-body.js'
import type { SasGrant } from './_sas.js'
import { blobError } from './blob-errors.js'

/** One authenticated request, parsed. */
export interface BlobContext {
  store: DiskStore
  req: IncomingMessage
  account: string
  /** Empty for service operations. */
  container: string
  /** Empty for service and container operations. */
  blob: string
  query: URLSearchParams
  /** `http://host:port/account`, as the client addressed it. */
  accountUrl: string
  /** How the request was authenticated: a key of the account (Shared Key) or a SAS. */
  auth?: 'sharedKey' | 'sas'
  /** What the request's SAS grants, when a SAS authenticated it. */
  sas?: SasGrant
  /** Geo-replication of the accounts, when the service replicates any. */
  geo?: GeoEndpoints
}

/** What the blob API needs to know of geo-replication (docs/replication.md, "Disks"). */
export interface GeoEndpoints {
  /** `secondary` when this site holds the account's read-only replica. */
  role(account: string): 'primary' | 'secondary' | undefined
  /** True when clients may read the replica (RA-GRS). */
  readable(account: string): boolean
  /** The snapshot that holds the replica disk's last complete point. */
  readSnapshot(ref: DiskRef): string | undefined
  /** Get Blob Service Stats: the secondary's GeoReplication status and LastSyncTime. */
  stats(account: string): { status: string; lastSyncTime?: Date }
}

/** An operation's answer; the server adds the headers every answer carries. */
export interface Answer {
  status: number
  headers?: Record<string, string | number | undefined>
  body?: string | Buffer | AsyncIterable<Buffer>
  /** Content-Type of a string body; default application/xml. */
  contentType?: string
  /** Called once a Buffer body has been handed to the connection (not called if it never is). */
  sent?: () => void
}

/** Bytes of the reused page buffers: the most one Put Page or one Get Blob read moves. */
export const PAGE_BUFFER = 4 * 1024 * 1024
/** Put Page bodies' buffers, and Get Blob reads' (kept apart: see takePageBuffer). */
const pageBuffers = { write: [] as Buffer[], read: [] as Buffer[] }

/**
 * An aligned buffer of PAGE_BUFFER bytes, reused across requests: the disk store moves the bytes of
 * direct writes and reads between it and the device without a copy, and a fresh 4 MiB buffer per
 * request would cost a page fault per page. Give it back, to the same use, only once nothing uses it
 * any more. Put Page bodies (`write`) lie on transparent huge pages; Get Blob reads (`read`) do not:
 * measured quietly, huge pages took uploads from ~395 to 505-565 MB/s but downloads from 375-520 to
 * 230-325 MB/s (BENCHMARKS.md, "Blob API").
 */
export function takePageBuffer(use: 'write' | 'read'): Buffer {
  // Shared memory only where the CRC64 of a Put Page body is computed on a worker thread, reading it
  // in place (_crc64-offload.ts): copies into shared memory are slow.
  return (
    pageBuffers[use].pop() ??
    alignedBuffer(PAGE_BUFFER, { shared: crc64WantsSharedBodies, hugePages: use === 'write' })
  )
}

export function givePageBuffer(use: 'write' | 'read', b: Buffer): void {
  if (pageBuffers[use].length < 16) pageBuffers[use].push(b)
}

/** The disk a blob request names. */
export function diskRef(ctx: BlobContext): DiskRef {
  return { account: ctx.account, container: ctx.container, disk: ctx.blob }
}

/** A query parameter, or undefined when absent or empty. */
export function queryOf(ctx: BlobContext, name: string): string | undefined {
  const v = ctx.query.get(name)
  return v === null || v === '' ? undefined : v
}

/** Where readBody puts a body, and what else it does with each chunk. */
export interface ReadBodyOptions {
  /** A buffer to receive the body into when it has room for the Content-Length. */
  into?: Buffer
  /** Given every chunk as it arrives (a checksum summed while the chunk is in the cache). */
  sum?: { update(chunk: Uint8Array): void }
}

/**
 * Reads a request body of at most `limit` bytes. A body with a Content-Length is received straight into
 * one buffer of that size as its chunks arrive (no list of chunks to join at the end, and each chunk is
 * copied while the socket has just left it in the cache).
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  options: ReadBodyOptions = {},
): Promise<Buffer> {
  const { into: target, sum } = options
  const header = req.headers['content-length']
  const declared = header === undefined || !/^\d+$/.test(header) ? undefined : Number(header)
  if (declared !== undefined && declared > limit)
    return Promise.reject(
      blobError('RequestBodyTooLarge', `Cannot accept a body of ${declared} bytes: the limit is ${limit}`),
    )
  if (declared === 0 || req.readableEnded) return Promise.resolve(Buffer.alloc(0))
  // A Put Page body the server reads off the socket itself, straight into the buffer (_direct-body.ts).
  const direct = (req as unknown as Record<symbol, DirectBody | undefined>)[DIRECT_BODY]
  if (direct !== undefined && declared !== undefined) {
    const into =
      target !== undefined && target.length >= declared
        ? target.subarray(0, declared)
        : Buffer.allocUnsafe(declared)
    return direct.read(into, sum).then(
      () => into,
      (err: Error) => {
        throw blobError('InvalidInput', err.message)
      },
    )
  }
  return new Promise((resolve, reject) => {
    // Node's parser never delivers more than Content-Length; without one the chunks are gathered.
    const into =
      declared === undefined
        ? undefined
        : target !== undefined && target.length >= declared
          ? target.subarray(0, declared)
          : Buffer.allocUnsafe(declared)
    const chunks: Buffer[] = []
    let total = 0
    const onData = (chunk: Buffer) => {
      if (total + chunk.length > limit) {
        finish(blobError('RequestBodyTooLarge', `Cannot accept a body over ${limit} bytes`))
        return
      }
      if (into !== undefined) chunk.copy(into, total)
      else chunks.push(chunk)
      sum?.update(chunk)
      total += chunk.length
    }
    const onEnd = () => finish(undefined)
    // The client went away mid-body (Node reports it as an error, or only as the close).
    const left = (why: string) =>
      finish(blobError('InvalidInput', `Cannot read the request body: ${why} after ${total} bytes`))
    const onClose = () => left('the client left')
    const onError = (err: Error) => left(`the connection failed (${err.message})`)
    const finish = (err: Error | undefined) => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onClose)
      req.off('error', onError)
      if (err !== undefined) reject(err)
      else if (into === undefined) resolve(Buffer.concat(chunks, total))
      else resolve(total === into.length ? into : into.subarray(0, total))
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
    req.on('error', onError)
  })
}
