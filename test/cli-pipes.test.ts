import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { getEventListeners } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ApiClient } from '../src/cli/index.js'
import { CAIRN_BIN, cairnAt, startService } from './_service.js'

const MiB = 1024 * 1024

/** Runs cairn with its stdout's reader closed before it writes; answers its status and stderr. */
function withReaderGone(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CAIRN_BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    p.stdout.destroy()
    let stderr = ''
    p.stderr.on('data', (d) => {
      stderr += d
    })
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stderr }))
  })
}

describe('the cairn command and its pipes', () => {
  it('every command exits quietly with status 0 when the reader of its output closes early', async () => {
    const svc = await startService()
    try {
      const env = { CAIRN_URL: svc.url, CAIRN_TOKEN: svc.token }
      const created = await cairnAt(svc.url, ['disk', 'create', 'os', '--size', '64MiB'])
      assert.equal(created.code, 0, created.stderr)
      for (const args of [
        ['--help'],
        ['disk', '--help'],
        ['disk', 'list'],
        ['disk', 'list', '--json'],
        ['disk', 'read', 'os', '--length', '64MiB'],
        ['job', 'list'],
        ['status'],
      ]) {
        const r = await withReaderGone(args, env)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
        // Notes for people may be there (`(none)`), never an error or a stack trace.
        assert.doesNotMatch(r.stderr, /EPIPE|Error|^\s+at |^cairn:/m, `cairn ${args.join(' ')}`)
      }
      // `| head`: the reader takes some of the output, then goes.
      const cmd = `"${process.execPath}" "${CAIRN_BIN}" disk read os --length 64MiB 2>"$ERR" | head -c 1000 >/dev/null; echo "\${PIPESTATUS[0]}"`
      const dir = mkdtempSync(join(tmpdir(), 'cairn-pipes-'))
      try {
        const r = spawnSync('bash', ['-c', cmd], {
          env: { ...process.env, ...env, ERR: join(dir, 'err') },
          encoding: 'utf8',
        })
        assert.equal(r.stdout.trim(), '0')
        assert.equal(readFileSync(join(dir, 'err'), 'utf8'), '')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    } finally {
      await svc.dispose()
    }
  })

  it('disk import and export of a disk in many pieces print nothing on stderr (no MaxListenersExceededWarning)', async () => {
    const svc = await startService()
    const dir = mkdtempSync(join(tmpdir(), 'cairn-listeners-'))
    try {
      // 64 separate data runs: one request each way, far more than the 10 listeners a signal may hold.
      const img = Buffer.alloc(64 * MiB)
      for (let i = 0; i < 64; i++) img.fill(i + 1, i * MiB, i * MiB + 8192)
      writeFileSync(join(dir, 'in.raw'), img)
      const imported = await cairnAt(svc.url, ['disk', 'import', 'os', join(dir, 'in.raw')], { json: false })
      assert.deepEqual([imported.code, imported.stderr], [0, ''])
      const exported = await cairnAt(svc.url, ['disk', 'export', 'os', join(dir, 'out.raw')], { json: false })
      assert.deepEqual([exported.code, exported.stderr], [0, ''])
      assert.ok(readFileSync(join(dir, 'out.raw')).equals(img))

      // The one signal of a command keeps no listener once each request has its answer.
      const client = new ApiClient(svc.url, { token: () => svc.token })
      const abort = new AbortController()
      const path = '/api/v1/accounts/devstoreaccount1/containers/disks/disks/os/pages'
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 10; i++) {
            const res = await client.raw('GET', path, {
              query: { offset: 0, length: 4096 },
              signal: abort.signal,
            })
            await res.arrayBuffer()
            const put = await client.raw('PUT', path, {
              query: { offset: MiB },
              body: Buffer.alloc(4096, 9),
              headers: { 'content-type': 'application/octet-stream' },
              signal: abort.signal,
            })
            await put.arrayBuffer()
          }
        }),
      )
      assert.equal(getEventListeners(abort.signal, 'abort').length, 0)
      client.close()
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
