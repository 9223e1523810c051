// Put Page bodies read straight off the socket into the page buffer.
//
// node:http's parser copies every body chunk it reads (up to 64 KiB) into a fresh buffer, which the
// request stream then hands out and only the garbage collector frees; the blob API then copied each
// chunk into its page buffer. For a 4 MiB Put Page that is 64 allocations, two copies of every byte and
// a heap that grows by tens of MiB between collections (every new page of it a page fault). Here a
// Put Page update whose body goes into a page buffer leaves the parser once its headers are parsed, the
// way node:http hands over an upgraded connection (`'upgrade'`): the socket then reads into the page
// buffer itself (the user-buffer reads of net.Socket's `onread` option, each read sized to what is left
// of the body, so nothing past the body is read), and once the answer is sent the connection goes back
// to node:http for its next request. Nothing else changes: the same handler answers, the body is summed
// and checked as before, the answer waits for the store's durable write as before.
//
// It relies on parts of node:http that are not documented (the parser's onIncoming, the user-buffer
// fields of net.Socket); where any is missing the connection is served the ordinary way.
// `CAIRN_BLOB_DIRECT_BODY=0` turns it off.
import * as http from 'node:http'
import type { Socket } from 'node:net'

/** Bodies read this way in this process (the tests check that the path is taken). */
export const directBodies = { read: 0 }

/** On a request served this way: how its handler reads the body. */
export const DIRECT_BODY = Symbol('directBody')

/** A request body read off the socket into a buffer the caller gives. */
export interface DirectBody {
  /** Reads the whole body into `into` (at least the body's length), summing it; resolves its length. */
  read(into: Buffer, sum?: { update(chunk: Uint8Array): void }): Promise<number>
}

export interface DirectBodyOptions {
  /** Whether a request's body is read this way (called once its headers are parsed). */
  wants(req: http.IncomingMessage): boolean
  /** node:http's request handler, called with the request and its answer. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): void
  /** The whole request must have arrived within this (0: no limit), as node:http's requestTimeout. */
  requestTimeoutMs: number
  /** An idle connection is closed after this, as node:http's keepAliveTimeout. */
  keepAliveTimeoutMs: number
  /** node:http's headersTimeout: a connection handed back must send its next request's headers within it. */
  headersTimeoutMs: number
}

/** The fields of net.Socket behind its `onread` option. */
interface UserBuffer {
  buffer: symbol
  callback: symbol
  next: symbol
}

interface Handle {
  useUserBuffer(b: Uint8Array): void
  readStart(): number
  readStop(): number
  reading: boolean
  _consumed?: boolean
}

type Internal = Socket & {
  parser?: { onIncoming?: (req: http.IncomingMessage, keepAlive: boolean) => number } | null
  _handle?: Handle | null
  _httpMessage?: unknown
} & Record<symbol, unknown>

const connectionListener = (
  http as unknown as { _connectionListener?: (this: http.Server, s: Socket) => void }
)._connectionListener

/** Marks a request taken out of the parser, with its keep-alive. */
const TAKEN = Symbol('directPutPage')

/** The user-buffer fields of a socket, found by their names; undefined where this Node has none. */
function userBufferOf(socket: Internal): UserBuffer | undefined {
  const symbols = Object.getOwnPropertySymbols(socket)
  const find = (name: string) => symbols.find((s) => s.description === name)
  const buffer = find('kBuffer')
  const callback = find('kBufferCb')
  const next = find('kBufferGen')
  if (buffer === undefined || callback === undefined || next === undefined) return undefined
  return { buffer, callback, next }
}

/**
 * Serves the requests `options.wants` picks with their bodies read straight off the socket (plain HTTP
 * only). Answers undefined when this Node lacks what it needs or `CAIRN_BLOB_DIRECT_BODY=0`.
 */
