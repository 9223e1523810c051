import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { ManualClock } from '../src/protection/index.js'
import { CairnService } from '../src/server/index.js'
import { createLogger } from '../src/util/index.js'
import { cairnAt, signIn, startService } from './_service.js'

const cairn = (url: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  cairnAt(url, args, { env: { CAIRN_VAULT_PASSPHRASE: '', ...env } })

const errorCode = (r: { stdout: string; stderr: string }) => {
  const m = /"code"\s*:\s*"(\w+)"/.exec(r.stdout + r.stderr) ?? /\[(\w+)\]/.exec(r.stderr)
  return m?.[1]
}

/** Starts `cairn serve` expecting it to refuse; its log. */
async function refusedStart(data: string, args: string[]): Promise<string> {
  try {
    const s = await startService(args, { data })
    await s.stop()
  } catch (err) {
    return (err as Error).message
  }
  assert.fail(`cairn serve ${args.join(' ')} started`)
}

describe('vault keys at start and vault unlock', () => {
  it('serve --vault-key and --vault-key-dir unlock at start; loose modes and wrong keys stop the start; vault unlock works at run time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-vault-keys-'))
    const data = join(dir, 'data')
    const pass = join(dir, 'main.pass')
    writeFileSync(pass, 'correct horse\n', { mode: 0o600 })
    const img = join(dir, 'img.raw')
    const bytes = randomBytes(3 * 1024 * 1024)
    writeFileSync(img, bytes)
    try {
      let s = await startService(['--import-root', dir, '--export-root', dir], { data })
      let rp: { id: string }
      try {
        const created = await cairn(s.url, ['vault', 'create', 'main', '--passphrase-file', pass])
        assert.equal(created.code, 0, created.stderr)
        const b = await cairn(s.url, ['backup', 'file', img, '--vault', 'main'])
        assert.equal(b.code, 0, b.stderr)
        rp = JSON.parse(b.stdout)
      } finally {
        await s.stop()
      }

      // Without a key the vault is locked after a restart: VaultLocked, and the start log says so.
      s = await startService([], { data })
      try {
        assert.ok(s.logs.some((l) => /encrypted vaults are locked/.test(l) && /main/.test(l)))
        const list = JSON.parse((await cairn(s.url, ['vault', 'list'])).stdout)
        assert.equal(list[0].unlocked, false)
        const locked = await cairn(s.url, ['rp', 'list', '--vault', 'main'])
        assert.equal(locked.code, 7)
        assert.equal(errorCode(locked), 'VaultLocked')
        // cairn vault unlock at run time.
        const unlocked = await cairn(s.url, ['vault', 'unlock', 'main', '--passphrase-file', pass])
        assert.equal(unlocked.code, 0, unlocked.stderr)
        const rps = await cairn(s.url, ['rp', 'list', '--vault', 'main'])
        assert.equal(rps.code, 0, rps.stderr)
        assert.equal(JSON.parse(rps.stdout).length, 1)
      } finally {
        await s.stop()
      }

      // A key file readable by others is refused, with the fix in the message.
      chmodSync(pass, 0o644)
      const loose = await refusedStart(data, ['--vault-key', `main=${pass}`])
      assert.match(loose, /ConfigInvalid|key file/)
      assert.match(loose, /mode is 0644/)
      assert.match(loose, /chmod 600/)
      chmodSync(pass, 0o600)
      // A wrong key stops the start, naming the vault.
      const wrong = join(dir, 'wrong.pass')
      writeFileSync(wrong, 'battery staple\n', { mode: 0o600 })
      const bad = await refusedStart(data, ['--vault-key', `main=${wrong}`])
      assert.match(bad, /Cannot unlock vault "main"/)
      assert.match(bad, /passphrase is wrong/)

      // The right key: unlocked at start, restores work without a passphrase.
      s = await startService(['--vault-key', `main=${pass}`, '--export-root', dir], { data })
      try {
        const list = JSON.parse((await cairn(s.url, ['vault', 'list'])).stdout)
        assert.equal(list[0].unlocked, true)
        const out = join(dir, 'out.raw')
        const r = await cairn(s.url, ['restore', 'file', out, '--vault', 'main', '--rp', rp.id])
        assert.equal(r.code, 0, r.stderr)
        assert.ok(readFileSync(out).equals(bytes))
      } finally {
        await s.stop()
      }

      // A key folder: files named after their vaults, each 0600 or stricter.
      const keys = join(dir, 'keys')
      mkdirSync(keys)
      writeFileSync(join(keys, 'main'), 'correct horse\n', { mode: 0o400 })
      writeFileSync(join(keys, 'other'), 'x', { mode: 0o640 })
      const looseDir = await refusedStart(data, ['--vault-key-dir', keys])
      assert.match(looseDir, /other/)
      assert.match(looseDir, /mode is 0640/)
      rmSync(join(keys, 'other'))
      s = await startService(['--vault-key-dir', keys], { data })
      try {
        const list = JSON.parse((await cairn(s.url, ['vault', 'list'])).stdout)
        assert.equal(list[0].unlocked, true)
      } finally {
        await s.stop()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a scheduled backup into a locked vault fails with VaultLocked, in the job list and the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-vault-locked-'))
    const data = join(dir, 'data')
    const config = { data, host: '127.0.0.1', port: 0, blobPort: 0, nbdPort: 0, logLevel: 'error' as const }
    const env = { CAIRN_VAULT_PASSPHRASE: 'correct horse' }
    try {
      const first = new CairnService(config, { logger: createLogger({ level: 'error', json: true }) })
      await first.start()
      try {
        const url = first.listeners.api!
        await signIn(url, first.config.data)
        await first.diskStore.createDisk(
          { account: 'devstoreaccount1', container: 'disks', disk: 'web-os' },
          { size: 1024 * 1024 },
        )
        for (const args of [
          ['vault', 'create', 'main'],
          ['vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os'],
          ['policy', 'create', 'daily', '--vault', 'main', '--time', '02:00', '--keep-days', '30'],
          ['protect', 'web', '--vault', 'main', '--policy', 'daily'],
        ]) {
          const r = await cairn(url, args, env)
          assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
        }
      } finally {
        await first.stop()
      }

      const lines: string[] = []
      const stream = new Writable({
        write(chunk, _enc, done) {
          lines.push(...String(chunk).split('\n').filter(Boolean))
          done()
        },
      })
      const clock = new ManualClock(Date.now())
      const second = new CairnService(config, {
        logger: createLogger({ level: 'warn', json: true, stream }),
        clock,
      })
      await second.start()
      try {
        const url = second.listeners.api!
        await signIn(url, second.config.data)
        // Two days later the daily backup is due (caught up once); the vault is still locked.
        await clock.advanceTo(clock.now() + 2 * 86_400_000)
        type JobView = { kind: string; state: string; error?: { code: string } }
        let failed: JobView | undefined
        for (let i = 0; i < 100 && !failed; i++) {
          const page = JSON.parse((await cairn(url, ['job', 'list'])).stdout) as { items: JobView[] }
          failed = page.items.find((j) => j.kind === 'backup' && j.state === 'Failed')
          if (!failed) await new Promise((r) => setTimeout(r, 100))
        }
        assert.ok(failed, 'no failed backup job in the job list')
        assert.equal(failed.error?.code, 'VaultLocked')
        const warned = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn')
        assert.ok(
          warned.some((l) => JSON.stringify(l).includes('VaultLocked')),
          `no warning names VaultLocked: ${lines.join('\n')}`,
        )
        assert.ok(warned.some((l) => /encrypted vaults are locked/.test(l.msg)))
      } finally {
        await second.stop()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
