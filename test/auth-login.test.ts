// Sign-in, tokens, sessions and secrets against the real service and the real CLI.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { LoginLimiter } from '../src/auth/index.js'
import { apiFetch, cairnAt, type RunningService, startService } from './_service.js'

const login = (url: string, user: string, password: string, extra: Record<string, unknown> = {}) =>
  fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, password, ...extra }),
  })

describe('sign-in', () => {
  // The CLI login, API token and browser session cases share one service (each signs in on its own).
  let sharedService: Promise<RunningService> | undefined
  const shared = () => {
    sharedService ??= startService()
    return sharedService
  }
  after(async () => {
    await (await sharedService)?.dispose()
  })

  it('first start makes user admin with a generated password, printed once with the sign-in line of its URL and kept in DATA/initial-admin-password (0600)', async () => {
    const svc = await startService()
    try {
      const file = join(svc.data, 'initial-admin-password')
      assert.equal(statSync(file).mode & 0o777, 0o600)
      const password = readFileSync(file, 'utf8').trim()
      assert.ok(password.length >= 20)
      let stdout = ''
      svc.child.stdout!.on('data', (d) => {
        stdout += d
      })
      // Printed before the start was logged; wait for the pipe to deliver it rather than a fixed time.
      for (let i = 0; i < 400 && !stdout.includes(password); i++) await new Promise((r) => setTimeout(r, 50))
      assert.ok(stdout.includes(password), 'cairn serve prints the password on its standard output')
      // Not on the default port: the sign-in line names the URL, or `cairn login` would go to :7070.
      assert.ok(stdout.includes(`Sign in with: cairn login --url ${svc.url}\n`), stdout)
      assert.ok(!svc.logs.some((l) => l.includes(password)), 'the password is not in the log')
      assert.equal((await login(svc.url, 'admin', password)).status, 200)
      // A restart keeps the user and does not make a new password.
      await svc.stop()
      const again = await startService([], { data: svc.data })
      try {
        assert.equal(readFileSync(file, 'utf8').trim(), password)
        assert.equal((await login(again.url, 'admin', password)).status, 200)
      } finally {
        await again.dispose()
      }
    } finally {
      await svc.dispose()
    }
  })

  it('100 wrong passwords are slowed down and audited, and the right password still works afterwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-brute-'))
    const scale = 0.002
    const passwordFile = join(dir, 'admin-password')
    writeFileSync(passwordFile, 'the-right-password-42\n', { mode: 0o600 })
    const svc = await startService([
      '--admin-password-file',
      passwordFile,
      '--login-delay-scale',
      String(scale),
    ])
    try {
      const times: number[] = []
      const started = performance.now()
      for (let i = 0; i < 100; i++) {
        const t = performance.now()
        const res = await login(svc.url, 'admin', `wrong-password-${i}`)
        times.push(performance.now() - t)
        assert.equal(res.status, 401)
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'LoginFailed')
      }
      const elapsed = performance.now() - started
      // Attempt i waits for the failures before it (per client and per user): the documented delays.
      let expected = 0
      for (let i = 0; i < 100; i++) expected += LoginLimiter.delayMs(i, scale)
      assert.ok(expected > 2000, `the delays add up to ${expected} ms`)
      assert.ok(
        elapsed >= expected * 0.95,
        `100 attempts took ${Math.round(elapsed)} ms, at least ${expected} expected`,
      )
      // Each of the last attempts waited at least the longest delay (on top of checking the password).
      for (const t of times.slice(90))
        assert.ok(t >= LoginLimiter.delayMs(99, scale) * 0.95, `a late attempt took only ${t} ms`)

      // Attempts in parallel gain nothing: they are served one at a time.
      const t0 = performance.now()
      const parallel = await Promise.all([0, 1, 2, 3].map((i) => login(svc.url, 'admin', `parallel-${i}`)))
      assert.deepEqual(
        parallel.map((r) => r.status),
        [401, 401, 401, 401],
      )
      assert.ok(performance.now() - t0 >= 4 * LoginLimiter.delayMs(99, scale) * 0.95)

      const right = await login(svc.url, 'admin', 'the-right-password-42')
      assert.equal(right.status, 200)
      const audit = (await (await apiFetch(`${svc.url}/api/v1/audit?limit=1000`)).json()) as {
        items: {
          action: string
          actor: string
          result: string
          status: number
          details: { error?: string }
        }[]
      }
      const failures = audit.items.filter(
        (r) => r.action === 'login' && r.actor === 'admin' && r.result === 'failure',
      )
      assert.equal(failures.length, 104, 'every failed sign-in is audited')
      assert.ok(failures.every((r) => r.status === 401 && r.details.error === 'LoginFailed'))
      const text = JSON.stringify(audit) + svc.logs.join('\n')
      assert.ok(
        !text.includes('wrong-password-') && !text.includes('the-right-password-42'),
        'no password is recorded',
      )
      // A name that does not exist answers the same as a wrong password.
      const unknown = await login(svc.url, 'nobody', 'whatever-password')
      assert.equal(unknown.status, 401)
      assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'LoginFailed')
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cairn login saves a token per URL in XDG_CONFIG_HOME/cairn/credentials (0600), CAIRN_TOKEN overrides it, cairn logout ends it', async () => {
    const svc = await shared()
    const home = mkdtempSync(join(tmpdir(), 'cairn-home-'))
    // No harness token: the CLI uses only what it saved itself.
    const env = { XDG_CONFIG_HOME: home, CAIRN_TOKEN: '' }
    try {
      const before = await cairnAt(svc.url, ['status'], { env })
      assert.equal(before.code, 7, before.stderr)
      assert.match(before.stderr, /Unauthorized/)
      const wrongFile = join(home, 'wrong')
      writeFileSync(wrongFile, 'not-the-password\n')
      const wrong = await cairnAt(svc.url, ['login', '--password-file', wrongFile], { env })
      assert.equal(wrong.code, 7)
      assert.match(wrong.stderr, /LoginFailed/)
      const ok = await cairnAt(
        svc.url,
        ['login', '--user', 'admin', '--password-file', join(svc.data, 'initial-admin-password')],
        { env },
      )
      assert.equal(ok.code, 0, ok.stderr)
      assert.ok(!ok.stdout.includes('cairn_'), 'the token is not printed')
      const file = join(home, 'cairn', 'credentials')
      assert.equal(statSync(file).mode & 0o777, 0o600)
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { token: string }>
      assert.match(saved[svc.url]!.token, /^cairn_/)
      const status = await cairnAt(svc.url, ['status'], { env })
      assert.equal(status.code, 0, status.stderr)
      const whoami = JSON.parse((await cairnAt(svc.url, ['whoami'], { env })).stdout) as { user: string }
      assert.equal(whoami.user, 'admin')
      const overridden = await cairnAt(svc.url, ['status'], {
        env: { ...env, CAIRN_TOKEN: 'cairn_not-a-token' },
      })
      assert.equal(overridden.code, 7, 'CAIRN_TOKEN wins over the saved token')
      const out = await cairnAt(svc.url, ['logout'], { env })
      assert.equal(out.code, 0, out.stderr)
      const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
      assert.equal(after[svc.url], undefined)
      // The token itself is ended on the service, not only forgotten.
      const reuse = await fetch(`${svc.url}/api/v1/status`, {
        headers: { authorization: `Bearer ${saved[svc.url]!.token}` },
      })
      assert.equal(reuse.status, 401)
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  it('API tokens: shown once, stored hashed, narrowed to a role and scope, listed without secrets, expiring and revocable', async () => {
    const svc = await shared()
    const made = await cairnAt(svc.url, [
      'token',
      'create',
      '--role',
      'Reader',
      '--scope',
      'vault/main',
      '--expires',
      '1d',
      '--name',
      'ci',
    ])
    assert.equal(made.code, 0, made.stderr)
    const token = JSON.parse(made.stdout) as {
      id: string
      token: string
      role: string
      scope: string
      expiresAt: string
    }
    assert.match(token.token, /^cairn_[A-Za-z0-9_-]{43}$/)
    assert.equal(token.role, 'Reader')
    const as = (t: string, path: string, method = 'GET') =>
      fetch(`${svc.url}${path}`, { method, headers: { authorization: `Bearer ${t}` } })
    assert.equal(
      (await as(token.token, '/api/v1/vaults/main/recoveryPoints')).status,
      404,
      'reads in its vault (there is no vault main)',
    )
    assert.equal(
      (await as(token.token, '/api/v1/vaults/other/recoveryPoints')).status,
      403,
      'not in another vault',
    )
    assert.equal((await as(token.token, '/api/v1/vaults')).status, 403, 'nor globally')
    assert.equal((await as(token.token, '/api/v1/vaults/main/gc', 'POST')).status, 403, 'and only reads')
    const list = await cairnAt(svc.url, ['token', 'list'])
    assert.equal(list.code, 0)
    assert.ok(
      list.stdout.includes(token.id) && !list.stdout.includes(token.token),
      'listed without its secret',
    )
    for (const f of ['catalog.db', 'catalog.db-wal']) {
      const bytes = existsSync(join(svc.data, f)) ? readFileSync(join(svc.data, f)) : Buffer.alloc(0)
      assert.ok(!bytes.includes(Buffer.from(token.token)), `${f} keeps no token in the clear`)
    }
    const revoked = await cairnAt(svc.url, ['token', 'revoke', token.id])
    assert.equal(revoked.code, 0, revoked.stderr)
    assert.equal((await as(token.token, '/api/v1/vaults/main/recoveryPoints')).status, 401)

    const short = JSON.parse((await cairnAt(svc.url, ['token', 'create', '--expires', '4s'])).stdout) as {
      token: string
      expiresAt: string
    }
    assert.equal((await as(short.token, '/api/v1/status')).status, 200)
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(short.expiresAt) - Date.now() + 300)))
    assert.equal((await as(short.token, '/api/v1/status')).status, 401, 'an expired token is refused')

    // A token never exceeds its user: a Reader cannot mint an Admin token.
    const reader = await apiFetch(`${svc.url}/api/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'rita', password: 'rita-password-123', role: 'Reader' }),
    })
    assert.equal(reader.status, 201)
    const ritaToken = (
      (await (await login(svc.url, 'rita', 'rita-password-123')).json()) as { token: string }
    ).token
    const escalate = await fetch(`${svc.url}/api/v1/auth/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ritaToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'Admin' }),
    })
    assert.equal(escalate.status, 403)
  })

  it('browser sessions: an HttpOnly SameSite=Strict cookie that changes state only with its CSRF header', async () => {
    const svc = await shared()
    const password = readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()
    const res = await login(svc.url, 'admin', password, { session: true })
    assert.equal(res.status, 200)
    const body = (await res.json()) as { csrfToken: string; token?: string }
    assert.equal(body.token, undefined, 'a session answers no bearer token')
    const cookie = res.headers.get('set-cookie')!
    assert.match(cookie, /^cairn_session=cairn_s_[^;]+;/)
    assert.match(cookie, /HttpOnly/i)
    assert.match(cookie, /SameSite=Strict/i)
    assert.doesNotMatch(cookie, /Secure/i, 'plain HTTP: no Secure flag (it is set over TLS)')
    const session = cookie.split(';')[0]!
    const read = await fetch(`${svc.url}/api/v1/status`, { headers: { cookie: session } })
    assert.equal(read.status, 200)
    const create = (headers: Record<string, string>) =>
      fetch(`${svc.url}/api/v1/accounts`, {
        method: 'POST',
        headers: { cookie: session, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ name: `acct${Object.keys(headers).length}` }),
      })
    const noCsrf = await create({})
    assert.equal(noCsrf.status, 403, 'the cookie alone cannot change anything')
    const badCsrf = await create({ 'x-cairn-csrf': 'guessed' })
    assert.equal(badCsrf.status, 403)
    const withCsrf = await create({ 'x-cairn-csrf': body.csrfToken, 'x-other': '1' })
    assert.equal(withCsrf.status, 201, await withCsrf.text())
    const asBearer = await fetch(`${svc.url}/api/v1/status`, {
      headers: { authorization: `Bearer ${session.split('=')[1]}` },
    })
    assert.equal(asBearer.status, 401, 'a session secret is not a bearer token')
    const out = await fetch(`${svc.url}/api/v1/auth/logout`, {
      method: 'POST',
      headers: { cookie: session, 'x-cairn-csrf': body.csrfToken },
    })
    assert.equal(out.status, 204)
    assert.equal((await fetch(`${svc.url}/api/v1/status`, { headers: { cookie: session } })).status, 401)
  })

  it('over TLS the session cookie is Secure, and cairn login saves the certificate fingerprint that later commands pin', async () => {
    const svc = await startService(['--tls', 'self-signed'])
    const home = mkdtempSync(join(tmpdir(), 'cairn-home-tls-'))
    try {
      const ca = readFileSync(join(svc.data, 'tls', 'cert.pem'), 'utf8')
      const password = readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()
      const cookie = await new Promise<string>((resolve, reject) => {
        const payload = JSON.stringify({ user: 'admin', password, session: true })
        const req = httpsRequest(
          `${svc.url}/api/v1/auth/login`,
          { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume()
            res.on('end', () => resolve(String(res.headers['set-cookie'] ?? '')))
          },
        )
        req.on('error', reject)
        req.end(payload)
      })
      assert.match(cookie, /cairn_session=.*; Secure/i)
      assert.match(cookie, /HttpOnly/i)
      const env = { XDG_CONFIG_HOME: home, CAIRN_TOKEN: '', CAIRN_CA: join(svc.data, 'tls', 'cert.pem') }
      const login = await cairnAt(
        svc.url,
        ['login', '--password-file', join(svc.data, 'initial-admin-password')],
        { env },
      )
      assert.equal(login.code, 0, login.stderr)
      const saved = JSON.parse(readFileSync(join(home, 'cairn', 'credentials'), 'utf8')) as Record<
        string,
        { token: string; fingerprint?: string }
      >
      assert.match(saved[svc.url]?.fingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
      // Without the CA, the saved fingerprint is what the CLI trusts.
      const status = await cairnAt(svc.url, ['status'], { env: { ...env, CAIRN_CA: '' } })
      assert.equal(status.code, 0, status.stderr)
      const other = {
        ...saved,
        [svc.url]: { ...saved[svc.url]!, fingerprint: '00'.repeat(32).replace(/(..)(?!$)/g, '$1:') },
      }
      writeFileSync(join(home, 'cairn', 'credentials'), JSON.stringify(other), { mode: 0o600 })
      const pinned = await cairnAt(svc.url, ['status'], { env: { ...env, CAIRN_CA: '' } })
      assert.notEqual(pinned.code, 0, 'a certificate other than the pinned one is refused')
    } finally {
      await svc.dispose()
      rmSync(home, { recursive: true, force: true })
    }
  })
})