export function serveDirectBodies(server: http.Server, options: DirectBodyOptions): DirectBodies | undefined {
  if (process.env.CAIRN_BLOB_DIRECT_BODY === '0' || typeof connectionListener !== 'function') return undefined
  // Connections handed back to node:http and idle since: its new parser counts as busy until a request
  // comes (node:http's closeIdleConnections passes it by), so they are closed from here.
  const idleSockets = new Set<Internal>()

  /** Takes over the parser's hand-out of requests on a connection (again after each direct request). */
  const watch = (socket: Internal, idleTimer: boolean) => {
    const parser = socket.parser
    const handle = socket._handle
    const orig = parser?.onIncoming
    if (parser == null || typeof orig !== 'function' || typeof handle?.useUserBuffer !== 'function') return
    const fields = userBufferOf(socket)
    if (fields === undefined) return
    let idle = idleTimer
    const forget = () => idleSockets.delete(socket)
    if (idle) {
      idleSockets.add(socket)
      socket.once('close', forget)
    }
    parser.onIncoming = (incoming, keepAlive) => {
      const req = incoming as http.IncomingMessage & { upgrade: boolean }
      if (idle) {
        socket.setTimeout(0)
        socket.off('close', forget)
        forget()
        idle = false
      }
      // Not while an earlier answer on this connection is still being written (pipelined requests).
      if (socket._httpMessage == null && options.wants(req)) {
        ;(req as unknown as Record<symbol, unknown>)[TAKEN] = { keepAlive, fields }
        // What node:http's own handler answers for an upgrade: the parser stops after the headers and
        // the socket is handed to the 'upgrade' listener with what it read past them.
        req.upgrade = true
        return 2
      }
      // Other upgrade requests are served as plain requests, as before this listener existed.
      if (req.upgrade && req.method !== 'CONNECT') req.upgrade = false
      return orig(incoming, keepAlive)
    }
  }

  server.on('connection', (socket: Socket) => watch(socket as Internal, false))
  server.on('upgrade', (req: http.IncomingMessage, s: Socket, head: Buffer) => {
    const socket = s as Internal
    const taken = (req as unknown as Record<symbol, unknown>)[TAKEN] as
      | { keepAlive: boolean; fields: UserBuffer }
      | undefined
    if (taken === undefined || socket._handle == null) {
      socket.destroy()
      return
    }
    // node:http took its listeners off the socket: a failure now only ends this connection.
    const onError = () => socket.destroy()
    socket.on('error', onError)
    const body = new SocketBody(socket, taken.fields, head, Number(req.headers['content-length']))
    const timer =
      options.requestTimeoutMs > 0
        ? setTimeout(() => socket.destroy(), options.requestTimeoutMs).unref()
        : undefined
    ;(req as unknown as Record<symbol, unknown>)[DIRECT_BODY] = body
    const res = new http.ServerResponse(req)
    res.shouldKeepAlive = taken.keepAlive
    res.assignSocket(socket)
    res.once('finish', () => {
      res.detachSocket(socket)
      // Whatever of the body the handler did not read (it refused the request) is read and dropped.
      body.drain().then(
        () => {
          if (timer !== undefined) clearTimeout(timer)
          socket.off('error', onError)
          if (socket.destroyed) return
          if (!res.shouldKeepAlive) {
            socket.destroySoon()
            return
          }
          // Back to node:http: a new parser reads the connection's next request off the handle.
          const handle = socket._handle!
          handle._consumed = false
          connectionListener.call(server, socket)
          watch(socket, true)
          // Its new parser holds the connection to the header timeout as a new connection (node:http
          // answers 408 and closes when it runs out): an idle connection is closed before that.
          const idleMs = Math.min(
            options.keepAliveTimeoutMs > 0 ? options.keepAliveTimeoutMs : Number.POSITIVE_INFINITY,
            options.headersTimeoutMs > 0
              ? Math.max(1_000, options.headersTimeoutMs - 1_000)
              : Number.POSITIVE_INFINITY,
          )
          if (Number.isFinite(idleMs)) socket.setTimeout(idleMs)
          handle.reading = true
          handle.readStart()
          if (body.extra.length > 0) socket.emit('data', body.extra)
        },
        () => {
          if (timer !== undefined) clearTimeout(timer)
          socket.destroy()
        },
      )
    })
    res.once('close', () => {
      if (!res.writableFinished) socket.destroy()
    })
    options.serve(req, res)
  })
  return {
    closeIdleConnections() {
      for (const s of idleSockets) s.destroy()
      idleSockets.clear()
    },
  }
}

/** What serveDirectBodies answers. */
export interface DirectBodies {
  /** Closes the connections handed back to node:http that wait for their next request. */
  closeIdleConnections(): void
}

/** One request's body, read off its socket. */
class SocketBody implements DirectBody {
  readonly #socket: Internal
  readonly #fields: UserBuffer
  readonly #length: number
  #head: Buffer
  #received = 0
  #reading: Promise<number> | undefined
  /** Bytes read past the body with its headers (a pipelined next request). */
  extra: Buffer = Buffer.alloc(0)

  constructor(socket: Internal, fields: UserBuffer, head: Buffer, length: number) {
    this.#socket = socket
    this.#fields = fields
    this.#length = length
    this.#head = head
  }

  read(into: Buffer, sum?: { update(chunk: Uint8Array): void }): Promise<number> {
    if (this.#reading !== undefined) return Promise.reject(new Error('the body was read already'))
    if (into.length < this.#length) return Promise.reject(new Error('the buffer is shorter than the body'))
    this.#reading = this.#read(into, sum).then((n) => {
      directBodies.read++
      return n
    })
    return this.#reading
  }

  /** Reads and drops what is left of the body; resolves once the connection is at the next request. */
  async drain(): Promise<void> {
    if (this.#reading === undefined) this.#reading = this.#read(Buffer.allocUnsafe(this.#length))
    await this.#reading
  }

  #read(into: Buffer, sum?: { update(chunk: Uint8Array): void }): Promise<number> {
    const length = this.#length
    const head = this.#head
    const first = Math.min(head.length, length)
    if (first > 0) {
      head.copy(into, 0, 0, first)
      sum?.update(into.subarray(0, first))
    }
    this.extra = head.subarray(first)
    this.#head = Buffer.alloc(0)
    this.#received = first
    if (first === length) return Promise.resolve(length)
    const socket = this.#socket
    const handle = socket._handle!
    const { buffer, callback, next } = this.#fields
    return new Promise<number>((resolve, reject) => {
      const done = (err: Error | undefined) => {
        socket[buffer] = null
        socket[callback] = null
        socket[next] = null
        if (handle.reading) {
          handle.reading = false
          handle.readStop()
        }
        socket.off('end', onEnd)
        socket.off('close', onClose)
        socket.off('error', onError)
        if (err === undefined) resolve(length)
        else reject(err)
      }
      const left = (why: string) =>
        done(new Error(`Cannot read the request body: ${why} after ${this.#received} bytes`))
      const onEnd = () => left('the client left')
      const onClose = () => left('the client left')
      const onError = (err: Error) => left(`the connection failed (${err.message})`)
      socket.on('end', onEnd)
      socket.on('close', onClose)
      socket.on('error', onError)
      // Each read goes to what is left of the body, and no further.
      const rest = () => into.subarray(this.#received, length)
      socket[callback] = (n: number, b: Buffer) => {
        sum?.update(b.subarray(0, n))
        this.#received += n
        if (this.#received < length) return
        done(undefined)
        return false
      }
      socket[next] = () => (this.#received < length ? rest() : null)
      const target = rest()
      socket[buffer] = target
      handle.useUserBuffer(target)
      handle.reading = true
      handle.readStart()
    })
  }
}
