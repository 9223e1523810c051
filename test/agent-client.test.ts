import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { AgentServer } from '../src/agent/index.js'
import { AgentClient } from '../src/protection/index.js'
import { isCairnError } from '../src/util/index.js'

const TOKEN = 'client-test-token-42'
const ownership = { ownerUid: process.getuid!() }

async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(p, (err) => {
    assert.ok(isCairnError(err), String(err))
    assert.equal(err.code, code, err.message)
    if (text) assert.match(err.message, text)
    return true
  })
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

describe('AgentClient (the service side) against a real agent', () => {
  it('quiesces and thaws, and carries the agent error names back as CairnErrors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-agent-client-'))
    const log = join(dir, 'order.log')
    const pre = join(dir, 'pre.sh')
    const config = join(dir, 'agent.json')
    writeFileSync(pre, `#!/bin/sh\necho pre >> ${log}\n[ ! -e ${join(dir, 'fail')} ]\n`)
    chmodSync(pre, 0o700)
    writeFileSync(config, JSON.stringify({ preScriptLocation: pre, continueBackupOnFailure: false }))
    chmodSync(config, 0o600)
    const server = new AgentServer({ configPath: config, token: TOKEN, ownership })
    try {
      const { url } = await server.start({ port: 0 })
      const client = new AgentClient({ url, token: TOKEN })
      assert.equal((await client.status()).state, 'idle')
      const q = await client.quiesce()
      assert.equal(q.consistency, 'AppConsistent')
      assert.equal((await client.status()).state, 'quiesced')
      const t = await client.thaw(q.sessionId)
      assert.equal(t.autoThawed, false)

      writeFileSync(join(dir, 'fail'), '')
      await rejectsWith(client.quiesce(), 'PreScriptExecutionFailed', /pre-script failed/)
      assert.equal(readFileSync(log, 'utf8'), 'pre\npre\n')
      await rejectsWith(new AgentClient({ url, token: 'not-the-token' }).status(), 'Unauthorized')
      await rejectsWith(client.thaw('no-such-session'), 'AgentSessionNotFound')
    } finally {
      await server.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reports an agent nobody answers for as AgentUnreachable, quickly', async () => {
    const port = await closedPort()
    const client = new AgentClient({ url: `http://127.0.0.1:${port}`, token: TOKEN, timeoutMs: 2000 })
    const t = Date.now()
    await rejectsWith(client.quiesce(), 'AgentUnreachable', /ECONNREFUSED/)
    assert.ok(Date.now() - t < 2000)
  })
})
