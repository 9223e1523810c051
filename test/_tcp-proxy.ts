import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy on loopback (port 0) in front of `target` (`host:port`) that counts the bytes clients send
 * through it and can drop the link: `cutAfter(n)` drops every connection once n more bytes went up
 * (those n delivered, nothing after them), and refuses new ones (accepted, then closed at once) until
 * `reconnect()`.
 */
export interface TcpProxy {
  /** `http://127.0.0.1:PORT`. */
  url: string
  /** Bytes sent from clients to the target so far. */
  readonly bytesUp: number
  /** True while the link is cut. */
  readonly down: boolean
  /** Drops the link once `bytes` more bytes went up (0: now). Resolves when it was dropped. */
  cutAfter(bytes: number): Promise<void>
  /** Lets connections through again. */
  reconnect(): void
  close(): Promise<void>
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const at = new URL(target.includes('://') ? target : `tcp://${target}`)
  const sockets = new Set<Socket>()
  let bytesUp = 0
  let down = false
  let cutAt = Number.POSITIVE_INFINITY
  let onCut: (() => void) | undefined
  const upstreams = new Set<Socket>()
  const cut = () => {
    down = true
    cutAt = Number.POSITIVE_INFINITY
    // The bytes counted as through are delivered (a connection to the target ends after what was
    // written to it, cut in the middle of a request); the clients' connections are reset.
    for (const s of sockets) if (upstreams.has(s)) s.end()
    for (const s of sockets) if (!upstreams.has(s)) s.destroy()
    sockets.clear()
    onCut?.()
    onCut = undefined
  }
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy()
      return
    }
    const upstream = createConnection({ host: at.hostname, port: Number(at.port) })
    sockets.add(client)
    sockets.add(upstream)
    upstreams.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
      upstreams.delete(upstream)
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.on('data', (chunk: Buffer) => {
      if (down) return
      // Only the bytes before the cut go through.
      const room = cutAt - bytesUp
      if (chunk.length >= room) {
        if (room > 0) upstream.write(chunk.subarray(0, room))
        bytesUp += Math.max(0, room)
        cut()
        return
      }
      bytesUp += chunk.length
      if (!upstream.write(chunk)) {
        client.pause()
        upstream.once('drain', () => client.resume())
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) {
        upstream.pause()
        client.once('drain', () => upstream.resume())
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    get bytesUp() {
      return bytesUp
    },
    get down() {
      return down
    },
    cutAfter(bytes) {
      return new Promise<void>((resolve) => {
        onCut = resolve
        cutAt = bytesUp + bytes
        if (bytes <= 0) cut()
      })
    },
    reconnect() {
      down = false
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
