// Put Page bodies of 64 KiB or more are read off the socket straight into the page buffer, outside
// node:http's parser (src/blobapi/_direct-body.ts), and the connection then goes back to node:http.
// These tests speak raw HTTP/1.1 on one connection to try to break that hand-over: bodies sent in odd
// pieces, requests pipelined behind a body, refused requests whose body was never read, a client that
// leaves mid-body, Connection: close.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { crc64 } from '../src/blobapi/_crc64.js'
import { directBodies } from '../src/blobapi/_direct-body.js'
import { type BlobApiHarness, pattern, sharedKey, startBlobApi } from './_blobapi-harness.js'

const SIZE = 1024 * 1024
const BODY = 256 * 1024

interface Answer {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** One keep-alive connection: requests are written as given, answers read back in order. */
class Connection {
  readonly socket: Socket
  #data = Buffer.alloc(0)
  #waiting: (() => void) | undefined
  closed = false

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.#data = Buffer.concat([this.#data, d])
      this.#waiting?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.#waiting?.()
    })
    socket.on('error', () => {})
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new Connection(s)))
      s.once('error', reject)
    })
  }

  async #more(): Promise<void> {
    if (this.closed) throw new Error('the server closed the connection')
    await new Promise<void>((resolve) => {
      this.#waiting = resolve
    })
    this.#waiting = undefined
  }

  /** The next answer on the connection. */
  async answer(): Promise<Answer> {
    while (this.#data.indexOf('\r\n\r\n') < 0) await this.#more()
    const end = this.#data.indexOf('\r\n\r\n')
    const lines = this.#data.subarray(0, end).toString('latin1').split('\r\n')
    const status = Number(lines[0]!.split(' ')[1])
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':')
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    while (this.#data.length < end + 4 + length) await this.#more()
    const body = Buffer.from(this.#data.subarray(end + 4, end + 4 + length))
    this.#data = this.#data.subarray(end + 4 + length)
    return { status, headers, body }
  }
}

/** The bytes of one signed request of the development account. */
function requestBytes(
  h: BlobApiHarness,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Buffer {
  const all: Record<string, string> = {
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': '2025-01-05',
    ...headers,
    'content-length': String(body?.length ?? 0),
  }
  const url = new URL(`${h.accountUrl}${path}`)
  all.authorization = sharedKey(method, url, all)
  const head = [
    `${method} ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    ...Object.entries(all).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n')
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)])
}

const putPage = (
  h: BlobApiHarness,
  blob: string,
  offset: number,
  body: Buffer,
  extra: Record<string, string> = {},
) =>
  requestBytes(
    h,
    'PUT',
    `/direct/${blob}?comp=page`,
    { 'x-ms-page-write': 'update', 'x-ms-range': `bytes=${offset}-${offset + body.length - 1}`, ...extra },
    body,
  )

const getRange = (h: BlobApiHarness, blob: string, offset: number, length: number) =>
  requestBytes(h, 'GET', `/direct/${blob}`, { 'x-ms-range': `bytes=${offset}-${offset + length - 1}` })

const crcOf = (b: Buffer) => crc64(b).toString('base64')

describe('Put Page bodies read off the socket', () => {
  let h: BlobApiHarness
  let port: number
  before(async () => {
    h = await startBlobApi()
    port = Number(new URL(h.url).port)
    await h.service.getContainerClient('direct').create()
  })
  after(async () => {
    await h.close()
  })

  const newBlob = async (name: string) => {
    await h.service.getContainerClient('direct').getPageBlobClient(name).create(SIZE)
    return name
  }

  it('bodies sent in pieces and requests pipelined behind a body are all served, in order, on one connection', async () => {
    const blob = await newBlob('pieces.vhd')
    const c = await Connection.open(port)
    try {
      // A body written in odd pieces, with pauses, so that reads end anywhere in it.
      const a = pattern(BODY, 1)
      const bytes = putPage(h, blob, 0, a)
      for (let at = 0; at < bytes.length; ) {
        const n = Math.min(bytes.length - at, 1 + ((at * 7919) % 70_001))
        c.socket.write(bytes.subarray(at, at + n))
        at += n
        await new Promise((r) => setTimeout(r, 1))
      }
      const first = await c.answer()
      assert.equal(first.status, 201, first.body.toString())
      assert.equal(first.headers['x-ms-content-crc64'], crcOf(a))

      // Two Put Pages and a Get in one write: the second request arrives with the first one's body.
      const b = pattern(BODY, 2)
      const d = pattern(BODY, 3)
      c.socket.write(
        Buffer.concat([putPage(h, blob, BODY, b), putPage(h, blob, 3 * BODY, d), getRange(h, blob, 0, SIZE)]),
      )
      const second = await c.answer()
      const third = await c.answer()
      const read = await c.answer()
      assert.equal(second.status, 201, second.body.toString())
      assert.equal(second.headers['x-ms-content-crc64'], crcOf(b))
      assert.equal(third.status, 201, third.body.toString())
      assert.equal(third.headers['x-ms-content-crc64'], crcOf(d))
      assert.equal(read.status, 206)
      const expected = Buffer.concat([a, b, Buffer.alloc(BODY), d])
      assert.ok(read.body.equals(expected), 'the blob holds exactly the bodies sent')
      assert.ok(!c.closed)
    } finally {
      c.socket.destroy()
    }
  })

  it('a refused Put Page has its body read and dropped, and the connection serves the next request', async () => {
    const blob = await newBlob('refused.vhd')
    const c = await Connection.open(port)
    try {
      const a = pattern(BODY, 4)
      // Past the end of the blob: refused before the body is read.
      c.socket.write(putPage(h, blob, SIZE, a))
      const outside = await c.answer()
      assert.equal(outside.status, 416)
      // A wrong Content-MD5: refused once the body is read.
      c.socket.write(putPage(h, blob, 0, a, { 'content-md5': Buffer.alloc(16).toString('base64') }))
      const mismatch = await c.answer()
      assert.equal(mismatch.status, 400)
      assert.equal(mismatch.headers['x-ms-error-code'], 'Md5Mismatch')
      // A bad signature: refused before anything else.
      const forged = putPage(h, blob, 0, a)
      const at = forged.indexOf('SharedKey ')
      forged[at + 40] = forged[at + 40] === 0x41 ? 0x42 : 0x41
      c.socket.write(forged)
      assert.equal((await c.answer()).status, 403)
      // The connection is still in step: the next Put Page and a read of it.
      c.socket.write(Buffer.concat([putPage(h, blob, 0, a), getRange(h, blob, 0, 2 * BODY)]))
      assert.equal((await c.answer()).status, 201)
      const read = await c.answer()
      assert.ok(read.body.equals(Buffer.concat([a, Buffer.alloc(BODY)])))
    } finally {
      c.socket.destroy()
    }
  })

  it('a client that leaves mid-body writes nothing, and the server serves the next clients', async () => {
    const blob = await newBlob('cut.vhd')
    const c = await Connection.open(port)
    const bytes = putPage(h, blob, 0, pattern(BODY, 5))
    c.socket.write(bytes.subarray(0, bytes.length - BODY / 2))
    await new Promise((r) => setTimeout(r, 50))
    c.socket.destroy()
    await new Promise((r) => setTimeout(r, 50))
    const disk = h.service.getContainerClient('direct').getPageBlobClient(blob)
    const ranges = await disk.getPageRanges()
    assert.deepEqual(ranges.pageRange ?? [], [])
    const data = pattern(BODY, 6)
    await disk.uploadPages(data, 0, BODY)
    assert.ok((await disk.downloadToBuffer(0, BODY)).equals(data))
  })

  it('Connection: close is honoured after a Put Page', async () => {
    const blob = await newBlob('close.vhd')
    const c = await Connection.open(port)
    try {
      c.socket.write(putPage(h, blob, 0, pattern(BODY, 7), { connection: 'close' }))
      const answer = await c.answer()
      assert.equal(answer.status, 201)
      const closed = new Promise((r) => c.socket.once('close', r))
      await closed
      assert.ok(c.closed)
    } finally {
      c.socket.destroy()
    }
  })

  it('the SDK uploads and reads back a blob with many Put Pages in flight', async () => {
    const blob = await newBlob('sdk.vhd')
    const disk = h.service.getContainerClient('direct').getPageBlobClient(blob)
    const pages = Array.from({ length: SIZE / BODY }, (_, i) => pattern(BODY, 100 + i))
    const before = directBodies.read
    await Promise.all(pages.map((p, i) => disk.uploadPages(p, i * BODY, BODY)))
    assert.ok((await disk.downloadToBuffer()).equals(Buffer.concat(pages)))
    // They went the direct way (this test would prove nothing if node:http had read them).
    assert.equal(directBodies.read - before, pages.length)
  })
})
