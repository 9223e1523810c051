// The caps and deadlines of Cairn's node:http listeners (blob API, management API).

/** Deadlines of one node:http listener. */
export interface HttpLimits {
  /** How long an idle keep-alive connection stays open (default 5 s). */
  idleTimeoutMs?: number
  /** How long a client has to send a request's headers (default 20 s). */
  headerTimeoutMs?: number
  /** How long a client has to send a whole request; 0: no limit (default 300 s). */
  requestTimeoutMs?: number
}

/** node:http server options (`createServer(options)`) enforcing `limits`. */
export function httpServerLimits(limits: HttpLimits): {
  keepAliveTimeout: number
  headersTimeout: number
  requestTimeout: number
  connectionsCheckingInterval: number
} {
  const headersTimeout = limits.headerTimeoutMs ?? 20_000
  const request = limits.requestTimeoutMs ?? 300_000
  return {
    keepAliveTimeout: limits.idleTimeoutMs ?? 5_000,
    headersTimeout,
    requestTimeout: request === 0 ? 0 : Math.max(headersTimeout, request),
    // Node checks the deadlines at this period; a fraction of the header deadline keeps it close.
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeout / 4))),
  }
}
