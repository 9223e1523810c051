// An HTTPS listener that tells a plain-HTTP client to use https, instead of dropping it silently.
import type { Socket } from 'node:net'
import type { Server as TlsServer } from 'node:tls'

/** The answer to a plain-HTTP request on an HTTPS port. */
export interface PlainHttpAnswer {
  status: number
  reason: string
  contentType: string
  body: string
}

/** The first byte of every TLS connection: a handshake record. */
const TLS_HANDSHAKE = 0x16

/**
 * Makes `server` look at the first byte of each connection before TLS sees it: a TLS handshake goes
 * on as usual; anything else (a request sent to `http://` by mistake) is answered `answer` in plain
 * HTTP and closed, so that curl, SDKs and the CLI print why instead of "connection reset". A client
 * that sends nothing within `timeoutMs` is dropped. The server keeps its caps and close() as usual.
 */
export function refusePlainHttp(server: TlsServer, answer: PlainHttpAnswer, timeoutMs: number): void {
  const tlsListeners = server.listeners('connection') as ((socket: Socket) => void)[]
  server.removeAllListeners('connection')
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {})
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer)
      socket.pause()
      if (chunk[0] === TLS_HANDSHAKE) {
        // TLS reads what is already buffered in the socket before its own reads.
        socket.unshift(chunk)
        for (const listener of tlsListeners) listener.call(server, socket)
        return
      }
      const body = Buffer.from(answer.body)
      socket.end(
        `HTTP/1.1 ${answer.status} ${answer.reason}\r\nContent-Type: ${answer.contentType}\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${answer.body}`,
      )
      setTimeout(() => socket.destroy(), 1000).unref()
    })
  })
}
