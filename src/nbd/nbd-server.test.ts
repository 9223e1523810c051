import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import * as P from './_protocol.js'
import { goData, metaContextData, optionHeader, RawClient } from './_raw-client.js'
import { DiskStoreExports, type NbdDiskStore } from './disk-store-exports.js'
import { NbdServer } from './nbd-server.js'

const MiB = 1024 * 1024
const OS: DiskRef = { account: 'acct', container: 'vms', disk: 'os' }

/** The store as NBD sees it, counting flushes. */
function counting(store: LogDiskStore): { store: NbdDiskStore; flushes: () => number } {
  let flushes = 0
  const view = new Proxy(store, {
    get(target, key) {
      if (key === 'flush') {
        return () => {
          flushes++
          return target.flush()
        }
      }
      const value = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { store: view, flushes: () => flushes }
}

describe('NbdServer', () => {
  let dir: string
  let real: LogDiskStore
  let store: NbdDiskStore
  let flushes: () => number
  let server: NbdServer
  let port: number
  let SNAP: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-server-'))
    real = await LogDiskStore.open(dir)
    await real.createAccount(OS.account)
    await real.createContainer(OS.account, OS.container)
    await real.createDisk(OS, { size: 16 * MiB })
    await real.writePages(OS, MiB, Buffer.alloc(64 * 1024, 7))
    SNAP = (await real.snapshot(OS)).snapshot as string
    ;({ store, flushes } = counting(real))
    server = new NbdServer(new DiskStoreExports(store), { maxConnections: 64, handshakeTimeoutMs: 2000 })
    port = await server.listen(0)
  })
  after(async () => {
    try {
      await server.close()
      await real.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  /** True when a fresh client can still open and read the disk. */
  async function serverAlive(): Promise<boolean> {
    const c = await RawClient.open(port, 'acct/vms/os')
    const r = await c.request(P.CMD_READ, MiB, 512)
    await c.disconnect()
    return r.error === 0 && r.data?.length === 512
  }

  it('lists every disk and snapshot with a description', async () => {
    const c = await RawClient.handshake(port)
    const replies = await c.option(P.OPT_LIST)
    const names = replies
      .filter((r) => r.type === P.REP_SERVER)
      .map((r) => r.data.toString('utf8', 4, 4 + r.data.readUInt32BE(0)))
    assert.deepEqual(names.sort(), ['acct/vms/os', `acct/vms/os@${SNAP}`])
    await c.option(P.OPT_ABORT)
    await c.ended
  })

  it('answers NBD_OPT_GO for an unknown export with NBD_REP_ERR_UNKNOWN and keeps negotiating', async () => {
    const c = await RawClient.handshake(port)
    const bad = await c.option(P.OPT_GO, goData('acct/vms/nope'))
    assert.equal(bad.at(-1)?.type, P.REP_ERR_UNKNOWN)
    const good = await c.option(P.OPT_INFO, goData('acct/vms/os', [P.INFO_BLOCK_SIZE, P.INFO_DESCRIPTION]))
    assert.equal(good.at(-1)?.type, P.REP_ACK)
    const export_ = good.find((r) => r.data.readUInt16BE(0) === P.INFO_EXPORT)
    assert.equal(Number(export_?.data.readBigUInt64BE(2)), 16 * MiB)
    assert.ok(good.some((r) => r.data.readUInt16BE(0) === P.INFO_BLOCK_SIZE))
    await c.option(P.OPT_ABORT)
  })

  it('rejects unknown options with NBD_REP_ERR_UNSUP and malformed ones with NBD_REP_ERR_INVALID', async () => {
    const c = await RawClient.handshake(port)
    assert.equal((await c.option(99)).at(-1)?.type, P.REP_ERR_UNSUP)
    assert.equal((await c.option(P.OPT_GO, Buffer.from([0, 0, 9, 9, 1]))).at(-1)?.type, P.REP_ERR_INVALID)
    assert.equal(
      (await c.option(P.OPT_SET_META_CONTEXT, metaContextData('acct/vms/os', [P.BASE_ALLOCATION]))).at(-1)
        ?.type,
      P.REP_ERR_INVALID,
      'meta contexts need structured replies first',
    )
    assert.equal((await c.option(P.OPT_STARTTLS)).at(-1)?.type, P.REP_ERR_POLICY)
    await c.option(P.OPT_ABORT)
  })

  it('reads with simple replies when structured replies were not negotiated', async () => {
    const c = await RawClient.open(port, 'acct/vms/os', { structured: false })
    const r = await c.request(P.CMD_READ, MiB - 10, 20)
    assert.equal(r.error, 0)
    assert.deepEqual([...(r.data ?? [])], [...Array(10).fill(0), ...Array(10).fill(7)])
    await c.disconnect()
  })

  it('reports holes and data through base:allocation', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    const r = await c.request(P.CMD_BLOCK_STATUS, 0, 16 * MiB)
    assert.deepEqual(r.extents, [
      [MiB, 3],
      [64 * 1024, 0],
      [15 * MiB - 64 * 1024, 3],
    ])
    const one = await c.request(P.CMD_BLOCK_STATUS, 0, 16 * MiB, { flags: P.CMD_FLAG_REQ_ONE })
    assert.deepEqual(one.extents, [[MiB, 3]])
    await c.disconnect()
  })

  it('merges unaligned writes that share pages without losing bytes, also when sent all at once', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    const base = 4 * MiB
    const expected = Buffer.alloc(64 * 1024)
    const writes: Promise<{ error: number }>[] = []
    for (let at = 0; at < expected.length; ) {
      const len = 1 + ((at * 7919) % 700)
      const piece = randomBytes(Math.min(len, expected.length - at))
      piece.copy(expected, at)
      writes.push(c.request(P.CMD_WRITE, base + at, piece.length, { payload: piece }))
      at += piece.length
    }
    for (const w of await Promise.all(writes)) assert.equal(w.error, 0)
    const back = await c.request(P.CMD_READ, base, expected.length)
    assert.ok(back.data?.equals(expected))
    await c.disconnect()
  })

  it('receives write payloads of every size intact however the bytes are cut into segments', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    // Every message leaves in pieces of 1 byte to 100 KiB, one piece per event-loop turn, so that the
    // server sees headers split, payloads read straight into their buffer and payloads that share a
    // read with the next header.
    let chain = Promise.resolve()
    let seed = 1
    c.write = (bytes: Buffer) => {
      chain = chain.then(async () => {
        for (let at = 0; at < bytes.length; ) {
          seed = (seed * 48271) % 2147483647
          const n = Math.min(bytes.length - at, 1 + (seed % (seed % 3 === 0 ? 100 * 1024 : 40)))
          c.socket.write(bytes.subarray(at, at + n))
          at += n
          await new Promise((r) => setImmediate(r))
        }
      })
    }
    const base = 8 * MiB
    const sizes = [300 * 1024, 4096, 5, 70 * 1024 + 3, 1024 * 1024, 4097, 256 * 1024, 12]
    const expected = Buffer.alloc(sizes.reduce((a, b) => a + b, 0))
    const writes: Promise<{ error: number }>[] = []
    let at = 0
    for (const size of sizes) {
      const piece = randomBytes(size)
      piece.copy(expected, at)
      writes.push(c.request(P.CMD_WRITE, base + at, size, { payload: piece }))
      at += size
    }
    for (const w of await Promise.all(writes)) assert.equal(w.error, 0)
    const back = await c.request(P.CMD_READ, base, expected.length)
    assert.ok(back.data?.equals(expected))
    await c.disconnect()
  })

  it('splits writes larger than the store takes and zeroes with and without holes', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    const data = randomBytes(9 * MiB + 100)
    assert.equal((await c.request(P.CMD_WRITE, 5 * MiB + 3, data.length, { payload: data })).error, 0)
    const back = await c.request(P.CMD_READ, 5 * MiB + 3, data.length)
    assert.ok(back.data?.equals(data))
    assert.equal((await c.request(P.CMD_WRITE_ZEROES, 6 * MiB + 1, MiB)).error, 0)
    const z = await c.request(P.CMD_READ, 6 * MiB, MiB + 2)
    assert.equal(z.data?.[0], data[MiB - 3])
    assert.ok(z.data?.subarray(1, MiB + 1).equals(Buffer.alloc(MiB)))
    assert.equal(z.data?.[MiB + 1], data[2 * MiB - 2])
    const status = await c.request(P.CMD_BLOCK_STATUS, 6 * MiB + 512, MiB - 1024, {
      flags: P.CMD_FLAG_REQ_ONE,
    })
    assert.deepEqual(status.extents, [[MiB - 1024, 3]], 'zeroed whole pages became a hole')
    const fast = await c.request(P.CMD_WRITE_ZEROES, 7 * MiB, MiB, {
      flags: P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO,
    })
    assert.equal(fast.error, P.ENOTSUP)
    assert.equal((await c.request(P.CMD_WRITE_ZEROES, 7 * MiB, MiB, { flags: P.CMD_FLAG_NO_HOLE })).error, 0)
    const kept = await c.request(P.CMD_BLOCK_STATUS, 7 * MiB, MiB, { flags: P.CMD_FLAG_REQ_ONE })
    assert.deepEqual(kept.extents, [[MiB, 0]], 'NO_HOLE zeroes stay allocated')
    assert.equal((await c.request(P.CMD_TRIM, 8 * MiB + 100, MiB)).error, 0)
    const trimmed = await c.request(P.CMD_BLOCK_STATUS, 8 * MiB + 512, MiB - 512, {
      flags: P.CMD_FLAG_REQ_ONE,
    })
    assert.deepEqual(trimmed.extents, [[MiB - 512, 3]])
    const before = flushes()
    assert.equal((await c.request(P.CMD_FLUSH, 0, 0)).error, 0)
    assert.equal(flushes(), before + 1)
    await c.disconnect()
  })

  it('reuses request buffers without old bytes showing in holes, replies or stored data', async () => {
    const ref: DiskRef = { ...OS, disk: 'reuse' }
    await real.createDisk(ref, { size: 8 * MiB })
    try {
      const c = await RawClient.open(port, 'acct/vms/reuse')
      const size = 256 * 1024
      const pieces = Array.from({ length: 8 }, () => randomBytes(size))
      // Two rounds of pipelined writes: the second round's payloads land in buffers of the first.
      for (const round of [0, 1]) {
        const writes = pieces.map((p, i) =>
          c.request(P.CMD_WRITE, i * size, size, { payload: round === 0 ? randomBytes(size) : p }),
        )
        for (const w of await Promise.all(writes)) assert.equal(w.error, 0)
      }
      const reads = await Promise.all(pieces.map((_, i) => c.request(P.CMD_READ, i * size, size)))
      for (const [i, r] of reads.entries()) assert.ok(r.data?.equals(pieces[i] as Buffer), `piece ${i}`)
      // The reply buffers held data just now: holes must still read as zeros, whole or in part.
      const holes = await Promise.all(pieces.map((_, i) => c.request(P.CMD_READ, 4 * MiB + i * size, size)))
      for (const r of holes) assert.ok(r.data?.equals(Buffer.alloc(size)))
      const edge = await c.request(P.CMD_READ, 2 * MiB - size / 2, size)
      assert.ok(edge.data?.subarray(0, size / 2).equals((pieces[7] as Buffer).subarray(size / 2)))
      assert.ok(edge.data?.subarray(size / 2).equals(Buffer.alloc(size / 2)))
      await c.disconnect()
    } finally {
      await real.deleteDisk(ref)
    }
  })

  it('refuses writes to a snapshot with NBD_EPERM and keeps serving reads', async () => {
    const c = await RawClient.open(port, `acct/vms/os@${SNAP}`)
    const w = await c.request(P.CMD_WRITE, 0, 512, { payload: Buffer.alloc(512, 1) })
    assert.equal(w.error, P.EPERM)
    assert.match(w.message ?? '', /read-only/)
    assert.equal((await c.request(P.CMD_TRIM, 0, 4096)).error, P.EPERM)
    assert.equal((await c.request(P.CMD_WRITE_ZEROES, 0, 4096)).error, P.EPERM)
    const r = await c.request(P.CMD_READ, MiB, 4)
    assert.deepEqual([...(r.data ?? [])], [7, 7, 7, 7])
    await c.disconnect()
  })

  it('refuses writes with NBD_EPERM while the disk holds a blob lease', async () => {
    const lease = await real.lease(OS, { action: 'acquire', duration: -1 })
    try {
      const c = await RawClient.open(port, 'acct/vms/os')
      const w = await c.request(P.CMD_WRITE, 0, 512, { payload: Buffer.alloc(512, 1) })
      assert.equal(w.error, P.EPERM)
      await c.disconnect()
    } finally {
      await real.lease(OS, { action: 'release', id: lease.id as string })
    }
  })

  it('answers out-of-range, unknown and mis-flagged requests with errors, not a dropped connection', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    assert.equal((await c.request(P.CMD_READ, 16 * MiB - 1, 2)).error, P.EINVAL)
    assert.equal((await c.request(P.CMD_WRITE, 16 * MiB, 1, { payload: Buffer.alloc(1) })).error, P.ENOSPC)
    assert.equal((await c.request(P.CMD_READ, 2 ** 62, 1)).error, P.EINVAL)
    assert.equal((await c.request(P.CMD_READ, 0, 64 * MiB)).error, P.EOVERFLOW)
    assert.equal((await c.request(42, 0, 0)).error, P.EINVAL)
    assert.equal((await c.request(P.CMD_READ, 0, 1, { flags: 0x80 })).error, P.EINVAL)
    assert.equal((await c.request(P.CMD_TRIM, 0, 0xffffffff)).error, P.EINVAL)
    assert.equal((await c.request(P.CMD_READ, 0, 0)).error, 0)
    assert.equal((await c.request(P.CMD_READ, 0, 8)).error, 0)
    await c.disconnect()
    const plain = await RawClient.open(port, 'acct/vms/os', { structured: false })
    const noContext = await plain.request(P.CMD_BLOCK_STATUS, 0, 4096)
    assert.equal(noContext.error, P.EINVAL, 'BLOCK_STATUS without base:allocation')
    await plain.disconnect()
  })

  it('closes the connection on garbage, huge lengths and bad flags, and keeps serving others', async () => {
    const cases: [string, (c: RawClient) => void][] = [
      ['garbage instead of client flags', (c) => c.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'))],
      ['unknown client flags', (c) => c.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))],
      ['a bad option magic', (c) => c.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), randomBytes(64)]))],
      [
        'an option of 4 GiB',
        (c) =>
          c.write(
            Buffer.concat([Buffer.from([0, 0, 0, 3]), optionHeader(P.OPT_GO, 0xffffffff), randomBytes(1000)]),
          ),
      ],
    ]
    for (const [what, send] of cases) {
      const c = await RawClient.connect(port)
      await c.read(18)
      send(c)
      await c.ended
      assert.ok(await serverAlive(), `server still serves after ${what}`)
    }
    const bad = await RawClient.open(port, 'acct/vms/os')
    bad.write(randomBytes(28))
    await bad.ended
    const huge = await RawClient.open(port, 'acct/vms/os')
    const h = Buffer.alloc(28)
    h.writeUInt32BE(P.REQUEST_MAGIC, 0)
    h.writeUInt16BE(P.CMD_WRITE, 6)
    h.writeUInt32BE(0xffffffff, 24)
    huge.write(h)
    await huge.ended
    assert.ok(await serverAlive())
  })

  it('survives clients that vanish mid-request and random byte streams', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.open(port, 'acct/vms/os')
      const h = Buffer.alloc(28)
      h.writeUInt32BE(P.REQUEST_MAGIC, 0)
      h.writeUInt16BE(i % 2 ? P.CMD_WRITE : P.CMD_READ, 6)
      h.writeUInt32BE(MiB, 24)
      c.write(Buffer.concat([h, randomBytes(i * 1000)]))
      c.socket.destroy()
    }
    for (let i = 0; i < 100; i++) {
      const c = await RawClient.connect(port)
      c.write(randomBytes(1 + ((i * 37) % 300)))
      if (i % 3 === 0) c.socket.destroy()
      else c.socket.end()
    }
    assert.ok(await serverAlive())
  })

  it('survives valid sessions with random bytes flipped', async () => {
    const request = (type: number, offset: number, length: number, flags = 0) => {
      const h = Buffer.alloc(28)
      h.writeUInt32BE(P.REQUEST_MAGIC, 0)
      h.writeUInt16BE(flags, 4)
      h.writeUInt16BE(type, 6)
      h.writeBigUInt64BE(7n, 8)
      h.writeBigUInt64BE(BigInt(offset), 16)
      h.writeUInt32BE(length, 24)
      return h
    }
    const meta = metaContextData('acct/vms/os', [P.BASE_ALLOCATION])
    const go = goData('acct/vms/os', [P.INFO_BLOCK_SIZE])
    const session = Buffer.concat([
      Buffer.from([0, 0, 0, 3]),
      optionHeader(P.OPT_STRUCTURED_REPLY, 0),
      optionHeader(P.OPT_SET_META_CONTEXT, meta.length),
      meta,
      optionHeader(P.OPT_GO, go.length),
      go,
      request(P.CMD_WRITE, 10 * MiB + 3, 1000),
      randomBytes(1000),
      request(P.CMD_READ, 10 * MiB, 4096),
      request(P.CMD_BLOCK_STATUS, 0, 16 * MiB, P.CMD_FLAG_REQ_ONE),
      request(P.CMD_WRITE_ZEROES, 10 * MiB, 8192, P.CMD_FLAG_FUA),
      request(P.CMD_TRIM, 10 * MiB, 8192),
      request(P.CMD_FLUSH, 0, 0),
      request(P.CMD_DISC, 0, 0),
    ])
    for (let i = 0; i < 150; i++) {
      const bytes = Buffer.from(session)
      for (let flips = 1 + (i % 4); flips > 0; flips--) {
        bytes[Math.floor(Math.random() * bytes.length)] = Math.floor(Math.random() * 256)
      }
      const c = await RawClient.connect(port)
      c.write(bytes)
      c.socket.end()
      await Promise.race([c.ended, new Promise((r) => setTimeout(r, 200))])
      c.socket.destroy()
    }
    assert.ok(await serverAlive())
  })

  it('stops reading from a client that sends reads but never takes the replies', async () => {
    const c = await RawClient.open(port, 'acct/vms/os')
    c.socket.pause()
    const before = process.memoryUsage().arrayBuffers
    const h = Buffer.alloc(28)
    h.writeUInt32BE(P.REQUEST_MAGIC, 0)
    h.writeUInt16BE(P.CMD_READ, 6)
    h.writeUInt32BE(4 * MiB, 24)
    // 1,000 reads of 4 MiB: 4 GiB of replies if the server kept answering.
    c.write(Buffer.concat(Array.from({ length: 1000 }, () => h)))
    await new Promise((r) => setTimeout(r, 1000))
    const grown = process.memoryUsage().arrayBuffers - before
    assert.ok(grown < 512 * MiB, `buffers grew by ${Math.round(grown / MiB)} MiB`)
    assert.ok(await serverAlive())
    c.socket.destroy()
  })

  it('drops a client that never finishes the handshake', { timeout: 15_000 }, async () => {
    const c = await RawClient.connect(port)
    const started = performance.now()
    await c.read(18)
    await c.ended
    // The server's handshake timeout (2 s here) dropped it: not at once, not never.
    const waited = performance.now() - started
    assert.ok(waited >= 1500 && waited < 10_000, `dropped after ${Math.round(waited)} ms`)
  })

  it('serves many connections at once, each seeing the others’ writes', async () => {
    const clients = await Promise.all(Array.from({ length: 24 }, () => RawClient.open(port, 'acct/vms/os')))
    const base = 12 * MiB
    const pieces = clients.map(() => randomBytes(64 * 1024))
    await Promise.all(
      clients.map((c, i) => c.request(P.CMD_WRITE, base + i * 64 * 1024, 64 * 1024, { payload: pieces[i] })),
    )
    const reads = await Promise.all(
      clients.map((c, i) => c.request(P.CMD_READ, base + ((i + 1) % clients.length) * 64 * 1024, 64 * 1024)),
    )
    for (const [i, r] of reads.entries())
      assert.ok(r.data?.equals(pieces[(i + 1) % clients.length] as Buffer))
    await Promise.all(clients.map((c) => c.disconnect()))
  })

  it('refuses connections beyond the limit without stopping', { timeout: 15_000 }, async () => {
    const small = new NbdServer(new DiskStoreExports(store), { maxConnections: 2 })
    const p = await small.listen(0)
    try {
      const a = await RawClient.open(p, 'acct/vms/os')
      const b = await RawClient.open(p, 'acct/vms/os')
      const c = await RawClient.connect(p)
      await c.ended
      // The two it holds go on being served, and a freed slot takes a new client.
      for (const client of [a, b]) assert.equal((await client.request(P.CMD_READ, 0, 4096)).error, 0)
      await a.disconnect()
      // The server frees the slot when it sees the socket close, a moment after the client does.
      let d: RawClient | undefined
      for (let i = 0; i < 50 && !d; i++) {
        d = await RawClient.open(p, 'acct/vms/os').catch(() => undefined)
        if (!d) await new Promise((r) => setTimeout(r, 40))
      }
      assert.ok(d, 'a freed slot took no new client within 2 s')
      assert.equal((await d.request(P.CMD_READ, 0, 4096)).error, 0)
      await d.disconnect()
      await b.disconnect()
    } finally {
      await small.close()
    }
  })

  it('close() finishes requests in flight and flushes before it settles', async () => {
    const own = new NbdServer(new DiskStoreExports(store))
    const p = await own.listen(0)
    const c = await RawClient.open(p, 'acct/vms/os')
    const data = randomBytes(2 * MiB)
    const write = c.request(P.CMD_WRITE, 0, data.length, { payload: data })
    await new Promise((r) => setTimeout(r, 20))
    const before = flushes()
    const started = performance.now()
    await own.close()
    assert.ok(performance.now() - started < 5000, 'close() did not wait for the grace period')
    assert.equal((await write).error, 0)
    assert.ok(flushes() > before)
    assert.ok((await store.read(OS, 0, data.length)).equals(data))
    await c.ended
  })
})
