// Test support: a byte-level NBD client that can follow the protocol or break it on purpose.
import { connect, type Socket } from 'node:net'
import * as P from './_protocol.js'

/** One reply to a transmission request, simple or assembled from structured chunks. */
export interface RawReply {
  error: number
  message?: string
  data?: Buffer
  /** (length, flags) pairs of a BLOCK_STATUS reply. */
  extents?: [number, number][]
  /** Structured chunk types received, in order. */
  chunks: number[]
}

/** A hand-driven NBD client over one socket. */
export class RawClient {
  readonly socket: Socket
  readonly #chunks: Buffer[] = []
  #buffered = 0
  #waiter: (() => void) | undefined
  #ended = false
  #structured = false
  #pending = new Map<bigint, { length: number; resolve: (r: RawReply) => void; reply: RawReply }>()
  #nextCookie = 1n
  #reading = false
  /** Settles when the server closes the connection. */
  readonly ended: Promise<void>

  private constructor(socket: Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    let onEnd!: () => void
    this.ended = new Promise((r) => (onEnd = r))
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c)
      this.#buffered += c.length
      this.#waiter?.()
    })
    const finish = () => {
      this.#ended = true
      this.#waiter?.()
      onEnd()
    }
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', () => {})
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawClient(s)))
      s.once('error', reject)
    })
  }

  /** Connects, checks the greeting and answers with the given client flags. */
  static async handshake(
    port: number,
    clientFlags = P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES,
  ): Promise<RawClient> {
    const c = await RawClient.connect(port)
    const g = await c.read(18)
    if (g.readBigUInt64BE(0) !== P.NBDMAGIC || g.readBigUInt64BE(8) !== P.IHAVEOPT)
      throw new Error('bad greeting')
    const flags = Buffer.alloc(4)
    flags.writeUInt32BE(clientFlags)
    c.write(flags)
    return c
  }

  /** Handshake, structured replies, base:allocation and NBD_OPT_GO for `name`. */
  static async open(port: number, name: string, options: { structured?: boolean } = {}): Promise<RawClient> {
    const c = await RawClient.handshake(port)
    if (options.structured !== false) {
      await c.option(P.OPT_STRUCTURED_REPLY)
      await c.option(P.OPT_SET_META_CONTEXT, metaContextData(name, [P.BASE_ALLOCATION]))
      c.#structured = true
    }
    const replies = await c.option(P.OPT_GO, goData(name))
    const last = replies[replies.length - 1]
    if (last?.type !== P.REP_ACK)
      throw new Error(`NBD_OPT_GO failed: ${last?.type.toString(16)} ${last?.data}`)
    return c
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Reads exactly n bytes; rejects if the connection ends first. */
  async read(n: number): Promise<Buffer> {
    while (this.#buffered < n) {
      if (this.#ended) throw new Error(`connection ended with ${this.#buffered} of ${n} bytes`)
      await new Promise<void>((r) => (this.#waiter = r))
      this.#waiter = undefined
    }
    const all = Buffer.concat(this.#chunks)
    this.#chunks.length = 0
    if (all.length > n) this.#chunks.push(all.subarray(n))
    this.#buffered -= n
    return all.subarray(0, n)
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(type: number, data: Buffer = Buffer.alloc(0)): Promise<{ type: number; data: Buffer }[]> {
    this.write(optionHeader(type, data.length))
    if (data.length > 0) this.write(data)
    const replies: { type: number; data: Buffer }[] = []
    for (;;) {
      const h = await this.read(20)
      if (h.readBigUInt64BE(0) !== P.OPTION_REPLY_MAGIC) throw new Error('bad option reply magic')
      const rtype = h.readUInt32BE(12)
      const body = await this.read(h.readUInt32BE(16))
      replies.push({ type: rtype, data: body })
      if (rtype === P.REP_ACK || rtype >= 0x80000000) return replies
    }
  }

  /** Sends one request (payload for writes) and resolves with its reply, whatever order replies come in. */
  request(
    type: number,
    offset: number,
    length: number,
    options: { flags?: number; payload?: Buffer } = {},
  ): Promise<RawReply> {
    const cookie = this.#nextCookie++
    const h = Buffer.alloc(28)
    h.writeUInt32BE(P.REQUEST_MAGIC, 0)
    h.writeUInt16BE(options.flags ?? 0, 4)
    h.writeUInt16BE(type, 6)
    h.writeBigUInt64BE(cookie, 8)
    h.writeBigUInt64BE(BigInt(offset), 16)
    h.writeUInt32BE(length, 24)
    const promise = new Promise<RawReply>((resolve) => {
      this.#pending.set(cookie, {
        length: type === P.CMD_READ ? length : 0,
        resolve,
        reply: { error: 0, chunks: [] },
      })
    })
    this.write(options.payload ? Buffer.concat([h, options.payload]) : h)
    void this.#readReplies()
    return promise
  }

  /** NBD_CMD_DISC, then waits for the server to close. */
  async disconnect(): Promise<void> {
    const h = Buffer.alloc(28)
    h.writeUInt32BE(P.REQUEST_MAGIC, 0)
    h.writeUInt16BE(P.CMD_DISC, 6)
    this.write(h)
    await this.ended
  }

  async #readReplies(): Promise<void> {
    if (this.#reading) return
    this.#reading = true
    try {
      while (this.#pending.size > 0) {
        const magic = (await this.read(4)).readUInt32BE(0)
        if (magic === P.SIMPLE_REPLY_MAGIC) {
          const rest = await this.read(12)
          const cookie = rest.readBigUInt64BE(4)
          const p = this.#take(cookie)
          p.reply.error = rest.readUInt32BE(0)
          if (p.reply.error === 0 && p.length > 0 && !this.#structured)
            p.reply.data = await this.read(p.length)
          p.resolve(p.reply)
        } else if (magic === P.STRUCTURED_REPLY_MAGIC) {
          const rest = await this.read(16)
          const flags = rest.readUInt16BE(0)
          const type = rest.readUInt16BE(2)
          const cookie = rest.readBigUInt64BE(4)
          const body = await this.read(rest.readUInt32BE(12))
          const p = this.#pending.get(cookie)
          if (p === undefined) throw new Error(`reply for unknown cookie ${cookie}`)
          p.reply.chunks.push(type)
          if (type === P.REPLY_TYPE_OFFSET_DATA) {
            p.reply.data ??= Buffer.alloc(p.length)
            body.copy(p.reply.data, 0, 8)
          } else if (type === P.REPLY_TYPE_BLOCK_STATUS) {
            p.reply.extents = []
            for (let at = 4; at < body.length; at += 8)
              p.reply.extents.push([body.readUInt32BE(at), body.readUInt32BE(at + 4)])
          } else if (type & 0x8000) {
            p.reply.error = body.readUInt32BE(0)
            p.reply.message = body.toString('utf8', 6, 6 + body.readUInt16BE(4))
          }
          if (flags & P.REPLY_FLAG_DONE) {
            this.#pending.delete(cookie)
            p.resolve(p.reply)
          }
        } else {
          throw new Error(`bad reply magic ${magic.toString(16)}`)
        }
      }
    } catch {
      for (const p of this.#pending.values()) p.resolve({ error: -1, chunks: [] })
      this.#pending.clear()
    } finally {
      this.#reading = false
    }
  }

  #take(cookie: bigint) {
    const p = this.#pending.get(cookie)
    if (p === undefined) throw new Error(`reply for unknown cookie ${cookie}`)
    this.#pending.delete(cookie)
    return p
  }
}

export function optionHeader(type: number, length: number): Buffer {
  const h = Buffer.alloc(16)
  h.writeBigUInt64BE(P.IHAVEOPT, 0)
  h.writeUInt32BE(type, 8)
  h.writeUInt32BE(length, 12)
  return h
}

export function goData(name: string, infos: number[] = []): Buffer {
  const n = Buffer.from(name)
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length)
  b.writeUInt32BE(n.length, 0)
  n.copy(b, 4)
  b.writeUInt16BE(infos.length, 4 + n.length)
  for (const [i, t] of infos.entries()) b.writeUInt16BE(t, 6 + n.length + 2 * i)
  return b
}

export function metaContextData(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)]
  parts[0]?.writeUInt32BE(Buffer.byteLength(name))
  parts[2]?.writeUInt32BE(queries.length)
  for (const q of queries) {
    const l = Buffer.alloc(4)
    l.writeUInt32BE(Buffer.byteLength(q))
    parts.push(l, Buffer.from(q))
  }
  return Buffer.concat(parts)
}
