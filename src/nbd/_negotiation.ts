// Negotiation: the option phase of one NBD connection (proto.md, "Option haggling"), after the
// client's flags and before transmission. It answers each option the connection has parsed and says
// which state the connection goes to next; the socket, its input and TLS stay with the connection.

import { isCairnError, type Logger } from '../util/index.js'
import {
  infoString,
  parseInfoRequest,
  parseMetaContextRequest,
  truncateUtf8,
  unknownExport,
} from './_option-data.js'
import * as P from './_protocol.js'
import type { ExportProvider, NbdExport } from './export-provider.js'
import type { PskKeyring } from './psk-keys.js'

/** What a connection does next after an option: read another, serve requests, or close. */
export type AfterOption = 'option-header' | 'request-header' | 'closing'

/** What the negotiation needs of its connection. */
export interface NegotiationHost {
  readonly provider: ExportProvider
  readonly log: Logger
  readonly maxRequest: number
  readonly listLimit: number
  /** Pre-shared keys when TLS is required; undefined without TLS or with certificates only. */
  readonly psk: PskKeyring | undefined
  /** Whether TLS is required and not yet on. */
  readonly needsTls: boolean
  /** Whether TLS is offered, and whether it is on. */
  readonly tlsOffered: boolean
  readonly secured: boolean
  /** The PSK identity the client authenticated with. */
  readonly identity: string | undefined
  /** Sends one message, its parts together. */
  send(parts: Buffer[]): void
  /** Ends our side of the connection politely (after the last reply). */
  end(): void
  /** Drops the connection at once. */
  destroy(): void
  /** Answers NBD_OPT_STARTTLS and starts the TLS handshake; the connection manages its state. */
  startTls(): Promise<void>
  /** Moves the connection to transmission on export `exp`. */
  startTransmission(exp: NbdExport): void
}

const NO_DATA = Buffer.alloc(0)

/** Closes an export, logging (not throwing) a failure. */
export async function closeExport(exp: NbdExport, log: Logger): Promise<void> {
  try {
    await exp.close()
  } catch (err) {
    log.warn('nbd export failed to close', { export: exp.name, error: String(err) })
  }
}

/** The negotiated state of one connection and the handling of each option. */
export class Negotiation {
  readonly #host: NegotiationHost
  #structured = false
  /** Export name for which base:allocation was selected by the last NBD_OPT_SET_META_CONTEXT. */
  #allocationFor: string | undefined
  #allocation = false
  /** Whether the client asked for no zeroes after NBD_OPT_EXPORT_NAME's reply. */
  noZeroes = false

  constructor(host: NegotiationHost) {
    this.#host = host
  }

  /** Whether structured replies were negotiated. */
  get structured(): boolean {
    return this.#structured
  }

  /** Whether base:allocation was selected for the export in transmission. */
  get allocation(): boolean {
    return this.#allocation
  }

