// What every blob API operation receives, and what it answers.
import type { IncomingMessage } from 'node:http'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
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
}

/** An operation's answer; the server adds the headers every answer carries. */
export interface Answer {
  status: number
  headers?: Record<string, string | number | undefined>
  body?: string | Buffer | AsyncIterable<Buffer>
  /** Content-Type of a string body; default application/xml. */
  contentType?: string
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

/** Reads a request body of at most `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN)
  if (declared > limit)
    throw blobError('RequestBodyTooLarge', `Cannot accept a body of ${declared} bytes: the limit is ${limit}`)
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req) {
    const b = chunk as Buffer
    total += b.length
    if (total > limit) throw blobError('RequestBodyTooLarge', `Cannot accept a body over ${limit} bytes`)
    chunks.push(b)
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total)
}
