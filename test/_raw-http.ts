import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { authHeaders } from './_service.js'

/** One answer of rawRequest: status, headers and the body as text. */
export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  /** The `error.code` of a JSON error body, if any. */
  code: string | undefined
}

/**
 * Sends one HTTP request with exactly the given headers (including Host, which fetch() does not let
 * a caller set) and an optional body: a Buffer, or an async iterable sent chunked.
 */
export function rawRequest(
  url: string,
  options: {
    method?: string
    headers?: Record<string, string>
    body?: Buffer | string | AsyncIterable<Buffer>
    /**
     * Send only the headers, declaring a body of this many bytes that never comes: the answer must be
     * a refusal made from the headers alone (a server that waits for the body times the request out).
     */
    declaredOnly?: number
    timeoutMs?: number
  } = {},
): Promise<RawAnswer> {
  const u = new URL(url)
  // Requests to a test service carry its admin token unless the test gives its own Authorization.
  const headers = { ...authHeaders(u.origin), ...options.headers }
  const fixed = typeof options.body === 'string' || Buffer.isBuffer(options.body)
  const named = (h: string) => Object.keys(headers).some((k) => k.toLowerCase() === h)
  if (options.declaredOnly !== undefined) headers['content-length'] = String(options.declaredOnly)
  else if (fixed && !named('content-length') && !named('transfer-encoding'))
    headers['content-length'] = String(Buffer.byteLength(options.body as string | Buffer))
  return new Promise((resolve, reject) => {
    let answered = false
    const req = request(
      {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: options.method ?? 'GET',
        headers,
        agent: false,
        setHost: !named('host'),
      },
      (res) => {
        answered = true
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          if (options.declaredOnly !== undefined) req.destroy()
          const text = Buffer.concat(chunks).toString()
          let code: string | undefined
          try {
            code = (JSON.parse(text) as { error?: { code?: string } }).error?.code
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, code })
        })
        res.on('error', reject)
      },
    )
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error('request timed out')))
    // A server may answer before the body is sent and close the connection; the answer is what counts.
    // If the connection fails first (EPIPE while the body is still going), the answer may already be
    // in: it is read from the bytes the socket received.
    let received = Buffer.alloc(0)
    req.on('socket', (socket) =>
      socket.on('data', (d: Buffer) => {
        if (received.length < 64 * 1024) received = Buffer.concat([received, d])
      }),
    )
    req.on('error', (err) => {
      if (answered) return
      const early = parseAnswer(received)
      if (early !== undefined) resolve(early)
      else reject(err)
    })
    const body = options.body
    if (options.declaredOnly !== undefined) {
      req.flushHeaders()
      return
    }
    if (body === undefined) {
      req.end()
      return
    }
    // The headers go first, alone for a moment: a refusal by header arrives before the body is sent.
    req.flushHeaders()
    void (async () => {
      await new Promise((r) => {
        const timer = setTimeout(r, 200)
        req.once('response', () => {
          clearTimeout(timer)
          r(undefined)
        })
      })
      try {
        const chunks = typeof body === 'string' || Buffer.isBuffer(body) ? [Buffer.from(body)] : body
        for await (const chunk of chunks) {
          if (answered || req.destroyed) return
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r))
        }
        req.end()
      } catch {}
    })()
  })
}

/** `total` bytes of `fill` in chunks of `chunk` bytes, generated as they are sent. */
export async function* generated(total: number, fill = 0x20, chunk = 256 * 1024): AsyncIterable<Buffer> {
  const block = Buffer.alloc(chunk, fill)
  for (let sent = 0; sent < total; sent += chunk) yield block.subarray(0, Math.min(chunk, total - sent))
}

/** Opens a TCP connection that sends nothing; resolves once connected. */
export function silentSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host, () => resolve(s))
    s.on('error', () => {})
    s.once('error', reject)
  })
}

/** Resolves when the server has closed `s` (or rejects after `ms`). */
export function closedWithin(s: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed || s.readableEnded) return resolve()
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms)
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    s.once('close', done)
    s.once('end', done)
    s.resume()
  })
}

/** Peak and current resident memory of a process, in bytes (Linux /proc). */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 }
}

/** An HTTP/1.1 answer read from raw bytes (Content-Length bodies only), or undefined if incomplete. */
function parseAnswer(bytes: Buffer): RawAnswer | undefined {
  const text = bytes.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
  if (end === -1 || m === null) return undefined
  const headers: Record<string, string> = {}
  for (const line of text.slice(0, end).split('\r\n').slice(1)) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const body = bytes.subarray(end + 4, end + 4 + Number(headers['content-length'] ?? 0)).toString()
  let code: string | undefined
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code
  } catch {}
  return { status: Number(m[1]), headers, text: body, code }
}
