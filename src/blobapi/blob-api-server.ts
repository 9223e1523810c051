// The Azure Blob page-blob REST API over the disk store, on node:http (node:https with TLS), path
// style: http(s)://host:port/<account>/<container>/<blob>.
import { randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import {
  type HttpLimits,
  httpServerLimits,
  isCairnError,
  type Logger,
  refusePlainHttp,
  retainFreedHeap,
  silentLogger,
} from '../util/index.js'
import { type Answer, type BlobContext, diskRef, type GeoEndpoints, queryOf } from './_blob-context.js'
import { blobProperties, findDisk, getBlob } from './_blob-operations.js'
import { type DirectBodies, serveDirectBodies } from './_direct-body.js'
import { wantsDirectBody } from './_page-operations.js'
import { route } from './_route.js'
import { type Access, isSasRequest, verifySas } from './_sas.js'
import { parseAuthorization, verifySharedKey } from './_shared-key.js'
import { checkIfTags } from './_tag-operations.js'
import { refuseUnservedOptions } from './_unserved-options.js'
import { el, xmlDocument } from './_xml.js'
import { type AzureErrorAnswer, blobError, type OperationKind, toAzureError } from './blob-errors.js'

/** The development account of the Azure storage emulators, and its well-known key. */
export const DEVELOPMENT_ACCOUNT = {
  name: 'devstoreaccount1',
  key: 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
} as const

/** The service version answered when a request names none. */
export const DEFAULT_VERSION = '2025-01-05'

/** Bytes of a refused request's body read and dropped before its connection is closed instead. */
const MAX_DISCARD = 8 * 1024 * 1024

/** How long a connection closed on a client still sending keeps dropping its bytes. */
const LINGER_MS = 5000

/**
 * Closes a connection whose client still sends a refused body: our side first (the answer is out, and
 * the client reads it before it sees the end), then, a moment later, the socket. Destroying it at once
 * would answer the client's next bytes with a reset that can wipe the unread answer on its side.
 */
function lingerAndClose(socket: Socket): void {
  socket.end()
  setTimeout(() => socket.destroy(), LINGER_MS).unref()
}

/** How far a request's date may be from the service's clock. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000

/** Options of BlobApiServer. */
export interface BlobApiServerOptions {
  logger?: Logger
  /**
   * Create the emulators' development account `devstoreaccount1` with its well-known key when the store
   * lacks it, so tools made for Azurite work unchanged (CairnService creates it on a new data folder).
   */
  developmentAccount?: boolean
  /** Connections held at once; more are closed as they come (default 1024). */
  maxConnections?: number
  /** Deadlines of the connections: idle keep-alive (5 s), headers (20 s), whole request (300 s). */
  limits?: HttpLimits
  /** Serve HTTPS with this certificate chain and key (PEM); plain-HTTP requests get `AccountRequiresHttps`. */
  tls?: { cert: string; key: string }
  /**
   * Geo-replication: replicas are read-only, RA-GRS replicas are read on `ACCOUNT` and `ACCOUNT-secondary`,
   * and Get Blob Service Stats answers their GeoReplication status (docs/replication.md, "Disks").
   */
  geo?: GeoEndpoints
  /** Told each request answered (the metrics): its operation (`putPage`, `getBlob`, … or `unknown`), status and duration. */
  observe?: BlobObserver
}

/** The suffix of an account's secondary endpoint, after Azure's `ACCOUNT-secondary.blob.core.windows.net`. */
const SECONDARY_SUFFIX = '-secondary'

/** Receives each request the blob API answered. */
export type BlobObserver = (r: { operation: string; status: number; seconds: number }) => void

/** Splits `/account/container/blob/with/slashes` into its decoded parts. */
function splitPath(rawPath: string): { account: string; container: string; blob: string } {
  const parts = rawPath.split('/').slice(1)
  const dec = (s: string | undefined) => {
    try {
      return decodeURIComponent(s ?? '')
    } catch {
      throw blobError('InvalidUri', `Cannot parse the path ${rawPath}: bad percent-encoding`)
    }
  }
  return { account: dec(parts[0]), container: dec(parts[1]), blob: dec(parts.slice(2).join('/')) }
}

/** The Azure Blob page-blob REST API of one disk store, on its own port. */
export class BlobApiServer {
  readonly #store: DiskStore
  readonly #logger: Logger
  readonly #developmentAccount: boolean
  readonly #geo: GeoEndpoints | undefined
  readonly #observe: BlobObserver | undefined
  readonly #server: Server
  /** Put Page bodies read off the socket (plain HTTP only). */
  #direct: DirectBodies | undefined
  readonly #scheme: 'http' | 'https'
  #ready: Promise<void> | undefined

  constructor(store: DiskStore, options: BlobApiServerOptions = {}) {
    this.#store = store
    this.#logger = options.logger ?? silentLogger
    this.#developmentAccount = options.developmentAccount ?? false
    this.#geo = options.geo
    this.#observe = options.observe
    // Every received body chunk is a fresh buffer freed only by the collector: keep the freed memory
    // for the next ones instead of faulting it in again (process-wide; src/util/retain-freed-heap.ts).
    retainFreedHeap()
    const serve = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#logger.error('blob API request failed', { error: String(err) })
        if (!res.headersSent) res.writeHead(500).end()
        else res.destroy()
      })
    }
    const limits = httpServerLimits(options.limits ?? {})
    const tls = options.tls
    this.#scheme = tls === undefined ? 'http' : 'https'
    if (tls === undefined) {
      this.#server = createServer({ keepAlive: true, ...limits }, serve)
      // Put Page bodies read off the socket into the page buffer, without node:http's chunk copies.
      this.#direct = serveDirectBodies(this.#server, {
        wants: wantsDirectBody,
        serve,
        requestTimeoutMs: limits.requestTimeout,
        keepAliveTimeoutMs: limits.keepAliveTimeout,
        headersTimeoutMs: limits.headersTimeout,
      })
    } else {
      const https = createHttpsServer(
        {
          keepAlive: true,
          ...limits,
          minVersion: 'TLSv1.2',
          handshakeTimeout: limits.headersTimeout,
          ...tls,
        },
        serve,
      )
      // What Azure answers an account that requires secure transfer when it is called over http.
      const e = toAzureError(blobError('AccountRequiresHttps', 'This port speaks https only'), 'blob')
      const body = xmlDocument(
        el('Error', [
          el('Code', e.code),
          el('Message', e.message),
          el('Reason', 'This port speaks https only'),
        ]),
      )
      refusePlainHttp(
        https,
        { status: e.status, reason: 'Bad Request', contentType: 'application/xml', body },
        limits.headersTimeout,
      )
      this.#server = https as unknown as Server
    }
    this.#server.maxConnections = options.maxConnections ?? 1024
    let dropped = 0
    let warnedAt = 0
    this.#server.on('drop', () => {
      dropped++
      if (Date.now() - warnedAt < 10_000) return
      this.#logger.warn('blob API connections refused', {
        count: dropped,
        reason: `${this.#server.maxConnections} connections are open`,
      })
      dropped = 0
      warnedAt = Date.now()
    })
  }

  /** Starts listening; resolves with the port (useful with port 0). */
  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    if (this.#developmentAccount) await this.#ensureDevelopmentAccount()
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    const bound = (this.#server.address() as AddressInfo).port
    this.#logger.info('blob API listening', { url: `${this.#scheme}://${host}:${bound}` })
    return bound
  }

  /** Stops accepting connections, lets requests in flight finish, then closes idle connections. */
  async close(): Promise<void> {
    if (!this.#server.listening) return
    const closed = new Promise<void>((resolve, reject) =>
      this.#server.close((err) => (err === undefined ? resolve() : reject(err))),
    )
    this.#server.closeIdleConnections()
    this.#direct?.closeIdleConnections()
    const timer = setInterval(() => {
      this.#server.closeIdleConnections()
      this.#direct?.closeIdleConnections()
    }, 50)
    try {
      await closed
    } finally {
      clearInterval(timer)
    }
  }

  #ensureDevelopmentAccount(): Promise<void> {
    this.#ready ??= (async () => {
      try {
        this.#store.getAccount(DEVELOPMENT_ACCOUNT.name)
      } catch (err) {
        if (!isCairnError(err) || err.code !== 'AccountNotFound') throw err
        await this.#store.createAccount(DEVELOPMENT_ACCOUNT.name, {
          region: 'local',
          redundancy: 'LRS',
          keys: [DEVELOPMENT_ACCOUNT.key, randomBytes(64).toString('base64')],
        })
      }
    })()
    return this.#ready
  }

  #keys(account: string): readonly string[] | undefined {
    try {
      return this.#store.getAccount(account).keys
    } catch (err) {
      if (isCairnError(err) && err.code === 'AccountNotFound') return undefined
      throw err
    }
  }

  /** Authenticates a request by its Shared Key signature, else by its SAS; answers how. */
  #authenticate(
    ctx: BlobContext,
    rawPath: string,
    rawQuery: string,
    access: Access | undefined,
  ): Pick<BlobContext, 'auth' | 'sas'> {
    const { req, account } = ctx
    const auth = req.headers.authorization
    if (auth === undefined && isSasRequest(ctx.query)) {
      const keys = this.#keys(account)
      if (keys === undefined)
        throw blobError(
          'AuthenticationFailed',
          `Cannot authenticate the SAS: account "${account}" does not exist`,
          {
            AuthenticationErrorDetail: `account "${account}" does not exist`,
          },
        )
      const grant = verifySas({
        query: ctx.query,
        account,
        container: ctx.container,
        blob: ctx.blob,
        keys,
        // An operation this service does not serve is refused after the signature is checked.
        access: access ?? {
          resource: ctx.container === '' ? 's' : ctx.blob === '' ? 'c' : 'o',
          any: '',
          serviceSas: true,
        },
        exists: () => findDisk(ctx.store, diskRef(ctx)) !== undefined,
        remoteAddress: req.socket.remoteAddress,
        https: (req.socket as { encrypted?: boolean }).encrypted === true,
      })
      return { auth: 'sas', sas: grant }
    }
    if (auth === undefined)
      throw blobError(
        'NoAuthenticationInformation',
        `Cannot serve an anonymous request for account "${account}"`,
      )
    const parsed = parseAuthorization(auth)
    if (parsed === undefined)
      throw blobError(
        'InvalidAuthenticationInfo',
        'Cannot read the Authorization header: expected SharedKey account:signature',
      )
    const failed = (detail: string) =>
      blobError('AuthenticationFailed', `Cannot authenticate the request: ${detail}`, {
        AuthenticationErrorDetail: detail,
      })
    if (parsed.account !== account)
      throw failed(`the request is signed for account "${parsed.account}", not "${account}"`)
    const rawDate = req.headers['x-ms-date'] ?? req.headers.date
    const date = Array.isArray(rawDate) ? rawDate[0] : rawDate
    if (date === undefined) throw failed('the request has neither x-ms-date nor Date')
    const when = new Date(date).getTime()
    if (Number.isNaN(when)) throw failed(`the request date "${date}" is not an HTTP date`)
    if (Math.abs(when - Date.now()) > MAX_CLOCK_SKEW_MS)
      throw failed(`the request date ${date} is more than 15 minutes from the service's clock`)
    const keys = this.#keys(account)
    if (keys === undefined) throw failed(`account "${account}" does not exist`)
    const ok = verifySharedKey(
      { method: req.method ?? 'GET', headers: req.headers, rawPath, rawQuery },
      account,
      parsed.signature,
      keys,
    )
    if (!ok) throw failed(`the signature does not match a key of account "${account}"`)
    return { auth: 'sharedKey' }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID()
    const method = req.method ?? 'GET'
    const target = req.url ?? '/'
    const q = target.indexOf('?')
    const rawPath = q < 0 ? target : target.slice(0, q)
    const rawQuery = q < 0 ? '' : target.slice(q + 1)
    const versionHeader = req.headers['x-ms-version']
    const version = typeof versionHeader === 'string' ? versionHeader : DEFAULT_VERSION
    const common: Record<string, string> = {
      'x-ms-request-id': requestId,
      'x-ms-version': /^\d{4}-\d{2}-\d{2}$/.test(version) ? version : DEFAULT_VERSION,
      Date: new Date().toUTCString(),
      Server: 'Cairn-Blob/1.0',
    }
    const clientRequestId = req.headers['x-ms-client-request-id']
    if (typeof clientRequestId === 'string') common['x-ms-client-request-id'] = clientRequestId
    let kind: OperationKind = 'service'
    const start = performance.now()
    let operation = 'unknown'
    const observed = (status: number) =>
      this.#observe?.({ operation, status, seconds: (performance.now() - start) / 1000 })
    let named: { ref: DiskRef; snapshot: string | undefined } | undefined
    try {
      if (this.#ready !== undefined) await this.#ready
      if (!/^\d{4}-\d{2}-\d{2}$/.test(version))
        throw blobError('InvalidHeaderValue', `Cannot use service version "${version}"`, {
          HeaderName: 'x-ms-version',
          HeaderValue: version,
        })
      const { account: addressed, container, blob } = splitPath(rawPath)
      // The secondary endpoint names the account with a suffix; Shared Key and SAS sign for the account.
      const secondary = this.#geo !== undefined && addressed.endsWith(SECONDARY_SUFFIX)
      const account = secondary ? addressed.slice(0, -SECONDARY_SUFFIX.length) : addressed
      if (account === '')
        throw blobError('InvalidUri', 'Cannot serve a request without an account in the path')
      const host = req.headers.host ?? '127.0.0.1'
      const ctx: BlobContext = {
        store: this.#store,
        req,
        account,
        container,
        blob,
        query: new URLSearchParams(rawQuery),
        accountUrl: `http://${host}/${encodeURIComponent(addressed)}`,
      }
      if (this.#geo !== undefined) ctx.geo = this.#geo
      const r = route(ctx, method)
      operation = r?.run.name || 'unknown'
      Object.assign(ctx, this.#authenticate(ctx, rawPath, rawQuery, r?.access))
      this.#secondaryAccess(ctx, method, secondary)
      if (r === undefined)
        throw blobError(
          'UnsupportedHttpVerb',
          `Cannot serve ${method} ${rawPath}?${rawQuery}: no such blob operation`,
        )
      if (container !== '' && (container.length < 3 || container.length > 63))
        throw blobError(
          'OutOfRangeInput',
          `Cannot use container name "${container}": a container name is 3 to 63 characters long`,
        )
      kind = r.kind
      refuseUnservedOptions(ctx)
      if (blob !== '') named = { ref: diskRef(ctx), snapshot: queryOf(ctx, 'snapshot') }
      if (ctx.blob !== '') checkIfTags(ctx)
      const answer = await r.run(ctx)
      // A service SAS may name the Cache-Control … Content-Type that reading the blob answers with.
      if (ctx.sas !== undefined && (r.run === getBlob || r.run === blobProperties) && answer.status < 300)
        answer.headers = { ...answer.headers, ...ctx.sas.overrides }
      await this.#send(res, method, answer, common)
      observed(answer.status)
      this.#logger.debug('blob API request', { method, path: rawPath, status: answer.status, requestId })
    } catch (err) {
      const answer = toAzureError(err, kind)
      observed(answer.status)
      if (answer.code === 'InternalError')
        this.#logger.error('blob API operation failed', { error: String(err), requestId })
      else this.#logger.debug('blob API request refused', { code: answer.code, requestId })
      if (res.headersSent) {
        res.destroy()
        return
      }
      // Every 416 says how long the blob is, as Azure does.
      if (answer.status === 416 && named !== undefined) {
        const size = this.#sizeOf(named.ref, named.snapshot)
        if (size !== undefined) common['Content-Range'] = `bytes */${size}`
      }
      this.#sendError(res, method, answer, common, requestId)
      // Whatever of the body was not read is discarded so the connection can be reused, up to a
      // point: a client still sending more than that loses the connection instead.
      let discarded = 0
      req.on('data', (chunk: Buffer) => {
        discarded += chunk.length
        if (discarded > MAX_DISCARD && discarded - chunk.length <= MAX_DISCARD) lingerAndClose(req.socket)
      })
      req.resume()
    }
  }

  /**
   * On a site holding an account's geo-replica: writes are refused as Azure refuses writes to the
   * secondary, reads need RA-GRS and see each disk's last complete point. On any other site the
   * secondary endpoint does not exist.
   */
  #secondaryAccess(ctx: BlobContext, method: string, secondaryEndpoint: boolean): void {
    const geo = this.#geo
    if (geo === undefined) return
    if (geo.role(ctx.account) !== 'secondary') {
      if (secondaryEndpoint)
        throw blobError(
          'ResourceNotFound',
          `Cannot serve account "${ctx.account}${SECONDARY_SUFFIX}": this site holds no geo-replica of "${ctx.account}"`,
        )
      return
    }
    if (method !== 'GET' && method !== 'HEAD')
      throw blobError(
        'WriteOperationNotSupportedOnSecondary',
        `Cannot ${method} on account "${ctx.account}" here: this site holds its read-only geo-replica (cairn account failover makes it primary)`,
      )
    if (!geo.readable(ctx.account))
      throw blobError(
        'FeatureNotSupported',
        `Cannot read account "${ctx.account}" on its secondary: its redundancy allows no reads there (RA-GRS does)`,
      )
    if (ctx.blob !== '' && ctx.query.get('snapshot') === null) {
      const snapshot = geo.readSnapshot(diskRef(ctx))
      if (snapshot === undefined)
        throw blobError(
          'BlobNotFound',
          `Cannot read "${ctx.container}/${ctx.blob}" on the secondary: no complete point of it has arrived`,
        )
      ctx.query.set('snapshot', snapshot)
    }
  }

  /** The size of a blob or snapshot, or undefined when there is none. */
  #sizeOf(ref: DiskRef, snapshot: string | undefined): number | undefined {
    try {
      return this.#store.getDisk(ref, snapshot).size
    } catch {
      return undefined
    }
  }

  async #send(res: ServerResponse, method: string, a: Answer, common: Record<string, string>): Promise<void> {
    const headers: Record<string, string | number> = { ...common }
    for (const [k, v] of Object.entries(a.headers ?? {})) if (v !== undefined && v !== '') headers[k] = v
    const body = a.body
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      const buf = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body
      if (buf !== undefined) {
        if (typeof body === 'string') headers['Content-Type'] = a.contentType ?? 'application/xml'
        headers['Content-Length'] = buf.length
      } else if (headers['Content-Length'] === undefined) {
        headers['Content-Length'] = 0
      }
      res.writeHead(a.status, headers)
      const sent = a.sent
      // 'finish': the body has been handed to the connection, so its buffer may be reused. (A
      // connection that fails first never calls back, and the buffer is simply not reused.)
      if (sent !== undefined) res.once('finish', sent)
      res.end(method === 'HEAD' || a.status === 304 ? undefined : buf)
      return
    }
    res.writeHead(a.status, headers)
    if (method === 'HEAD') {
      res.end()
      return
    }
    await pipeline(Readable.from(body), res)
  }

  #sendError(
    res: ServerResponse,
    method: string,
    e: AzureErrorAnswer,
    common: Record<string, string>,
    requestId: string,
  ): void {
    const message = `${e.message}\nRequestId:${requestId}\nTime:${new Date().toISOString()}`
    const body = xmlDocument(
      el('Error', [
        el('Code', e.code),
        el('Message', message),
        ...Object.entries(e.extra).map(([k, v]) => el(k, v)),
      ]),
    )
    const headers: Record<string, string | number> = { ...common, 'x-ms-error-code': e.code }
    if (e.code === 'NoAuthenticationInformation') headers['WWW-Authenticate'] = 'SharedKey'
    if (method === 'HEAD') {
      res.writeHead(e.status, headers).end()
      return
    }
    headers['Content-Type'] = 'application/xml'
    headers['Content-Length'] = Buffer.byteLength(body)
    res.writeHead(e.status, headers).end(body)
  }
}
