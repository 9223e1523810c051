import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { createSecureContext } from 'node:tls'
import { CairnError, type Logger, silentLogger } from '../util/index.js'
import { BufferPool } from './_buffer-pool.js'
import {
  type ConnectionLimits,
  type ConnectionTls,
  NbdConnection,
  type NbdObserver,
} from './_nbd-connection.js'
import type { ExportProvider } from './export-provider.js'
import type { PskKeyring } from './psk-keys.js'

/** The IANA port of NBD. */
export const NBD_DEFAULT_PORT = 10809

/** Options of NbdServer; every limit has a default that suits a disk server. */
export interface NbdServerOptions {
  logger?: Logger
  /** Connections served at once; more are refused (closed). Default 256. */
  maxConnections?: number
  /** Largest READ or WRITE payload; a larger WRITE closes the connection. Default 32 MiB. */
  maxRequest?: number
  /** Requests served at once on one connection. Default 32. */
  maxInFlight?: number
  /** Payload bytes served at once on one connection before reading pauses. Default 64 MiB. */
  maxInFlightBytes?: number
  /** Largest option during the handshake. Default 64 KiB. */
  maxOptionLength?: number
  /** Options a client may send before choosing an export (`nbdinfo --list` sends about three per export). Default 100,000. */
  maxOptions?: number
  /** Time a client may stay silent while negotiating (before its first option and between options). Default 30 s. */
  handshakeTimeoutMs?: number
  /** Time a client has from connecting to choosing an export, however many options it sends. Default 60 s. */
  handshakeDeadlineMs?: number
  /** Exports listed by NBD_OPT_LIST. Default 10,000. */
  listLimit?: number
  /** Extents in one BLOCK_STATUS reply. Default 65,536. */
  maxExtents?: number
  /** TLS, required of every client when given (docs/nbd.md, "TLS"). */
  tls?: NbdTlsOptions
  /** Told each request served (the metrics). */
  observe?: NbdObserver
}

/**
 * TLS of the NBD server. With `psk`, clients authenticate with a pre-shared key (the certificate is
 * not offered: it would let a client in without one); otherwise with `cert` and `key` they check the
 * server's X.509 certificate.
 */
export interface NbdTlsOptions {
  /** Certificate chain and private key (PEM). */
  cert?: string
  key?: string
  psk?: PskKeyring
}

/**
 * TLS 1.3 suites (GnuTLS clients negotiate 1.3 with a PSK) and the TLS 1.2 PSK suites with forward
 * secrecy first.
 */
const PSK_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-PSK-CHACHA20-POLY1305',
  'DHE-PSK-AES256-GCM-SHA384',
  'DHE-PSK-AES128-GCM-SHA256',
  'PSK-AES256-GCM-SHA384',
  'PSK-AES128-GCM-SHA256',
].join(':')

/**
 * An NBD server (fixed newstyle, structured replies, base:allocation) serving the exports of a
 * provider to any number of clients.
 */
export class NbdServer {
  readonly #provider: ExportProvider
  readonly #log: Logger
  readonly #limits: ConnectionLimits
  readonly #maxConnections: number
  readonly #connections = new Set<NbdConnection>()
  readonly #tls: ConnectionTls | undefined
  /** Write payload buffers of finished requests, reused by every connection. */
  readonly #pool: BufferPool
  #server: Server | undefined
  /** Connections refused since the last warning, and when that was (one line per 10 s at most). */
  #refused = 0
  #refusedWarnedAt = 0
  #closing: Promise<void> | undefined

