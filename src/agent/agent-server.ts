import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { CairnError, isCairnError, type Logger, silentLogger } from '../util/index.js'
import type { AgentErrorBody } from './agent-protocol.js'
import { QuiesceController } from './quiesce-controller.js'
import type { OwnershipRule } from './script-config.js'

/** Options of an AgentServer. */
export interface AgentServerOptions {
  configPath: string
  /** The shared secret the service sends as `Authorization: Bearer TOKEN`. */
  token: string
  ownership?: OwnershipRule
  logger?: Logger
}

const MAX_BODY = 64 * 1024

/**
 * The agent's HTTP server: `GET /v1/status`, `POST /v1/quiesce`, `POST /v1/thaw {sessionId}`, all
 * behind a bearer token compared in constant time. Stopping it thaws whatever it holds quiesced.
 */
export class AgentServer {
  readonly controller: QuiesceController
  readonly #tokenDigest: Buffer
  readonly #log: Logger
  #server: Server | undefined

  constructor(options: AgentServerOptions) {
    if (options.token.length < 8) {
      throw new CairnError(
        'UsageError',
        'Cannot start the agent: the token must be at least 8 characters long',
      )
    }
    this.#tokenDigest = digest(options.token)
    this.#log = options.logger ?? silentLogger
    const controllerOptions: ConstructorParameters<typeof QuiesceController>[0] = {
      configPath: options.configPath,
      logger: this.#log,
    }
    if (options.ownership) controllerOptions.ownership = options.ownership
    this.controller = new QuiesceController(controllerOptions)
  }

  /** Checks the configuration, then listens; answers the bound address. */
  async start(
    options: { host?: string; port?: number } = {},
  ): Promise<{ host: string; port: number; url: string }> {
    await this.controller.checkConfig()
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => this.#log.error('request failed', { err: String(err) }))
    })
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 7071, options.host ?? '127.0.0.1', () => resolve())
    })
    const addr = server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    return { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}` }
  }

  /** Stops listening and thaws the guest if it is still quiesced. */
  async stop(): Promise<void> {
    await this.controller.close()
    const server = this.#server
    if (!server) return
    this.#server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.#authorized(req.headers.authorization)) {
        throw new CairnError('Unauthorized', 'Cannot serve the request: the agent token is missing or wrong')
      }
      const path = (req.url ?? '/').split('?')[0]
      const route = `${req.method} ${path}`
      switch (route) {
        case 'GET /v1/status':
          return send(res, 200, this.controller.status())
        case 'POST /v1/quiesce':
          await readJson(req)
          return send(res, 200, await this.controller.quiesce())
        case 'POST /v1/thaw': {
          const body = await readJson(req)
          const id = (body as { sessionId?: unknown }).sessionId
          if (typeof id !== 'string')
            throw new CairnError('InvalidRequest', 'Cannot thaw: "sessionId" is missing')
          return send(res, 200, await this.controller.thaw(id))
        }
        default:
          throw new CairnError('RouteNotFound', `Cannot serve ${route}: the agent has no such route`)
      }
    } catch (err) {
      const e = isCairnError(err) ? err : new CairnError('Internal', (err as Error).message, { cause: err })
      if (e.code === 'Internal') this.#log.error('internal error', { err: String(err) })
      const body: AgentErrorBody & { details?: unknown } = { error: { code: e.code, message: e.message } }
      if (e.details) body.details = e.details
      send(res, e.status, body)
    }
  }

  #authorized(header: string | undefined): boolean {
    const m = /^Bearer (.+)$/.exec(header ?? '')
    if (!m) return false
    return timingSafeEqual(digest(m[1]!), this.#tokenDigest)
  }
}

/** Hashing both sides first gives equal lengths, so the comparison's time says nothing about the token. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY)
      throw new CairnError('PayloadTooLarge', 'Cannot read the request: the body is over 64 KiB')
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') return {}
  try {
    return JSON.parse(text)
  } catch {
    throw new CairnError('InvalidRequest', 'Cannot read the request: the body is not JSON')
  }
}
