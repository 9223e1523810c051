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
 * that sends nothing within `timeoutMs` is dropped, as is one that has sent nothing yet when the
 * server closes its idle connections (`closeIdleConnections`). The server keeps its caps and close().
 */
export function refusePlainHttp(server: TlsServer, answer: PlainHttpAnswer, timeoutMs: number): void {
  const tlsListeners = server.listeners('connection') as ((socket: Socket) => void)[]
  server.removeAllListeners('connection')
  const silent = new Set<Socket>()
  const http = server as TlsServer & { closeIdleConnections?: () => void }
  const closeIdle = http.closeIdleConnections?.bind(server)
  http.closeIdleConnections = () => {
    for (const socket of silent) socket.destroy()
    closeIdle?.()
  }
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {})
    silent.add(socket)
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      silent.delete(socket)
    })
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer)
      silent.delete(socket)
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
