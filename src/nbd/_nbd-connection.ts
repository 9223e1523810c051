// NbdConnection: one NBD client connection, from the newstyle handshake through the transmission phase.
//
// The input parser, request dispatch, flow control (pausing the socket on in-flight limits and
// unread replies), TLS, the reply cork and closing act on the same state machine and socket, so they
// stay in one class. What needs none of that lives beside it: _negotiation.ts (answering each
// option), _check-request.ts (request checks, errors), _option-data.ts (option data),
// _reply-headers.ts (replies), _protocol.ts (constants), _byte-queue.ts, _read-into.ts.

import type { Socket } from 'node:net'
import { type SecureContext, TLSSocket } from 'node:tls'
import type { Logger } from '../util/index.js'
import type { BufferPool } from './_buffer-pool.js'
import { ByteQueue } from './_byte-queue.js'
import { COMMAND_NAMES, checkRequest, describeFailure, type Request } from './_check-request.js'
import { closeExport, Negotiation, type NegotiationHost } from './_negotiation.js'
import * as P from './_protocol.js'
import { readInto } from './_read-into.js'
import { type BlockExtent, blockStatusReply, errorReply, readReply, simpleHeader } from './_reply-headers.js'
import type { ExportProvider, NbdExport } from './export-provider.js'
import type { PskKeyring } from './psk-keys.js'

/** TLS a connection requires (FORCEDTLS): the context of its handshakes and, for PSK, the keys. */
export interface ConnectionTls {
  context: SecureContext
  /** Pre-shared keys: the identity a client authenticated with limits the exports it may open. */
  psk?: PskKeyring
}

/** Limits one connection enforces; see NbdServerOptions for their meaning and defaults. */
export interface ConnectionLimits {
  maxRequest: number
  maxInFlight: number
  maxInFlightBytes: number
  maxOptionLength: number
  maxOptions: number
  handshakeTimeoutMs: number
  /** Time a client has from connecting to choosing an export, however busy it keeps the negotiation. */
  handshakeDeadlineMs: number
  listLimit: number
  maxExtents: number
  /** Told each request served: its command, whether it succeeded, its duration and payload bytes. */
  observe?: NbdObserver
}

/** Receives each request an NBD server served (the metrics). */
export type NbdObserver = (r: { command: string; ok: boolean; seconds: number; bytes: number }) => void

type State =
  | 'client-flags'
  | 'option-header'
  | 'option-data'
  | 'option-busy'
  | 'tls-handshake'
  | 'request-header'
  | 'request-payload'
  | 'closing'
  | 'closed'

/** Thrown inside the parser when the client broke the protocol; the connection is dropped. */
class ProtocolViolation extends Error {}

const NO_PAYLOAD = Buffer.alloc(0)

/** Input that is not a write payload is read into slabs of this size, cut into reads of at most 64 KiB. */
const SLAB_SIZE = 1024 * 1024
const STAGING_READ = 64 * 1024
/** After a large write, the next read is this small: it holds the next header, and the payload that follows goes straight to its buffer. */
const HEADER_READ = 4 * 1024
/** Payload still to come from which reads go straight into the payload buffer. */
const DIRECT_READ_MIN = 4 * 1024
/** A write payload at least this large makes the next read a HEADER_READ. */
const LARGE_WRITE = 64 * 1024
/** Reply bytes held by the cork at most before they are sent. */
const CORK_LIMIT = 1024 * 1024
/**
 * How long a connection we ended (NBD_OPT_ABORT, NBD_CMD_DISC, shutdown) waits for the client to close
 * its side before the socket is dropped: a client that never does must not keep its slot and fd.
 */
const CLOSE_LINGER_MS = 2000

/**
 * One client connection: the fixed newstyle handshake, then the transmission phase with up to
 * `maxInFlight` requests served at once (replies may leave out of order). Input is parsed as it
 * arrives; the socket is paused while an option is handled, while the in-flight limits are reached
 * and while the client does not read its replies.
 */
