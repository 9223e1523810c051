// The audit log (hash-chained, tamper-evident), users and roles through the CLI, and secrets that
// never reach logs, answers or job records.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { apiFetch, cairnAt, startService } from './_service.js'

interface AuditRecord {
  seq: number
  actor: string
  roles: string[]
  client: string
  action: string
  target: string
  result: string
  status: number
  time: string
}

describe('audit log and identities', () => {
  it('records every state-changing request and sign-in; audit verify finds an edited and a removed record', async () => {
    const svc = await startService()
    const dir = mkdtempSync(join(tmpdir(), 'cairn-audit-'))
    try {
      assert.equal((await cairnAt(svc.url, ['account', 'create', 'audited'])).code, 0)
      const refused = await cairnAt(svc.url, ['vault', 'delete', 'no-such-vault'])
      assert.notEqual(refused.code, 0)
      const pw = join(dir, 'pw')
      writeFileSync(pw, 'sam-password-1234\n')
      assert.equal(
        (await cairnAt(svc.url, ['user', 'create', 'sam', '--password-file', pw, '--role', 'Security Admin']))
          .code,
        0,
      )
      assert.equal(
        (
          await cairnAt(svc.url, [
            'user',
            'create',
            'bo',
            '--password-file',
            pw,
            '--role',
            'Backup Contributor',
          ])
        ).code,
        0,
      )
      const home = mkdtempSync(join(dir, 'home-'))
      const asUser = async (user: string) => {
        const r = await cairnAt(svc.url, ['login', '--user', user, '--password-file', pw], {
          env: { XDG_CONFIG_HOME: join(home, user), CAIRN_TOKEN: '' },
        })
        assert.equal(r.code, 0, r.stderr)
        return { XDG_CONFIG_HOME: join(home, user), CAIRN_TOKEN: '' }
      }
      const sam = await asUser('sam')
      const bo = await asUser('bo')
      // Only a Security Admin (or Admin) reads the audit log.
      const denied = await cairnAt(svc.url, ['audit', 'list'], { env: bo })
      assert.equal(denied.code, 7)
      assert.match(denied.stderr, /Forbidden/)
      const list = await cairnAt(svc.url, ['audit', 'list', '--limit', '1000'], { env: sam })
      assert.equal(list.code, 0, list.stderr)
      const records = (JSON.parse(list.stdout) as { items: AuditRecord[] }).items
      const find = (pred: (r: AuditRecord) => boolean) => records.find(pred)
      const created = find((r) => r.action === 'POST /api/v1/accounts')
      assert.ok(created, 'the account creation is recorded')
      assert.equal(created.actor, 'admin')
      assert.deepEqual(created.roles, ['Admin'])
      assert.equal(created.client, '127.0.0.1')
      assert.equal(created.result, 'success')
      assert.equal(created.status, 201)
      assert.ok(Date.parse(created.time) > Date.now() - 600_000)
      const failed = find((r) => r.action === 'DELETE /api/v1/vaults/{vault}')
      assert.equal(failed?.result, 'failure')
      assert.equal(failed?.status, 404)
      assert.ok(find((r) => r.action === 'login' && r.actor === 'bo' && r.result === 'success'))
      assert.ok(
        find((r) => r.action === 'GET /api/v1/audit' && r.actor === 'bo') === undefined,
        'reads are not audited',
      )
      const forbidden = await cairnAt(svc.url, ['vault', 'delete', 'x'], { env: bo })
      assert.equal(forbidden.code, 7)
      const again = (
        JSON.parse((await cairnAt(svc.url, ['audit', 'list'], { env: sam })).stdout) as {
          items: AuditRecord[]
        }
      ).items
      assert.ok(
        again.some(
          (r) =>
            r.actor === 'bo' &&
            r.action === 'DELETE /api/v1/vaults/{vault}' &&
            r.result === 'denied' &&
            r.status === 403,
        ),
      )

      const ok = await cairnAt(svc.url, ['audit', 'verify'], { env: sam })
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true)

      // Someone with the catalog file rewrites who created the account...
      const db = new Database(join(svc.data, 'catalog.db'))
      try {
        const n = db.prepare("update audit_log set actor = 'mallory' where seq = ?").run(created.seq).changes
        assert.equal(n, 1)
      } finally {
        db.close()
      }
      const edited = await cairnAt(svc.url, ['audit', 'verify'], { env: sam })
      assert.equal(edited.code, 6, 'a broken chain is an integrity failure')
      const report = JSON.parse(edited.stdout) as {
        ok: boolean
        problems: { seq: number; problem: string }[]
      }
      assert.equal(report.ok, false)
      assert.deepEqual(
        report.problems.map((p) => p.seq),
        [created.seq],
      )
      assert.match(report.problems[0]!.problem, /edited/)
      const text = await cairnAt(svc.url, ['audit', 'verify'], { env: sam, json: false })
      assert.match(text.stdout, new RegExp(`record ${created.seq}: .*edited`))

      // ...and removes the record of the failed delete.
      const db2 = new Database(join(svc.data, 'catalog.db'))
      try {
        db2.prepare("update audit_log set actor = 'admin' where seq = ?").run(created.seq)
        db2.prepare('delete from audit_log where seq = ?').run(failed!.seq)
      } finally {
        db2.close()
      }
      const removed = JSON.parse((await cairnAt(svc.url, ['audit', 'verify'], { env: sam })).stdout) as {
        problems: { seq: number; problem: string }[]
      }
      assert.equal(removed.problems.length, 2, JSON.stringify(removed))
      assert.equal(removed.problems[0]!.seq, failed!.seq + 1)
      assert.match(removed.problems[0]!.problem, /missing/)
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('users and roles through the CLI: create, assign on a vault, list, set a password, remove; the last Admin stays', async () => {
    const svc = await startService()
    try {
      const made = await cairnAt(svc.url, ['user', 'create', 'carol'])
      assert.equal(made.code, 0, made.stderr)
      const carol = JSON.parse(made.stdout) as { name: string; password: string }
      assert.ok(carol.password.length >= 20, 'a generated password is answered once')
      const assign = await cairnAt(svc.url, [
        'role',
        'assign',
        'carol',
        '--role',
        'backup-operator',
        '--scope',
        'vault/main',
      ])
      assert.equal(assign.code, 0, assign.stderr)
      const a = JSON.parse(assign.stdout) as { id: string; role: string; scope: string }
      assert.deepEqual([a.role, a.scope], ['Backup Operator', 'vault/main'])
      const users = JSON.parse((await cairnAt(svc.url, ['user', 'list'])).stdout) as {
        items: { name: string; roles: unknown[] }[]
      }
      assert.deepEqual(
        users.items.map((u) => u.name),
        ['admin', 'carol'],
      )
      assert.ok(!JSON.stringify(users).includes(carol.password) && !JSON.stringify(users).includes('argon2'))
      const bad = await cairnAt(svc.url, ['role', 'assign', 'carol', '--role', 'Overlord'])
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /RoleNotFound/)
      const help = await cairnAt(svc.url, ['role', 'list'], { json: false })
      assert.match(help.stdout, /Backup Operator: .*cannot delete data/)
      const passwd = await cairnAt(svc.url, ['user', 'passwd', 'carol'])
      const newPassword = (JSON.parse(passwd.stdout) as { password: string }).password
      const login = (p: string) =>
        fetch(`${svc.url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: 'carol', password: p }),
        })
      assert.equal((await login(carol.password)).status, 401)
      assert.equal((await login(newPassword)).status, 200)
      assert.equal((await cairnAt(svc.url, ['role', 'remove', a.id])).code, 0)
      const lastAdmin = await cairnAt(svc.url, ['user', 'delete', 'admin'])
      assert.equal(lastAdmin.code, 4)
      assert.match(lastAdmin.stderr, /LastAdmin/)
      assert.equal((await cairnAt(svc.url, ['user', 'delete', 'carol'])).code, 0)
      assert.equal((await login(newPassword)).status, 401)

      // Guards are kept from administrators: the first one may be made, later ones only by a Guard,
      // and an Admin can neither reset a Guard's password, delete them, nor mint a Guard token.
      const guard = JSON.parse(
        (await cairnAt(svc.url, ['user', 'create', 'gwen', '--role', 'Guard'])).stdout,
      ) as {
        password: string
      }
      assert.equal((await cairnAt(svc.url, ['user', 'create', 'mallory'])).code, 0)
      for (const args of [
        ['role', 'assign', 'mallory', '--role', 'Guard'],
        ['user', 'passwd', 'gwen'],
        ['user', 'delete', 'gwen'],
        ['token', 'create', '--role', 'Guard'],
      ]) {
        const r = await cairnAt(svc.url, args)
        assert.equal(r.code, 7, `${args.join(' ')}: ${r.stderr}`)
        assert.match(r.stderr, /Forbidden/)
      }
      const gwen = (
        (await await fetch(`${svc.url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: 'gwen', password: guard.password }),
        }).then((r) => r.json())) as { token: string }
      ).token
      const byGuard = await cairnAt(svc.url, ['whoami'], { env: { CAIRN_TOKEN: gwen } })
      assert.match(byGuard.stdout, /"Guard"/)
    } finally {
      await svc.dispose()
    }
  })

  it('secrets never reach the log, answers other than their creation, job records or error messages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-secrets-'))
    // At debug the log holds every request too: the most it ever writes is what must hold no secret.
    const svc = await startService(['--log-level', 'debug'])
    try {
      const password = readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()
      const passphrase = 'vault-passphrase-do-not-leak-77'
      writeFileSync(join(dir, 'pass'), `${passphrase}\n`)
      const seen: string[] = []
      const call = async (args: string[]) => {
        const r = await cairnAt(svc.url, args, { env: { CAIRN_VAULT_PASSPHRASE: passphrase } })
        seen.push(r.stdout, r.stderr)
        return r
      }
      const token = JSON.parse((await call(['token', 'create', '--name', 'leak-check'])).stdout) as {
        token: string
      }
      seen.length = 0 // the one answer that shows the token
      const vault = await call(['vault', 'create', 'enc'])
      assert.equal(vault.code, 0, vault.stderr)
      assert.equal((await call(['vault', 'unlock', 'enc'])).code, 0)
      assert.equal((await call(['disk', 'create', 'd1', '--size', '1MiB'])).code, 0)
      const backup = await call(['backup', 'disk', 'd1', '--vault', 'enc'])
      assert.equal(backup.code, 0, backup.stderr)
      const agentToken = 'agent-token-do-not-leak-91'
      const vm = await call([
        'vm',
        'create',
        'vm1',
        '--os-disk',
        'd1',
        '--agent',
        'http://127.0.0.1:9',
        '--agent-token',
        agentToken,
      ])
      assert.equal(vm.code, 0, vm.stderr)
      await call(['vm', 'show', 'vm1'])
      await call(['job', 'list'])
      await call(['token', 'list'])
      await call(['user', 'list'])
      await call(['audit', 'list', '--limit', '1000'])
      // Wrong secrets in requests: the error messages do not repeat them.
      for (const bad of [password.slice(0, -1), 'x'.repeat(12)]) {
        const r = await fetch(`${svc.url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: 'admin', password: bad }),
        })
        seen.push(await r.text())
      }
      const wrongToken = await fetch(`${svc.url}/api/v1/status`, {
        headers: { authorization: `Bearer ${token.token}x` },
      })
      seen.push(await wrongToken.text())
      for (const path of [
        '/api/v1/jobs',
        '/api/v1/audit?limit=1000',
        '/api/v1/tokens',
        '/api/v1/users',
        '/api/v1/vaults/enc',
      ])
        seen.push(await (await apiFetch(`${svc.url}${path}`)).text())
      const everything = `${seen.join('\n')}\n${svc.logs.join('\n')}`
      for (const [name, secret] of [
        ['admin password', password],
        ['API token', token.token],
        ['vault passphrase', passphrase],
        ['harness token', svc.token],
        ['agent token', agentToken],
      ] as const)
        assert.ok(!everything.includes(secret), `the ${name} appears in a log line or an answer`)
      assert.ok(
        svc.logs.length > 10 && everything.includes('POST /api/v1/vaults'),
        'the check saw the log and the audit',
      )
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
