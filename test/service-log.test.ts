import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { apiFetch, cairnAt, startService } from './_service.js'

type LogLine = { level: string; msg: string } & Record<string, unknown>

const parse = (lines: string[]): LogLine[] =>
  lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine]
    } catch {
      return []
    }
  })

/** Waits until `pred` holds for the service's log lines (the end line follows the API's answer). */
async function logged(logs: string[], pred: (l: LogLine) => boolean): Promise<LogLine> {
  for (let i = 0; i < 100; i++) {
    const hit = parse(logs).find(pred)
    if (hit) return hit
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no such log line in:\n${logs.join('\n')}`)
}

describe('the service log', () => {
  it('at info a burst of requests writes no line per request, and a backup writes its start and end with bytes and duration', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-log-'))
    const svc = await startService(['--log-level', 'info', '--import-root', dir])
    try {
      const before = svc.logs.length
      for (let i = 0; i < 200; i++) {
        const r = await apiFetch(`${svc.url}/api/v1/vaults`)
        assert.equal(r.status, 200)
        await r.arrayBuffer()
      }
      const missing = await apiFetch(`${svc.url}/api/v1/vaults/nope`)
      assert.equal(missing.status, 404)
      await missing.arrayBuffer()
      const burst = parse(svc.logs.slice(before))
      assert.deepEqual(
        burst.filter((l) => l.msg === 'request'),
        [],
      )
      assert.ok(burst.length < 5, `the burst logged:\n${svc.logs.slice(before).join('\n')}`)

      const img = Buffer.alloc(8 * 1024 * 1024)
      randomBytes(3 * 1024 * 1024).copy(img, 1024 * 1024)
      await writeFile(join(dir, 'web.raw'), img)
      const created = await cairnAt(svc.url, ['vault', 'create', 'main'])
      assert.equal(created.code, 0, created.stderr)
      const backup = await cairnAt(svc.url, ['backup', 'file', join(dir, 'web.raw'), '--vault', 'main'])
      assert.equal(backup.code, 0, backup.stderr)
      const started = await logged(svc.logs, (l) => l.msg === 'job started' && l.kind === 'backup')
      assert.equal(started.level, 'info')
      const ended = await logged(svc.logs, (l) => l.msg === 'job ended' && l.job === started.job)
      assert.equal(ended.level, 'info')
      assert.equal(ended.state, 'Completed')
      assert.equal(ended.bytesDone, ended.bytesTotal)
      assert.ok((ended.bytesDone as number) >= 3 * 1024 * 1024)
      assert.equal(typeof ended.durationMs, 'number')

      // At debug the same requests are there, one line each.
      const dbg = await startService(['--log-level', 'debug'])
      try {
        const from = dbg.logs.length
        for (let i = 0; i < 5; i++) await (await apiFetch(`${dbg.url}/api/v1/vaults`)).arrayBuffer()
        await logged(
          dbg.logs,
          () => parse(dbg.logs.slice(from)).filter((l) => l.msg === 'request').length >= 5,
        )
        const lines = parse(dbg.logs.slice(from)).filter((l) => l.msg === 'request')
        assert.equal(lines.length, 5)
        assert.ok(lines.every((l) => l.level === 'debug' && l.path === '/api/v1/vaults' && l.status === 200))
      } finally {
        await dbg.dispose()
      }
    } finally {
      await svc.dispose()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