  /**
   * Answers one option; resolves to the connection's next state, or undefined after NBD_OPT_STARTTLS
   * (the TLS handshake decides it).
   */
  async handle(type: number, data: Buffer): Promise<AfterOption | undefined> {
    const host = this.#host
    if (host.needsTls && type !== P.OPT_STARTTLS && type !== P.OPT_ABORT) {
      // FORCEDTLS (proto.md, "TLS support"): nothing but STARTTLS before TLS; EXPORT_NAME cannot
      // be answered with an error, so the connection ends.
      if (type === P.OPT_EXPORT_NAME) {
        host.log.info('nbd client chose an export without TLS; closing (TLS is required)')
        host.end()
        return 'closing'
      }
      this.#error(
        type,
        P.REP_ERR_TLS_REQD,
        'TLS is required: connect with nbds:// (NBD_OPT_STARTTLS) and the certificate or a pre-shared key',
      )
      return 'option-header'
    }
    switch (type) {
      case P.OPT_EXPORT_NAME:
        return this.#exportName(data)
      case P.OPT_ABORT:
        this.#reply(type, P.REP_ACK)
        host.end()
        return 'closing'
      case P.OPT_LIST:
        await this.#list(data)
        return 'option-header'
      case P.OPT_STARTTLS:
        if (!host.tlsOffered) this.#error(type, P.REP_ERR_POLICY, 'TLS is not offered by this server')
        else if (host.secured) this.#error(type, P.REP_ERR_INVALID, 'TLS is already on')
        else if (data.length !== 0) this.#error(type, P.REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data')
        else {
          await host.startTls()
          return undefined
        }
        return 'option-header'
      case P.OPT_INFO:
      case P.OPT_GO:
        return this.#infoOrGo(type, data)
      case P.OPT_STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.#error(type, P.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data')
        } else {
          this.#structured = true
          this.#reply(type, P.REP_ACK)
        }
        return 'option-header'
      case P.OPT_LIST_META_CONTEXT:
      case P.OPT_SET_META_CONTEXT:
        await this.#metaContext(type, data)
        return 'option-header'
      default:
        this.#error(type, P.REP_ERR_UNSUP, `option ${type} is not supported`)
        return 'option-header'
    }
  }

  /**
   * Whether this client may open export `name`: with pre-shared keys, the exports its identity's
   * line names; otherwise any.
   */
  #allowed(name: string): boolean {
    const { psk, identity } = this.#host
    return psk === undefined || (identity !== undefined && psk.allows(identity, name))
  }

  #denied(type: number, name: string): void {
    const identity = this.#host.identity
    this.#host.log.info('nbd client asked for an export its key does not open', { export: name, identity })
    this.#error(
      type,
      P.REP_ERR_POLICY,
      `Cannot open export "${name}": the key of "${identity}" does not open it`,
    )
  }

  async #exportName(data: Buffer): Promise<AfterOption> {
    const name = data.toString('utf8')
    const exp = this.#allowed(name) ? await this.#open(name) : undefined
    if (exp === undefined) {
      // NBD_OPT_EXPORT_NAME has no error reply: the server MUST terminate the session, at once (the
      // socket is paused while an option runs, so an end() alone would hold the slot until a timer).
      this.#host.log.info('nbd client asked for an unknown export; closing', { export: name })
      this.#host.destroy()
      return 'closing'
    }
    const reply = Buffer.alloc(this.noZeroes ? 10 : 134)
    reply.writeBigUInt64BE(BigInt(exp.size), 0)
    reply.writeUInt16BE(this.#flagsFor(exp), 8)
    this.#startTransmission(exp, name)
    this.#host.send([reply])
    return 'request-header'
  }

  async #list(data: Buffer): Promise<void> {
    if (data.length !== 0) {
      this.#error(P.OPT_LIST, P.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data')
      return
    }
    const exports = await this.#host.provider.list(this.#host.listLimit)
    for (const e of exports) {
      if (!this.#allowed(e.name)) continue
      const name = Buffer.from(e.name, 'utf8')
      const description = truncateUtf8(e.description, P.MAX_STRING)
      const body = Buffer.alloc(4 + name.length + description.length)
      body.writeUInt32BE(name.length, 0)
      name.copy(body, 4)
      description.copy(body, 4 + name.length)
      this.#reply(P.OPT_LIST, P.REP_SERVER, body)
    }
    this.#reply(P.OPT_LIST, P.REP_ACK)
  }

  async #infoOrGo(type: number, data: Buffer): Promise<AfterOption> {
    const parsed = parseInfoRequest(data)
    if (typeof parsed === 'string') {
      this.#error(type, P.REP_ERR_INVALID, parsed)
      return 'option-header'
    }
    if (!this.#allowed(parsed.name)) {
      this.#denied(type, parsed.name)
      return 'option-header'
    }
    const exp = await this.#open(parsed.name)
    if (exp === undefined) {
      this.#error(type, P.REP_ERR_UNKNOWN, unknownExport(parsed.name))
      return 'option-header'
    }
    const info = Buffer.alloc(12)
    info.writeUInt16BE(P.INFO_EXPORT, 0)
    info.writeBigUInt64BE(BigInt(exp.size), 2)
    info.writeUInt16BE(this.#flagsFor(exp), 10)
    this.#reply(type, P.REP_INFO, info)
    for (const item of new Set(parsed.requests)) {
      if (item === P.INFO_NAME) {
        this.#reply(type, P.REP_INFO, infoString(P.INFO_NAME, exp.name))
      } else if (item === P.INFO_DESCRIPTION) {
        this.#reply(type, P.REP_INFO, infoString(P.INFO_DESCRIPTION, exp.description))
      } else if (item === P.INFO_BLOCK_SIZE) {
        const sizes = Buffer.alloc(14)
        sizes.writeUInt16BE(P.INFO_BLOCK_SIZE, 0)
        sizes.writeUInt32BE(1, 2)
        sizes.writeUInt32BE(4096, 6)
        sizes.writeUInt32BE(this.#host.maxRequest, 10)
        this.#reply(type, P.REP_INFO, sizes)
      }
    }
    if (type === P.OPT_INFO) {
      this.#reply(type, P.REP_ACK)
      await closeExport(exp, this.#host.log)
      return 'option-header'
    }
    this.#startTransmission(exp, parsed.name)
    this.#reply(type, P.REP_ACK)
    return 'request-header'
  }

  async #metaContext(type: number, data: Buffer): Promise<void> {
    const set = type === P.OPT_SET_META_CONTEXT
    if (set) {
      this.#allocation = false
      this.#allocationFor = undefined
    }
    if (!this.#structured) {
      this.#error(type, P.REP_ERR_INVALID, 'Negotiate structured replies first')
      return
    }
    const parsed = parseMetaContextRequest(data)
    if (typeof parsed === 'string') {
      this.#error(type, P.REP_ERR_INVALID, parsed)
      return
    }
    if (parsed.queries.length > 64) {
      this.#error(type, P.REP_ERR_TOO_BIG, 'At most 64 metadata context queries are accepted')
      return
    }
    if (!this.#allowed(parsed.name)) {
      this.#denied(type, parsed.name)
      return
    }
    const exp = await this.#open(parsed.name)
    if (exp === undefined) {
      this.#error(type, P.REP_ERR_UNKNOWN, unknownExport(parsed.name))
      return
    }
    await closeExport(exp, this.#host.log)
    const matches = set
      ? parsed.queries.includes(P.BASE_ALLOCATION)
      : parsed.queries.length === 0 || parsed.queries.some((q) => q === 'base:' || q === P.BASE_ALLOCATION)
    if (matches) {
      const name = Buffer.from(P.BASE_ALLOCATION)
      const body = Buffer.alloc(4 + name.length)
      body.writeUInt32BE(set ? P.BASE_ALLOCATION_ID : 0, 0)
      name.copy(body, 4)
      this.#reply(type, P.REP_META_CONTEXT, body)
      if (set) {
        this.#allocation = true
        this.#allocationFor = parsed.name
      }
    }
    this.#reply(type, P.REP_ACK)
  }

  async #open(name: string): Promise<NbdExport | undefined> {
    try {
      return await this.#host.provider.open(name)
    } catch (err) {
      if (!isCairnError(err))
        this.#host.log.error('nbd export failed to open', { export: name, error: String(err) })
      return undefined
    }
  }

  #flagsFor(exp: NbdExport): number {
    let flags = P.FLAG_HAS_FLAGS | P.FLAG_SEND_FLUSH | P.FLAG_CAN_MULTI_CONN | P.FLAG_SEND_CACHE
    if (this.#structured) flags |= P.FLAG_SEND_DF
    if (exp.readOnly) flags |= P.FLAG_READ_ONLY
    else flags |= P.FLAG_SEND_FUA | P.FLAG_SEND_TRIM | P.FLAG_SEND_WRITE_ZEROES | P.FLAG_SEND_FAST_ZERO
    return flags
  }

  #startTransmission(exp: NbdExport, name: string): void {
    if (this.#allocationFor !== name) this.#allocation = false
    this.#host.startTransmission(exp)
  }

  #reply(option: number, type: number, data: Buffer = NO_DATA): void {
    const h = Buffer.alloc(20)
    h.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0)
    h.writeUInt32BE(option, 8)
    h.writeUInt32BE(type, 12)
    h.writeUInt32BE(data.length, 16)
    this.#host.send(data.length > 0 ? [h, data] : [h])
  }

  #error(option: number, type: number, message: string): void {
    this.#reply(option, type, truncateUtf8(message, P.MAX_STRING))
  }
}
