// A fault-injecting HTTP proxy for the object-store tests: it forwards requests to a real store
// (Azurite, s3rver) and, when a rule matches, answers an error instead, answers slowly, drops the
// connection in the middle of an upload, cuts a response body short, or shifts the request's date.
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { Socket } from 'node:net'

/** What the proxy does to a request a rule matches. */
export type Fault =
  /** Answers this status with the store's error body (S3 XML `Code`, Azure `x-ms-error-code`). */
  | { kind: 'status'; status: number; code: string; detail?: string }
  /** Waits this long before forwarding. */
  | { kind: 'slow'; ms: number }
  /** Forwards half of the request body, then drops both connections. */
  | { kind: 'drop-upload' }
  /** Forwards the request, then sends the headers and half of the answer's body and drops the connection. */
  | { kind: 'truncate' }
  /** Moves the request's `x-amz-date` (and `x-ms-date`) this many ms, as a client with a wrong clock would. */
  | { kind: 'skew'; ms: number }

/** A fault, the requests it applies to, and how many more times. */
export interface FaultRule {
  fault: Fault
  /** Which requests (default all). */
  match?: (req: { method: string; url: string }) => boolean
  /** How many more requests it hits (default: every one). */
  times?: number
  /** Hits only every `every`-th matching request (default 1). */
  every?: number
}

/** One request as the proxy saw it. */
export interface ProxiedRequest {
  method: string
  url: string
  fault?: Fault['kind']
  /** The body's length as its Content-Length header gave it (0 without one). */
  length: number
  /** Requests in flight when this one arrived (itself included). */
  concurrent: number
  /** When it arrived and when its answer was done, on one counter of events. */
  start: number
  end?: number
}

/** The running proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: paths are forwarded as they are. */
  endpoint: string
  rules: FaultRule[]
  /** Every request seen, in order. */
  log: ProxiedRequest[]
  /** Bytes of request bodies forwarded to the store. */
  bytesForwarded: number
  close(): Promise<void>
}

/** Starts a proxy on a free port in front of `target` (`http://host:port`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const to = new URL(target)
  const sockets = new Set<Socket>()
  const counters = new WeakMap<FaultRule, number>()
  let events = 0
  let inFlight = 0
  const proxy: FaultProxy = {
    endpoint: '',
    rules: [],
    log: [],
    bytesForwarded: 0,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  const pick = (req: IncomingMessage): Fault | undefined => {
    for (const rule of proxy.rules) {
      if ((rule.times ?? 1) <= 0) continue
      if (rule.match && !rule.match({ method: req.method ?? '', url: req.url ?? '' })) continue
      const n = (counters.get(rule) ?? 0) + 1
      counters.set(rule, n)
      if (n % (rule.every ?? 1) !== 0) continue
      if (rule.times !== undefined) rule.times--
      return rule.fault
    }
    return undefined
  }
  const server: Server = createServer((req, res) => {
    const fault = pick(req)
    inFlight++
    const entry: ProxiedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      ...(fault ? { fault: fault.kind } : {}),
      length: Number(req.headers['content-length'] ?? 0),
      concurrent: inFlight,
      start: events++,
    }
    proxy.log.push(entry)
    res.once('close', () => {
      inFlight--
      entry.end = events++
    })
    void handle(req, res, fault).catch(() => {
      req.socket.destroy()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })

  async function handle(req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): Promise<void> {
    if (fault?.kind === 'status') {
      for await (const _ of req) {
        // The body is read and dropped, as a store that fails a request does.
      }
      const isAzure = req.headers['x-ms-version'] !== undefined
      const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${fault.code}</Code><Message>injected fault</Message>${fault.detail ? `<AuthenticationErrorDetail>${fault.detail}</AuthenticationErrorDetail>` : ''}</Error>`
      res.writeHead(fault.status, {
        'content-type': 'application/xml',
        'content-length': Buffer.byteLength(body),
        ...(isAzure ? { 'x-ms-error-code': fault.code } : {}),
      })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    if (fault?.kind === 'slow') await new Promise((r) => setTimeout(r, fault.ms))
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: to.host }
    if (fault?.kind === 'skew') {
      for (const h of ['x-amz-date', 'x-ms-date']) {
        const v = headers[h]
        if (typeof v !== 'string') continue
        const t = h === 'x-amz-date' ? parseAmzDate(v) : Date.parse(v)
        const moved = new Date(t + fault.ms)
        headers[h] =
          h === 'x-amz-date' ? moved.toISOString().replace(/[-:]|\.\d{3}/g, '') : moved.toUTCString()
      }
    }
    const upstream = httpRequest({
      host: to.hostname,
      port: to.port,
      method: req.method,
      path: req.url,
      headers,
    })
    const length = Number(req.headers['content-length'] ?? 0)
    let sent = 0
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      upstream.once('response', resolve)
      upstream.once('error', reject)
    })
    // A client that gives up (its timeout) leaves this promise unwatched: never an unhandled rejection.
    answered.catch(() => {})
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy()
    })
    for await (const chunk of req) {
      let piece = chunk as Buffer
      if (fault?.kind === 'drop-upload' && sent + piece.length >= length / 2) {
        piece = piece.subarray(0, Math.max(0, Math.floor(length / 2) - sent))
        upstream.write(piece)
        proxy.bytesForwarded += piece.length
        upstream.destroy()
        req.socket.destroy()
        return
      }
      sent += piece.length
      proxy.bytesForwarded += piece.length
      if (!upstream.write(piece)) await new Promise((r) => upstream.once('drain', r))
    }
    upstream.end()
    const answer = await answered
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    if (fault?.kind === 'truncate') {
      const total = Number(answer.headers['content-length'] ?? 0)
      let passed = 0
      for await (const chunk of answer) {
        const piece = chunk as Buffer
        const room = Math.floor(total / 2) - passed
        if (piece.length >= room) {
          res.write(piece.subarray(0, Math.max(0, room)))
          break
        }
        res.write(piece)
        passed += piece.length
      }
      answer.destroy()
      // Give the half body time to leave, then cut the connection.
      await new Promise((r) => setTimeout(r, 20))
      req.socket.destroy()
      return
    }
    for await (const chunk of answer) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r))
    res.end()
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  proxy.endpoint = `http://127.0.0.1:${port}`
  return proxy
}

/** `20261206T161530Z` as milliseconds. */
function parseAmzDate(v: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v)
  if (!m) return Date.now()
  const [, y, mo, d, h, mi, s] = m
  return Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!)
}
