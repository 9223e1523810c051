import type { Server } from 'node:http'
import type { AddressInfo, Server as NetServer } from 'node:net'
import { CairnError } from '../util/index.js'

/** Starts a server listening; resolves with the bound port, or rejects with a clear error. */
export function listen(
  server: NetServer | Server,
  port: number,
  host: string,
  what: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening)
      reject(listenError(err, what, host, port))
    }
    const onListening = () => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

/** Closes a server, waiting for in-flight requests up to `graceMs`, then dropping idle connections. */
export function close(server: Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs)
    server.close(() => {
      clearTimeout(timer)
      resolve()
    })
    server.closeIdleConnections()
  })
}

/** A clear error for a listener that could not bind. */
export function listenError(err: unknown, what: string, host: string, port: number): CairnError {
  if (err instanceof CairnError) return err
  const e = err as NodeJS.ErrnoException
  const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.message
  return new CairnError('ConfigInvalid', `Cannot listen for the ${what} on ${host}:${port}: ${why}`, {
    cause: err,
  })
}
