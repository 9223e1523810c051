import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { apiFetch } from './_service.js'

const bin = fileURLToPath(new URL('../../bin/cairn.js', import.meta.url))
const TOKEN = 'agent-test-token-1234'

/** Starts `cairn agent` as a real process and waits for its "listening on URL" line. */
async function startAgent(config: string, token = TOKEN): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [bin, 'agent', '--config', config, '--port', '0', '--log-level', 'warn'],
    {
      env: { ...process.env, CAIRN_AGENT_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr!.on('data', (d) => {
    stderr += d
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      const m = /listening on (\S+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', (code) => reject(new Error(`agent exited ${code}: ${stderr}`)))
  })
  return { child, url }
}

function stopAgent(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

async function call(url: string, method: string, path: string, body?: unknown, token = TOKEN) {
  const res = await apiFetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('cairn agent (a real process running real scripts)', () => {
  it('answers quiesce and thaw in the order pre-script, snapshot, post-script, and refuses a wrong token', async (t) => {
    if (process.getuid!() !== 0) return t.skip('the agent wants root-owned scripts; run the tests as root')
    const dir = mkdtempSync(join(tmpdir(), 'cairn-agent-e2e-'))
    let agent: ChildProcess | undefined
    try {
      const log = join(dir, 'order.log')
      const script = (name: string, word: string) => {
        const p = join(dir, name)
        writeFileSync(p, `#!/bin/sh\necho "${word} $*" >> ${log}\n`)
        chmodSync(p, 0o700)
        return p
      }
      const config = join(dir, 'VMSnapshotScriptPluginConfig.json')
      writeFileSync(
        config,
        JSON.stringify({
          pluginName: 'ScriptRunner',
          preScriptLocation: script('pre.sh', 'pre'),
          postScriptLocation: script('post.sh', 'post'),
          preScriptParams: ['--flush'],
          postScriptParams: ['--resume'],
          timeoutInSeconds: 30,
          continueBackupOnFailure: true,
        }),
      )
      chmodSync(config, 0o600)
      const started = await startAgent(config)
      agent = started.child
      const { url } = started

      const denied = await call(url, 'GET', '/v1/status', undefined, 'wrong-token-wrong')
      assert.equal(denied.status, 401)
      assert.equal((denied.body.error as { code: string }).code, 'Unauthorized')

      const q = await call(url, 'POST', '/v1/quiesce', {})
      assert.equal(q.status, 200, JSON.stringify(q.body))
      assert.equal(q.body.consistency, 'AppConsistent')
      const busy = await call(url, 'POST', '/v1/quiesce', {})
      assert.equal(busy.status, 409)
      writeFileSync(log, 'snapshot\n', { flag: 'a' })
      const th = await call(url, 'POST', '/v1/thaw', { sessionId: q.body.sessionId })
      assert.equal(th.status, 200)
      assert.equal(th.body.autoThawed, false)
      assert.equal(th.body.consistency, 'AppConsistent')
      assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), [
        'pre --flush',
        'snapshot',
        'post --resume',
      ])

      // Stopping the agent while it holds the guest quiesced thaws first.
      const q2 = await call(url, 'POST', '/v1/quiesce', {})
      assert.equal(q2.status, 200)
      await stopAgent(agent)
      assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').slice(-2), [
        'pre --flush',
        'post --resume',
      ])
    } finally {
      if (agent) await stopAgent(agent)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('will not start with a configuration others can read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-agent-e2e-'))
    try {
      const config = join(dir, 'agent.json')
      writeFileSync(config, '{}')
      chmodSync(config, 0o644)
      await assert.rejects(startAgent(config), /InsufficientPermission|mode 644/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
