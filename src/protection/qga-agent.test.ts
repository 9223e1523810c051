import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import { QGA_POST_SCRIPT, QGA_PRE_SCRIPT, QgaAgent } from './qga-agent.js'

// The protocol framing only, against a fake guest agent on a unix socket: the real proof is the
// end-to-end test with qemu-guest-agent in a Debian guest (test/e2e-vm).

interface Fake {
  channel: string
  /** Commands received, in order (`guest-exec PATH` for execs). */
  seen: string[]
  close(): Promise<void>
}

/** A fake qemu-guest-agent: answers like the real one, with junk from "an earlier session" first. */
async function fakeAgent(options: {
  scripts?: string[]
  freezeError?: boolean
  silent?: boolean
}): Promise<Fake> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-qga-'))
  const path = join(dir, 'qga.sock')
  const seen: string[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    let buf = ''
    s.on('data', (d: Buffer) => {
      if (options.silent) return
      buf += d.toString('latin1').replaceAll('\xff', '')
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const cmd = JSON.parse(line) as { execute: string; arguments?: Record<string, unknown> }
        const answer = (v: unknown) => s.write(`${JSON.stringify(v)}\n`)
        switch (cmd.execute) {
          case 'guest-sync-delimited':
            seen.push(cmd.execute)
            // What a session cut short left behind, then the delimiter and the answer.
            s.write('{"return": {"pid": 7}}\n{"retu')
            s.write(Buffer.from([0xff]))
            answer({ return: cmd.arguments!.id })
            break
          case 'guest-exec': {
            const p = cmd.arguments!.path as string
            seen.push(`guest-exec ${p}`)
            if (options.scripts?.includes(p)) answer({ return: { pid: 42 } })
            else
              answer({
                error: {
                  class: 'GenericError',
                  desc: `Guest agent command failed: Failed to execute child process "${p}"`,
                },
              })
            break
          }
          case 'guest-exec-status':
            seen.push(cmd.execute)
            answer({ return: { exited: true, exitcode: 0 } })
            break
          case 'guest-fsfreeze-freeze':
            seen.push(cmd.execute)
            if (options.freezeError)
              answer({ error: { class: 'GenericError', desc: 'failed to freeze /: busy' } })
            else answer({ return: 2 })
            break
          case 'guest-fsfreeze-thaw':
            seen.push(cmd.execute)
            answer({ return: 2 })
            break
          default:
            answer({ error: { class: 'CommandNotFound', desc: cmd.execute } })
        }
      }
    })
  })
  await new Promise<void>((r) => server.listen(path, r))
  return {
    channel: `unix:${path}`,
    seen,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

describe('QgaAgent (QEMU guest agent protocol framing, fake socket)', () => {
  it('resynchronizes past stale output, runs the pre-script, freezes, then thaws and runs the post-script', async () => {
    const fake = await fakeAgent({ scripts: [QGA_PRE_SCRIPT, QGA_POST_SCRIPT] })
    try {
      const agent = new QgaAgent({ channel: fake.channel })
      const q = await agent.quiesce()
      assert.equal(q.consistency, 'AppConsistent')
      assert.equal(q.preScript.status, 'Success')
      assert.equal(q.freeze.status, 'Success')
      assert.deepEqual(fake.seen, [
        'guest-sync-delimited',
        `guest-exec ${QGA_PRE_SCRIPT}`,
        'guest-exec-status',
        'guest-fsfreeze-freeze',
      ])
      const t = await agent.thaw(q.sessionId)
      assert.deepEqual(
        [t.autoThawed, t.thaw.status, t.postScript.status, t.consistency],
        [false, 'Success', 'Success', 'AppConsistent'],
      )
      assert.deepEqual(fake.seen.slice(4), [
        'guest-fsfreeze-thaw',
        `guest-exec ${QGA_POST_SCRIPT}`,
        'guest-exec-status',
      ])
    } finally {
      await fake.close()
    }
  })

  it('without scripts in the guest the point is file-system consistent; a failed freeze thaws at once and is crash-consistent', async () => {
    const plain = await fakeAgent({})
    try {
      const agent = new QgaAgent({ channel: plain.channel })
      const q = await agent.quiesce()
      assert.equal(q.preScript.status, 'NotExecuted')
      assert.equal(q.consistency, 'FileSystemConsistent')
      assert.equal((await agent.thaw(q.sessionId)).consistency, 'FileSystemConsistent')
    } finally {
      await plain.close()
    }
    const busy = await fakeAgent({ freezeError: true })
    try {
      const agent = new QgaAgent({ channel: busy.channel })
      const q = await agent.quiesce()
      assert.equal(q.freeze.status, 'Error')
      assert.match(q.freeze.message ?? '', /busy/)
      assert.equal(q.consistency, 'CrashConsistent')
      assert.equal(busy.seen.at(-1), 'guest-fsfreeze-thaw', 'a failed freeze is thawed at once')
      await agent.thaw(q.sessionId)
    } finally {
      await busy.close()
    }
  })

  it('thaws by itself at the hold limit; the late thaw then says so and the point is crash-consistent', async () => {
    const fake = await fakeAgent({})
    try {
      const agent = new QgaAgent({ channel: fake.channel, holdLimitMs: 100 })
      const q = await agent.quiesce()
      // The hold limit passes, then the thaw goes out (waited for, however busy the machine).
      for (let i = 0; i < 500 && !fake.seen.includes('guest-fsfreeze-thaw'); i++)
        await new Promise((r) => setTimeout(r, 20))
      assert.ok(fake.seen.includes('guest-fsfreeze-thaw'), 'thawed without being asked')
      const t = await agent.thaw(q.sessionId)
      assert.equal(t.autoThawed, true)
      assert.equal(t.consistency, 'CrashConsistent')
      assert.equal(fake.seen.filter((c) => c === 'guest-fsfreeze-thaw').length, 1)
    } finally {
      await fake.close()
    }
  })

  it('a channel with nobody behind it, or a guest agent that never answers, is AgentUnreachable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-qga-none-'))
    try {
      await assert.rejects(
        new QgaAgent({ channel: `unix:${join(dir, 'absent.sock')}` }).quiesce(),
        (e: unknown) => isCairnError(e) && e.code === 'AgentUnreachable' && /ENOENT/.test(e.message),
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const silent = await fakeAgent({ silent: true })
    try {
      await assert.rejects(
        new QgaAgent({ channel: silent.channel, syncTimeoutMs: 200 }).quiesce(),
        (e: unknown) =>
          isCairnError(e) && e.code === 'AgentUnreachable' && /no answer within 200 ms/.test(e.message),
      )
    } finally {
      await silent.close()
    }
  })
})
