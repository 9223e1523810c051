// NBD clients that are done, or ask for what does not exist, give back their slot and file descriptor
// at once: NBD_OPT_EXPORT_NAME of an unknown export ends the session (the spec's MUST), and a client
// that does not close its side after NBD_OPT_ABORT or NBD_CMD_DISC is dropped soon after.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import * as P from '../src/nbd/_protocol.js'
import { RawClient } from '../src/nbd/_raw-client.js'
import { cairn, startService } from './_service.js'

const run = promisify(execFile)

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

/** Waits until `check` holds, polling; fails with `what` after `ms`. */
async function eventually(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) assert.fail(what())
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * One client asking NBD_OPT_EXPORT_NAME for `name` and then saying nothing more, never closing its
 * side: resolves with how long the server took to end the connection (rejects after `ms`).
 */
function unknownExportAttempt(port: number, name: string, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1')
    let got = Buffer.alloc(0)
    let asked = 0
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`the server kept an unknown-export connection open for ${ms} ms`))
    }, ms)
    s.on('error', () => {})
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (asked === 0 && got.length >= 18) {
        const flags = Buffer.alloc(4)
        flags.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)
        const body = Buffer.from(name)
        const h = Buffer.alloc(16)
        h.writeBigUInt64BE(P.IHAVEOPT, 0)
        h.writeUInt32BE(P.OPT_EXPORT_NAME, 8)
        h.writeUInt32BE(body.length, 12)
        asked = performance.now()
        s.write(Buffer.concat([flags, h, body]))
      }
    })
    const done = () => {
      clearTimeout(timer)
      s.destroy()
      if (asked === 0) reject(new Error('the server closed before the option was sent'))
      else resolve(performance.now() - asked)
    }
    s.once('end', done)
    s.once('close', done)
  })
}

/** An option: its 16-byte header and its data. */
function option(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(16)
  h.writeBigUInt64BE(P.IHAVEOPT, 0)
  h.writeUInt32BE(type, 8)
  h.writeUInt32BE(data.length, 12)
  return Buffer.concat([h, data])
}

/**
 * A client that negotiates with `send` after the greeting, reads `expect` bytes of answer and then
 * never closes its side, even once the server has ended its own (half-open).
 */
function stubbornClient(
  port: number,
  send: Buffer,
  expect: number,
): Promise<{ socket: Socket; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let got = 0
    let sent = false
    let onEnd!: () => void
    const ended = new Promise<void>((r) => (onEnd = r))
    socket.on('error', () => {})
    socket.once('end', () => onEnd())
    socket.once('close', () => onEnd())
    socket.on('data', (d: Buffer) => {
      got += d.length
      if (!sent && got >= 18) {
        sent = true
        got -= 18
        const flags = Buffer.alloc(4)
        flags.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)
        socket.write(Buffer.concat([flags, send]))
      }
      if (sent && got >= expect) resolve({ socket, ended })
    })
    socket.once('close', () => reject(new Error('closed before the answer')))
  })
}

describe('NBD slots and file descriptors', () => {
  it('1,000 unknown-export attempts in a row are each ended at once; then nbdinfo is served and the fd count is back', async () => {
    const svc = await startService()
    try {
      const made = cairn(['disk', 'create', 'slot', '--size', '4MiB', '--url', svc.url])
      assert.equal(made.status, 0, made.stderr)
      const nbd = new URL(svc.listeners.nbd!.replace(/^nbd:/, 'http:'))
      const port = Number(nbd.port)
      const uri = `${svc.listeners.nbd}/devstoreaccount1/disks/slot`
      const pid = svc.child.pid!
      // One real client first, so that what it opens once (the export, its store files) is counted.
      await run('nbdinfo', ['--json', uri], { timeout: 10_000 })
      const before = fdCount(pid)

      // 1,000 attempts, 20 at a time (more than the 256 slots over all; each keeps its socket open
      // until the server ends it). Each must be ended well before any handshake timer (30 s).
      const lasted: number[] = []
      for (let i = 0; i < 1000; i += 20) {
        const round = Array.from({ length: 20 }, (_, j) =>
          unknownExportAttempt(port, `devstoreaccount1/disks/nope-${i + j}`, 15_000),
        )
        lasted.push(...(await Promise.all(round)))
      }
      assert.equal(lasted.length, 1000)
      const slowest = Math.max(...lasted)
      // Far below the 30 s a handshake timer would take (a loose bound, for a loaded machine).
      assert.ok(slowest < 10_000, `an unknown-export connection lasted ${Math.round(slowest)} ms`)

      // A normal client is served at once.
      const started = performance.now()
      const { stdout } = await run('nbdinfo', ['--json', uri], { timeout: 20_000 })
      assert.equal(JSON.parse(stdout).exports[0]['export-size'], 4 * 1024 * 1024)
      assert.ok(performance.now() - started < 10_000, 'nbdinfo waited for a slot')

      await eventually(
        () => fdCount(pid) <= before,
        5000,
        () => `the service holds ${fdCount(pid)} fds, ${before} before the attempts`,
      )
    } finally {
      await svc.dispose()
    }
  })

  it('a client that stays connected after NBD_OPT_ABORT or NBD_CMD_DISC is dropped within seconds', async () => {
    const svc = await startService(['--nbd-handshake-timeout', '60'])
    try {
      const made = cairn(['disk', 'create', 'linger', '--size', '1MiB', '--url', svc.url])
      assert.equal(made.status, 0, made.stderr)
      const port = Number(new URL(svc.listeners.nbd!.replace(/^nbd:/, 'http:')).port)
      const pid = svc.child.pid!
      const warm = await RawClient.open(port, 'devstoreaccount1/disks/linger')
      warm.socket.destroy()
      await new Promise((r) => setTimeout(r, 200))
      const before = fdCount(pid)

      // NBD_OPT_ABORT: acknowledged (a 20-byte reply), then the server ends its side.
      const aborting = await stubbornClient(port, option(P.OPT_ABORT, Buffer.alloc(0)), 20)
      // NBD_OPT_EXPORT_NAME of a real export (10 bytes back), then NBD_CMD_DISC, which has no reply.
      const disc = Buffer.alloc(28)
      disc.writeUInt32BE(P.REQUEST_MAGIC, 0)
      disc.writeUInt16BE(P.CMD_DISC, 6)
      const leaving = await stubbornClient(
        port,
        Buffer.concat([option(P.OPT_EXPORT_NAME, Buffer.from('devstoreaccount1/disks/linger')), disc]),
        10,
      )
      try {
        // Neither client closes its side; the server's sockets are gone within the linger time all
        // the same (long before the 60 s handshake timer).
        await Promise.all([aborting.ended, leaving.ended])
        await eventually(
          () => fdCount(pid) <= before,
          5000,
          () => `the service holds ${fdCount(pid)} fds, ${before} before the clients`,
        )
      } finally {
        aborting.socket.destroy()
        leaving.socket.destroy()
      }
    } finally {
      await svc.dispose()
    }
  })
})
