import {
  type Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  Agent as PlainAgent,
} from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls'
import { CairnError } from '../util/index.js'

/** Whom the CLI trusts for https:// URLs: the system's CAs (default), a CA file, a pinned fingerprint. */
export interface TlsTrust {
  /** PEM certificates trusted instead of the system's (`--ca FILE`, `CAIRN_CA`). */
  ca?: string
  /**
   * SHA-256 fingerprint the service's certificate must have (`--fingerprint`, or the one `cairn login`
   * saved): checked before any byte of a request is sent; the CA and the name are then not checked.
   */
  fingerprint?: string
}

/** What a request carries. */
export interface TransportRequest {
  method: string
  headers?: Record<string, string>
  body?: string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | Readable | null
  signal?: AbortSignal
}

/** `AB:CD:…` upper case, from any spelling (colons or not, any case, an optional `sha256:` prefix). */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text
    .trim()
    .replace(/^sha-?256[:=]/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase()
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined
  return hex.match(/../g)!.join(':')
}

/**
 * Sends the management API's requests with node:http / node:https (fetch cannot be given a CA or a
 * pin) and answers web `Response`s. Connections are kept alive. A TLS connection whose certificate
 * does not have the pinned fingerprint is closed before the request is written, so a token never
 * reaches an impostor.
 */
export class HttpTransport {
  readonly #plain: HttpAgent
  readonly #secure: HttpsAgent
  /** The SHA-256 fingerprint of the certificate of the last TLS connection made. */
  #peerFingerprint: string | undefined

  constructor(trust: TlsTrust = {}) {
    this.#plain = new PlainAgent({ keepAlive: true })
    const pin = trust.fingerprint === undefined ? undefined : normalizeFingerprint(trust.fingerprint)
    if (trust.fingerprint !== undefined && pin === undefined)
      throw new CairnError(
        'UsageError',
        `Cannot use the fingerprint "${trust.fingerprint}": a SHA-256 fingerprint is 32 bytes in hexadecimal (AB:CD:…, as cairn status shows it)`,
      )
    const setFingerprint = (fp: string) => {
      this.#peerFingerprint = fp
    }
    const options = {
      keepAlive: true,
      ...(trust.ca !== undefined ? { ca: trust.ca } : {}),
    }
    this.#secure = new HttpsAgent(options)
    // Each new TLS connection is checked before the agent hands it to a request.
    const agent = this.#secure as unknown as {
      createConnection: (o: ConnectionOptions, cb: (err: Error | null, s?: Socket) => void) => undefined
    }
    agent.createConnection = (o, callback) => {
      const socket: TLSSocket = connect({ ...o, ...(pin !== undefined ? { rejectUnauthorized: false } : {}) })
      const onError = (err: Error) => callback(err)
      socket.once('error', onError)
      socket.once('secureConnect', () => {
        socket.off('error', onError)
        const seen = socket.getPeerCertificate().fingerprint256
        setFingerprint(seen)
        if (pin !== undefined && seen !== pin) {
          socket.destroy()
          callback(
            new CairnError(
              'TlsUntrusted',
              `Cannot trust ${o.host}:${o.port}: its certificate's SHA-256 fingerprint is ${seen}, not the pinned ${pin}; if the service's certificate was replaced, check the new fingerprint with its operator and give it (--fingerprint, or cairn login again)`,
            ),
          )
          return
        }
        callback(null, socket)
      })
      return undefined
    }
  }

  /** The fingerprint of the certificate of the last TLS connection (for `cairn login` to save). */
  get peerFingerprint(): string | undefined {
    return this.#peerFingerprint
  }

  /** Sends one request; resolves once the answer's headers have arrived. */
  send(url: URL, init: TransportRequest): Promise<Response> {
    const https = url.protocol === 'https:'
    const request = https ? httpsRequest : httpRequest
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        {
          method: init.method,
          headers: init.headers,
          agent: https ? this.#secure : this.#plain,
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (res) => resolve(toResponse(init.method, res)),
      )
      req.once('error', reject)
      const body = init.body
      if (body === undefined || body === null) req.end()
      else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body)
      else if (body instanceof ArrayBuffer) req.end(Buffer.from(body))
      else {
        const source = body instanceof Readable ? body : Readable.fromWeb(body as never)
        source.once('error', (err) => req.destroy(err))
        source.pipe(req)
      }
    })
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.#plain.destroy()
    this.#secure.destroy()
  }
}

const NULL_BODY = new Set([101, 204, 205, 304])

function toResponse(method: string, res: IncomingMessage): Response {
  const headers = new Headers()
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v)
  }
  const status = res.statusCode ?? 500
  const empty = NULL_BODY.has(status) || method === 'HEAD'
  if (empty) res.resume()
  return new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
    status,
    statusText: res.statusMessage ?? '',
    headers,
  })
}