export class NbdConnection {
  /** The client's socket; after NBD_OPT_STARTTLS, the TLS socket over it. */
  #socket: Socket
  readonly #tls: ConnectionTls | undefined
  /** Whether the TLS handshake is done (always false without TLS). */
  #secured = false
  /** The PSK identity the client authenticated with. */
  #identity: string | undefined
  readonly #provider: ExportProvider
  readonly #log: Logger
  readonly #limits: ConnectionLimits
  readonly #pool: BufferPool
  readonly #queue = new ByteQueue()
  readonly #closed: Promise<void>
  #resolveClosed!: () => void
  #state: State = 'client-flags'
  #pumping = false
  /** The option phase and what it negotiated (structured replies, base:allocation). */
  readonly #negotiation: Negotiation
  #optionCount = 0
  #option = { type: 0, length: 0 }
  #request: Request | undefined
  /** The payload of the WRITE being received and how much of it has arrived. */
  #payload: Buffer | undefined
  #filled = 0
  /** Whether the payload came from the pool (else it is a view of input already queued). */
  #payloadPooled = false
  /** Whether the read in progress goes into the payload (else into the slab). */
  #readingPayload = false
  #slab = Buffer.alloc(0)
  #slabAt = 0
  #afterLargeWrite = false
  #export: NbdExport | undefined
  #inFlight = 0
  #inFlightBytes = 0
  #handshakeTimer: NodeJS.Timeout | undefined
  #handshakeDeadline: NodeJS.Timeout | undefined
  #releasing = false
  #released = false
  #closeAfterRequest = false
  #corked = false
  /** Bytes written since the socket was corked, and which corking that is. */
  #corkedBytes = 0
  #corkRound = 0

  /** Requests answered with an error, until observed. */
  readonly #failed = new WeakSet<Request>()

