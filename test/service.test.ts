import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COMMANDS } from '../src/cli/commands/index.js'
import { main } from '../src/cli/index.js'
import { LogDiskStore } from '../src/diskstore/index.js'
import { apiFetch, cairn, type RunningService, startService } from './_service.js'

async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; stdout: string }> {
  const write = process.stdout.write.bind(process.stdout)
  let stdout = ''
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += chunk.toString()
    return true
  }) as typeof process.stdout.write
  try {
    return { code: await fn(), stdout }
  } finally {
    process.stdout.write = write
  }
}

// One service (at debug: the log has a line per request with its id; at info it has none, see
// test/service-log) for the tests that only look at a running service; the others start their own.
let svc: RunningService
before(async () => {
  svc = await startService(['--log-level', 'debug'])
})
after(() => svc?.dispose())

describe('cairn serve', () => {
  it('answers /healthz, /api/v1/info and the OpenAPI document, and says where it listens', async () => {
    const health = await apiFetch(`${svc.url}/healthz`)
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), { status: 'ok' })
    const info = (await (await apiFetch(`${svc.url}/api/v1/info`)).json()) as Record<string, unknown>
    assert.equal(info.name, 'cairn')
    assert.equal(info.dataDir, svc.data)
    assert.deepEqual(info.listeners, svc.listeners)
    const doc = (await (await apiFetch(`${svc.url}/api/v1/openapi.json`)).json()) as {
      openapi: string
      paths: object
    }
    assert.match(doc.openapi, /^3\./)
    assert.ok('/api/v1/info' in doc.paths)
    assert.ok(svc.logs.some((l) => l.includes('"msg":"request"') && l.includes('requestId')))
  })

  it('answers unknown routes and bad bodies with the error catalogue', async () => {
    const r = await apiFetch(`${svc.url}/api/v1/nothing-here`)
    assert.equal(r.status, 404)
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'RouteNotFound')
  })

  it('a second service on the same data folder refuses with a clear error', async () => {
    const second = cairn(['serve', '--data', svc.data, '--port', '0'])
    assert.equal(second.status, 4)
    assert.match(second.stderr, /in use by another Cairn service/)
    assert.match(second.stderr, /DataFolderLocked/)
  })

  it('refuses a disk-store log torn before its end (StoreCorrupt, exit 6) and starts with --repair-disk-log', async () => {
    const data = mkdtempSync(join(tmpdir(), 'cairn-e2e-torn-'))
    try {
      // A store whose log spans several segments, copied while open (a crash's leftovers), with an
      // earlier segment then missing its tail, as a power failure can leave it.
      const live = join(data, 'live')
      const store = await LogDiskStore.open(live, { segmentSize: 64 * 1024, compactIntervalMs: 0 })
      const ref = { account: 'acct', container: 'disks', disk: 'd' }
      await store.createAccount('acct')
      await store.createContainer('acct', 'disks')
      await store.createDisk(ref, { size: 1024 * 1024 })
      for (let i = 0; i < 40; i++) await store.writePages(ref, i * 8192, Buffer.alloc(8192, i + 1))
      cpSync(live, join(data, 'disks'), { recursive: true })
      await store.close()
      rmSync(live, { recursive: true })
      const torn = join(data, 'disks', 'seg-000002.log')
      truncateSync(torn, statSync(torn).size - 3000)

      const refused = cairn(['serve', '--data', data, '--port', '0', '--blob-port', '0', '--nbd-port', '0'])
      assert.equal(refused.status, 6)
      assert.match(refused.stderr, /StoreCorrupt/)
      assert.match(refused.stderr, /--repair-disk-log/)

      const svc = await startService(['--repair-disk-log'], { data })
      try {
        assert.ok(
          svc.logs.some((l) => l.includes('kept aside')),
          'the cut is logged',
        )
      } finally {
        assert.equal(await svc.stop(), 0)
      }
      assert.equal(readdirSync(join(data, 'disks')).filter((f) => f.startsWith('damaged-')).length, 1)
      // From then on it starts as usual.
      const again = await startService([], { data })
      assert.equal(await again.stop(), 0)
    } finally {
      rmSync(data, { recursive: true, force: true })
    }
  })

  it('stops gracefully on SIGTERM and SIGINT, releasing the data folder', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const svc = await startService()
      try {
        assert.equal(await svc.stop(signal), 0)
        assert.ok(svc.logs.some((l) => l.includes('cairn stopped')))
        assert.equal(existsSync(join(svc.data, 'cairn.lock')), false)
      } finally {
        await svc.dispose()
      }
    }
  })
})

describe('cairn CLI', () => {
  it('--help lists the commands and every command has --help', async () => {
    const help = cairn(['--help'])
    assert.equal(help.status, 0)
    assert.match(help.stdout, /Commands:/)
    const names = [...help.stdout.matchAll(/^ {2}(\S+(?: \S+)*?) {2,}/gm)].map((m) => m[1]!)
    assert.ok(names.includes('serve'))
    assert.deepEqual(names.sort(), COMMANDS.map((c) => c.name).sort())
    // Every command's help, in process (spawning node for each would take a minute on this machine).
    for (const name of names) {
      const { code, stdout } = await captureStdout(() => main([...name.split(' '), '--help']))
      assert.equal(code, 0, name)
      assert.match(stdout, new RegExp(`^Usage: cairn ${name}`), name)
    }
  })

  it('info prints a table or JSON, and a missing service maps to exit status 5', async () => {
    const text = cairn(['info', '--url', svc.url])
    assert.equal(text.status, 0)
    assert.match(text.stdout, /version:/)
    const json = cairn(['info', '--json'], { CAIRN_URL: svc.url })
    assert.equal(JSON.parse(json.stdout).dataDir, svc.data)
    const down = cairn(['info', '--url', 'http://127.0.0.1:9'])
    assert.equal(down.status, 5)
    assert.match(down.stderr, /Cannot reach the Cairn service/)
  })

  it('an unknown command or option is a usage error (exit 2)', () => {
    assert.equal(cairn(['frobnicate']).status, 2)
    assert.equal(cairn(['info', '--frob']).status, 2)
  })
})