  constructor(provider: ExportProvider, options: NbdServerOptions = {}) {
    this.#provider = provider
    this.#log = (options.logger ?? silentLogger).child({ component: 'nbd' })
    this.#maxConnections = options.maxConnections ?? 256
    this.#limits = {
      maxRequest: options.maxRequest ?? 32 * 1024 * 1024,
      maxInFlight: options.maxInFlight ?? 32,
      maxInFlightBytes: options.maxInFlightBytes ?? 64 * 1024 * 1024,
      maxOptionLength: options.maxOptionLength ?? 64 * 1024,
      maxOptions: options.maxOptions ?? 100_000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
      handshakeDeadlineMs: options.handshakeDeadlineMs ?? 60_000,
      listLimit: options.listLimit ?? 10_000,
      maxExtents: options.maxExtents ?? 65_536,
      ...(options.observe ? { observe: options.observe } : {}),
    }
    this.#pool = new BufferPool(Math.min(this.#limits.maxInFlightBytes, 64 * 1024 * 1024))
    this.#tls = secureContextOf(options.tls)
  }

  /** Whether clients must start TLS, and how they authenticate. */
  get tls(): 'off' | 'x509' | 'psk' {
    return this.#tls === undefined ? 'off' : this.#tls.psk === undefined ? 'x509' : 'psk'
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size
  }

  /**
   * Closes at once every connection `which` picks (by its export, or its PSK identity while it has
   * not chosen one yet): a revoked credential leaves no session open. Answers how many were closed.
   */
  disconnect(
    which: (c: { exportName: string | undefined; identity: string | undefined }) => boolean,
  ): number {
    let n = 0
    for (const c of this.#connections) {
      if (!which({ exportName: c.exportName, identity: c.identity })) continue
      n++
      void c.shutdown(0)
    }
    return n
  }

  /** The bound address once listening. */
  get address(): { host: string; port: number } | undefined {
    const a = this.#server?.address() as AddressInfo | null | undefined
    return a ? { host: a.address, port: a.port } : undefined
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(port: number = NBD_DEFAULT_PORT, host = '127.0.0.1'): Promise<number> {
    if (this.#server) {
      return Promise.reject(
        new CairnError('InvalidRequest', 'Cannot listen for NBD: the server is already listening'),
      )
    }
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
    this.#server = server
    server.on('error', (err) => this.#log.error('nbd listener failed', { error: String(err) }))
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening)
        this.#server = undefined
        const why = err.code === 'EADDRINUSE' ? 'the port is in use' : err.message
        reject(new CairnError('ConfigInvalid', `Cannot listen for NBD on ${host}:${port}: ${why}`))
      }
      const onListening = () => {
        server.off('error', onError)
        const bound = (server.address() as AddressInfo).port
        this.#log.info('nbd listening', { host, port: bound })
        resolve(bound)
      }
      server.once('error', onError)
      server.once('listening', onListening)
      server.listen(port, host)
    })
  }

  /**
   * Stops listening, lets every connection finish the requests it is serving (up to `graceMs`,
   * default 10 s), closes the connections and makes every write durable.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceMs ?? 10_000)
    return this.#closing
  }

  async #close(graceMs: number): Promise<void> {
    const server = this.#server
    const stopped = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve()
    await Promise.all([...this.#connections].map((c) => c.shutdown(graceMs)))
    await stopped
    await this.#provider.flush()
    this.#log.info('nbd stopped')
  }

  #accept(socket: Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    if (this.#closing || this.#connections.size >= this.#maxConnections) {
      socket.destroy()
      this.#refused++
      if (Date.now() - this.#refusedWarnedAt >= 10_000) {
        this.#log.warn('nbd connections refused', {
          remote,
          count: this.#refused,
          reason: this.#closing ? 'shutting down' : `${this.#maxConnections} connections are open`,
        })
        this.#refused = 0
        this.#refusedWarnedAt = Date.now()
      }
      return
    }
    const connection = new NbdConnection(
      socket,
      this.#provider,
      this.#log.child({ remote }),
      this.#limits,
      this.#pool,
      this.#tls,
    )
    this.#connections.add(connection)
    this.#log.debug('nbd client connected', { remote })
    void connection.closed.then(() => {
      this.#connections.delete(connection)
      this.#log.debug('nbd client left', { remote })
    })
  }
}

/** The TLS of every connection, or undefined without TLS; ConfigInvalid when it cannot be used. */
function secureContextOf(tls: NbdTlsOptions | undefined): ConnectionTls | undefined {
  if (tls === undefined) return undefined
  if (tls.psk !== undefined)
    return { context: createSecureContext({ minVersion: 'TLSv1.2', ciphers: PSK_CIPHERS }), psk: tls.psk }
  if (tls.cert === undefined || tls.key === undefined)
    throw new CairnError(
      'ConfigInvalid',
      'Cannot offer TLS on NBD: give a certificate and its key, or PSK keys',
    )
  try {
    return { context: createSecureContext({ minVersion: 'TLSv1.2', cert: tls.cert, key: tls.key }) }
  } catch (err) {
    throw new CairnError('ConfigInvalid', `Cannot offer TLS on NBD: ${(err as Error).message}`)
  }
}