  constructor(
    socket: Socket,
    provider: ExportProvider,
    log: Logger,
    limits: ConnectionLimits,
    pool: BufferPool,
    tls?: ConnectionTls,
  ) {
    this.#socket = socket
    this.#tls = tls
    this.#provider = provider
    this.#log = log
    this.#limits = limits
    this.#pool = pool
    this.#negotiation = new Negotiation(this.#negotiationHost())
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    socket.setNoDelay(true)
    // Reads go into buffers of our choosing (see readInto); where that is not possible, and on a
    // connection that will turn to TLS (whose socket reads for itself), 'data' events.
    const direct =
      tls === undefined &&
      readInto(
        socket,
        () => this.#nextReadBuffer(),
        (buffer, bytes) => this.#received(buffer, bytes),
      )
    this.#attach(socket, !direct)
    this.#armHandshakeTimer()
    this.#handshakeDeadline = setTimeout(() => {
      this.#log.warn('nbd client did not choose an export in time; closing', {
        ms: this.#limits.handshakeDeadlineMs,
      })
      this.#destroy()
    }, this.#limits.handshakeDeadlineMs)
    this.#handshakeDeadline.unref()

    const greeting = Buffer.alloc(18)
    greeting.writeBigUInt64BE(P.NBDMAGIC, 0)
    greeting.writeBigUInt64BE(P.IHAVEOPT, 8)
    greeting.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16)
    this.#send([greeting])
  }

  readonly #onData = (chunk: Buffer) => {
    // Once closing, input is read only to reach the end of the stream, and dropped.
    if (this.#state === 'closing' || this.#state === 'closed') return
    this.#queue.push(chunk)
    this.#pump()
  }
  readonly #onDrain = () => this.#pump()
  readonly #onError = (err: NodeJS.ErrnoException) => {
    this.#log.debug('nbd connection error', { error: err.code ?? err.message })
  }
  readonly #onClose = () => this.#onSocketClosed()

  #attach(socket: Socket, data: boolean): void {
    if (data) socket.on('data', this.#onData)
    socket.on('drain', this.#onDrain)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
  }

  #detach(socket: Socket): void {
    socket.off('data', this.#onData)
    socket.off('drain', this.#onDrain)
    socket.off('error', this.#onError)
    socket.off('close', this.#onClose)
  }

  /** (Re)starts the clock a client has to send its next option while negotiating. */
  #armHandshakeTimer(): void {
    clearTimeout(this.#handshakeTimer)
    this.#handshakeTimer = setTimeout(() => {
      this.#log.warn('nbd client went silent while negotiating; closing', {
        ms: this.#limits.handshakeTimeoutMs,
      })
      this.#destroy()
    }, this.#limits.handshakeTimeoutMs)
    this.#handshakeTimer.unref()
  }

  /** The export chosen (undefined while negotiating). */
  get exportName(): string | undefined {
    return this.#export?.name
  }

  /** The PSK identity the client authenticated with, if any. */
  get identity(): string | undefined {
    return this.#identity
  }

  /** Settles once the socket is closed and the export released. */
  get closed(): Promise<void> {
    return this.#closed
  }

  /**
   * Stops reading requests, lets the ones in flight finish and closes the connection; after
   * `graceMs` the socket is dropped whatever is still running.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.#state === 'closed') return this.#closed
    if (this.#export === undefined || this.#state === 'option-busy' || this.#state === 'tls-handshake') {
      this.#destroy()
      return this.#closed
    }
    // A write whose payload is arriving is finished and served; nothing after it is read.
    if (this.#state === 'request-payload') this.#closeAfterRequest = true
    else this.#beginClosing()
    const timer = setTimeout(() => this.#destroy(), graceMs)
    timer.unref()
    await this.#closed
    clearTimeout(timer)
  }

  // ---- input -------------------------------------------------------------------------------------

  /**
   * Where the next read goes: the rest of the payload being received when nothing else is queued,
   * else the free part of the slab (a new slab once little is left; queued views keep old ones alive).
   */
  #nextReadBuffer(): Buffer {
    const payload = this.#payload
    if (
      this.#state === 'request-payload' &&
      payload !== undefined &&
      this.#queue.length === 0 &&
      payload.length - this.#filled >= DIRECT_READ_MIN
    ) {
      this.#readingPayload = true
      return payload.subarray(this.#filled)
    }
    this.#readingPayload = false
    const size = this.#afterLargeWrite ? HEADER_READ : STAGING_READ
    if (this.#slab.length - this.#slabAt < size) {
      this.#slab = Buffer.allocUnsafe(SLAB_SIZE)
      this.#slabAt = 0
    }
    return this.#slab.subarray(this.#slabAt, this.#slabAt + size)
  }

  #received(buffer: Buffer, bytes: number): void {
    // Once closing, input is read only to reach the end of the stream, and dropped.
    if (this.#state === 'closing' || this.#state === 'closed') return
    if (this.#readingPayload) {
      this.#filled += bytes
    } else {
      this.#queue.push(buffer.subarray(0, bytes))
      this.#slabAt += bytes
    }
    this.#pump()
  }

  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#step()) {}
    } catch (err) {
      if (err instanceof ProtocolViolation) {
        this.#log.warn('nbd client broke the protocol; closing the connection', { reason: err.message })
      } else {
        this.#log.error('nbd connection failed', { error: String(err) })
      }
      this.#destroy()
    } finally {
      this.#pumping = false
    }
    this.#updateFlow()
  }

  /** Parses one unit of input when enough is queued; false when nothing more can be done now. */
  #step(): boolean {
    const q = this.#queue
    switch (this.#state) {
      case 'client-flags': {
        if (q.length < 4) return false
        const flags = q.take(4).readUInt32BE(0)
        if ((flags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) !== 0) {
          throw new ProtocolViolation(`unknown client flags 0x${flags.toString(16)}`)
        }
        this.#negotiation.noZeroes = (flags & P.FLAG_C_NO_ZEROES) !== 0
        this.#state = 'option-header'
        return true
      }
      case 'option-header': {
        if (q.length < P.OPTION_HEADER_SIZE) return false
        const h = q.take(P.OPTION_HEADER_SIZE)
        if (h.readBigUInt64BE(0) !== P.IHAVEOPT) throw new ProtocolViolation('bad option magic')
        const type = h.readUInt32BE(8)
        const length = h.readUInt32BE(12)
        if (length > this.#limits.maxOptionLength) {
          throw new ProtocolViolation(
            `option ${type} carries ${length} bytes (limit ${this.#limits.maxOptionLength})`,
          )
        }
        if (++this.#optionCount > this.#limits.maxOptions) {
          throw new ProtocolViolation(`more than ${this.#limits.maxOptions} options`)
        }
        this.#option = { type, length }
        this.#state = 'option-data'
        return true
      }
      case 'option-data': {
        const { type, length } = this.#option
        if (q.length < length) return false
        const data = q.take(length)
        this.#armHandshakeTimer()
        this.#state = 'option-busy'
        // Counted as in flight so that teardown waits for it (it may be opening an export).
        this.#inFlight++
        this.#handleOption(type, data)
          .catch((err) => {
            this.#log.error('nbd option failed', { option: type, error: String(err) })
            this.#destroy()
          })
          .finally(() => this.#settled(0))
        return false
      }
      case 'request-header': {
        if (q.length < P.REQUEST_HEADER_SIZE || this.#saturated()) return false
        const h = q.take(P.REQUEST_HEADER_SIZE)
        if (h.readUInt32BE(0) !== P.REQUEST_MAGIC) throw new ProtocolViolation('bad request magic')
        const high = h.readUInt32BE(16)
        const request: Request = {
          flags: h.readUInt16BE(4),
          type: h.readUInt16BE(6),
          cookie: Buffer.from(h.subarray(8, 16)),
          offset: high >= 0x200000 ? -1 : high * 2 ** 32 + h.readUInt32BE(20),
          length: h.readUInt32BE(24),
        }
        if (request.type === P.CMD_WRITE) {
          // The payload follows whatever we think of the request; a payload too large to hold is
          // treated as an attack rather than read and thrown away.
          if (request.length > this.#limits.maxRequest) {
            throw new ProtocolViolation(`write of ${request.length} bytes (limit ${this.#limits.maxRequest})`)
          }
          this.#request = request
          this.#afterLargeWrite = request.length >= LARGE_WRITE
          if (q.firstLength >= request.length) {
            // All there in one piece: a view of it, no copy.
            this.#payload = q.take(request.length)
            this.#payloadPooled = false
            this.#filled = request.length
          } else {
            // Filled from what is queued, then by reads straight into it (see #nextReadBuffer).
            this.#payload = this.#pool.take(request.length)
            this.#payloadPooled = true
            this.#filled = 0
          }
          this.#state = 'request-payload'
          return true
        }
        this.#afterLargeWrite = false
        this.#dispatch(request, NO_PAYLOAD)
        return true
      }
      case 'request-payload': {
        const request = this.#request as Request
        const payload = this.#payload as Buffer
        const missing = payload.length - this.#filled
        if (missing > 0 && q.length > 0) {
          const n = Math.min(missing, q.length)
          q.takeInto(payload, this.#filled, n)
          this.#filled += n
        }
        if (this.#filled < payload.length) return false
        const pooled = this.#payloadPooled
        this.#payload = undefined
        this.#filled = 0
        this.#request = undefined
        this.#state = 'request-header'
        this.#dispatch(request, payload, pooled)
        if (this.#closeAfterRequest) this.#beginClosing()
        return true
      }
      default:
        return false
    }
  }

  #saturated(): boolean {
    return (
      this.#inFlight >= this.#limits.maxInFlight ||
      this.#inFlightBytes >= this.#limits.maxInFlightBytes ||
      this.#socket.writableNeedDrain
    )
  }

  /** Reads from the socket only while the parser can use more bytes. */
  #updateFlow(): void {
    if (this.#socket.destroyed) return
    const hold = this.#state === 'option-busy' || (this.#state === 'request-header' && this.#saturated())
    if (hold) this.#socket.pause()
    else this.#socket.resume()
  }

  // ---- handshake ---------------------------------------------------------------------------------

  async #handleOption(type: number, data: Buffer): Promise<void> {
    this.#state = 'option-busy'
    const next = await this.#negotiation.handle(type, data)
    if (next !== undefined && this.#state === 'option-busy') this.#state = next
  }

  /** What the option phase (_negotiation.ts) needs of this connection. */
  #negotiationHost(): NegotiationHost {
    const self = this
    return {
      provider: this.#provider,
      log: this.#log,
      maxRequest: this.#limits.maxRequest,
      listLimit: this.#limits.listLimit,
      psk: this.#tls?.psk,
      tlsOffered: this.#tls !== undefined,
      get needsTls() {
        return self.#tls !== undefined && !self.#secured
      },
      get secured() {
        return self.#secured
      },
      get identity() {
        return self.#identity
      },
      send: (parts) => this.#send(parts),
      end: () => this.#socket.end(),
      destroy: () => this.#destroy(),
      startTls: () => this.#startTls(this.#tls as ConnectionTls),
      startTransmission: (exp) => {
        clearTimeout(this.#handshakeTimer)
        clearTimeout(this.#handshakeDeadline)
        this.#export = exp
      },
    }
  }

  /**
   * Answers NBD_OPT_STARTTLS with ACK, then runs the TLS handshake over the socket; negotiation
   * goes on inside TLS. A failed handshake ends the connection (too late for anything else).
   */
  async #startTls(tls: ConnectionTls): Promise<void> {
    const raw = this.#socket
    this.#corked = false
    this.#corkedBytes = 0
    raw.uncork()
    // The ACK leaves in clear, whole, before the handshake starts on the same connection.
    const ack = Buffer.alloc(20)
    ack.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0)
    ack.writeUInt32BE(P.OPT_STARTTLS, 8)
    ack.writeUInt32BE(P.REP_ACK, 12)
    const written = await new Promise<boolean>((resolve) => raw.write(ack, (err) => resolve(!err)))
    if (!written || raw.destroyed) return
    this.#state = 'tls-handshake'
    this.#detach(raw)
    raw.on('error', () => {})
    const psk = tls.psk
    const options = {
      isServer: true,
      secureContext: tls.context,
      requestCert: false,
      rejectUnauthorized: false,
      ...(psk === undefined
        ? {}
        : {
            pskCallback: (_socket: TLSSocket, identity: string) => {
              const key = psk.key(identity)
              if (key === undefined) {
                this.#log.warn('nbd client offered an unknown PSK identity', { identity })
                return null
              }
              this.#identity = identity
              return key
            },
          }),
    }
    const secure = new TLSSocket(raw, options)
    this.#socket = secure
    this.#attach(secure, true)
    secure.once('close', () => raw.destroy())
    secure.once('secure', () => {
      this.#secured = true
      this.#log.debug('nbd client started TLS', {
        protocol: secure.getProtocol(),
        ...(this.#identity === undefined ? {} : { identity: this.#identity }),
      })
      if (this.#state !== 'tls-handshake') return
      this.#state = 'option-header'
      this.#armHandshakeTimer()
      this.#pump()
    })
    secure.once('error', (err: Error) => {
      if (!this.#secured) this.#log.warn('nbd TLS handshake failed; closing', { reason: err.message })
    })
  }

  // ---- transmission ------------------------------------------------------------------------------

  /** Serves a request; a `pooled` payload goes back to the pool once the store is done with it. */
  #dispatch(request: Request, payload: Buffer, pooled = false): void {
    if (request.type === P.CMD_DISC) {
      this.#beginClosing()
      return
    }
    const cost = request.type === P.CMD_READ ? request.length : payload.length
    this.#inFlight++
    this.#inFlightBytes += cost
    const observe = this.#limits.observe
    const start = observe ? performance.now() : 0
    this.#serve(request, payload, pooled)
      .then(() => {
        if (!observe) return
        const command = COMMAND_NAMES[request.type] ?? 'UNKNOWN'
        const bytes = request.type === P.CMD_READ || request.type === P.CMD_WRITE ? request.length : 0
        const ok = !this.#failed.delete(request)
        observe({ command, ok, seconds: (performance.now() - start) / 1000, bytes })
      })
      .catch((err) => this.#log.error('nbd request failed unexpectedly', { error: String(err) }))
      .finally(() => this.#settled(cost))
  }

  /** Bookkeeping once a request or option is done: go on reading, or finish closing. */
  #settled(cost: number): void {
    this.#inFlight--
    this.#inFlightBytes -= cost
    if (this.#state === 'closing' || this.#state === 'closed') this.#releaseWhenIdle()
    else this.#pump()
  }

  /** Checks a request, runs it and sends its reply; every failure becomes an error reply. */
  async #serve(r: Request, payload: Buffer, pooled: boolean): Promise<void> {
    const exp = this.#export as NbdExport
    const invalid = checkRequest(r, exp, {
      structured: this.#negotiation.structured,
      allocation: this.#negotiation.allocation,
      maxRequest: this.#limits.maxRequest,
    })
    if (invalid !== undefined) {
      this.#replyError(r, invalid.errno, invalid.message)
      return
    }
    const fua = (r.flags & P.CMD_FLAG_FUA) !== 0
    try {
      switch (r.type) {
        case P.CMD_READ: {
          if (r.length === 0) {
            this.#replyRead(r, NO_PAYLOAD)
            return
          }
          // The reply goes out of a pooled buffer, given back once the socket has taken the bytes.
          const into = this.#pool.take(r.length)
          const data = await exp.read(r.offset, r.length, into)
          this.#replyRead(r, data, data.buffer === into.buffer ? into : undefined)
          return
        }
        case P.CMD_WRITE:
          if (r.length > 0) await exp.write(r.offset, payload, { fua })
          // Written and no longer referred to by the store (after a failure it may still be).
          if (pooled) this.#pool.give(payload)
          break
        case P.CMD_FLUSH:
          await exp.flush()
          break
        case P.CMD_TRIM:
          if (r.length > 0) await exp.trim(r.offset, r.length, { fua })
          break
        case P.CMD_CACHE:
          break
        case P.CMD_WRITE_ZEROES: {
          const mayTrim = (r.flags & P.CMD_FLAG_NO_HOLE) === 0
          if ((r.flags & P.CMD_FLAG_FAST_ZERO) !== 0 && !mayTrim) {
            // Provisioned zeros cost as much as writing them: the client asked to be told so quickly.
            this.#replyError(r, P.ENOTSUP, 'Zeroing without holes is not faster than writing')
            return
          }
          if (r.length > 0) await exp.writeZeroes(r.offset, r.length, { fua, mayTrim })
          break
        }
        case P.CMD_BLOCK_STATUS: {
          const one = (r.flags & P.CMD_FLAG_REQ_ONE) !== 0
          const extents =
            r.length === 0 ? [] : await exp.blockStatus(r.offset, r.length, one ? 1 : this.#limits.maxExtents)
          this.#replyBlockStatus(r, extents)
          return
        }
      }
      this.#replyOk(r)
    } catch (err) {
      const { errno, message } = describeFailure(err)
      if (errno === P.EIO) {
        this.#log.warn('nbd request failed', {
          export: exp.name,
          command: COMMAND_NAMES[r.type],
          offset: r.offset,
          length: r.length,
          error: message,
        })
      }
      this.#replyError(r, errno, message)
    }
  }

  #replyOk(r: Request): void {
    this.#send([simpleHeader(r.cookie, 0)])
  }

  /** Sends the data of a READ; `pooled`, the buffer it lies in, goes back to the pool once sent. */
  #replyRead(r: Request, data: Buffer, pooled?: Buffer): void {
    const sent =
      pooled === undefined
        ? undefined
        : (err?: Error | null) => {
            if (err === undefined || err === null) this.#pool.give(pooled)
          }
    this.#send(readReply(r, data, this.#negotiation.structured), sent)
  }

  #replyBlockStatus(r: Request, extents: BlockExtent[]): void {
    this.#send(blockStatusReply(r, extents))
  }

  #replyError(r: Request, errno: number, message: string): void {
    if (this.#limits.observe) this.#failed.add(r)
    this.#send(errorReply(r.cookie, errno, message, this.#negotiation.structured))
  }

  // ---- output and teardown -------------------------------------------------------------------------

  /**
   * Writes one message; its parts go out together, never interleaved with another reply. `sent` is
   * called once the socket is done with the last part (with an error if it never went out).
   */
  #send(parts: Buffer[], sent?: (err?: Error | null) => void): void {
    const s = this.#socket
    if (s.destroyed || s.writableEnded) return
    // Replies made in one turn of the event loop leave in one system call: with many requests in
    // flight, a send per 16-byte write acknowledgement costs as much as storing the data. Once
    // CORK_LIMIT bytes are held they leave at once, so that the client takes in the data of reads
    // while the next ones are served instead of waiting for the whole turn.
    if (!this.#corked) {
      this.#corked = true
      const round = ++this.#corkRound
      s.cork()
      setImmediate(() => {
        if (this.#corkRound !== round || !this.#corked) return
        this.#corked = false
        this.#corkedBytes = 0
        s.uncork()
      })
    }
    const last = parts.length - 1
    for (let i = 0; i < last; i++) s.write(parts[i] as Buffer)
    if (sent === undefined) s.write(parts[last] as Buffer)
    else s.write(parts[last] as Buffer, sent)
    for (const p of parts) this.#corkedBytes += p.length
    if (this.#corkedBytes >= CORK_LIMIT) {
      this.#corked = false
      this.#corkedBytes = 0
      s.uncork()
    }
  }

  #beginClosing(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return
    this.#state = 'closing'
    this.#queue.clear()
    this.#payload = undefined
    this.#releaseWhenIdle()
  }

  /** Once no request is running: releases the export and ends the socket (once). */
  #releaseWhenIdle(): void {
    if (this.#inFlight > 0 || this.#releasing) return
    this.#releasing = true
    const exp = this.#export
    this.#export = undefined
    const done = exp === undefined ? Promise.resolve() : closeExport(exp, this.#log)
    void done.then(() => {
      this.#released = true
      const s = this.#socket
      if (!s.destroyed) {
        // Our side is done: read (and drop) what the client still sends until it closes its side,
        // and drop the socket if it does not do so soon.
        s.end()
        s.resume()
        setTimeout(() => s.destroy(), CLOSE_LINGER_MS).unref()
      }
      this.#maybeFinish()
    })
  }

  #maybeFinish(): void {
    if (this.#state === 'closed' && this.#released) this.#resolveClosed()
  }

  #destroy(): void {
    clearTimeout(this.#handshakeTimer)
    clearTimeout(this.#handshakeDeadline)
    this.#socket.destroy()
  }

  #onSocketClosed(): void {
    clearTimeout(this.#handshakeTimer)
    clearTimeout(this.#handshakeDeadline)
    this.#state = 'closed'
    this.#queue.clear()
    this.#payload = undefined
    this.#releaseWhenIdle()
    this.#maybeFinish()
  }
}
