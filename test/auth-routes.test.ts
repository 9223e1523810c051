// Every route of openapi.json against the one authorization table: 401 without credentials, 403 for
// an identity whose roles lack the route's permission, and each role's permissions as the role
// table says, through the real service.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  PERMISSIONS,
  type Permission,
  ROLE_NAMES,
  type ROLES,
  ROUTE_PERMISSIONS,
  roleGrants,
  STATIC_ROUTES,
} from '../src/auth/index.js'
import { apiFetch, type RunningService, startService } from './_service.js'

interface Route {
  method: string
  path: string
  permission: string
}

/** The request path of a route with every `{param}` filled by a name that does not exist. */
const concrete = (path: string) =>
  path.replace(/\{(\w+)\}/g, (_m, name: string) => `no-such-${name.toLowerCase()}`)

async function send(
  svc: RunningService,
  route: Route,
  token?: string,
): Promise<{ status: number; code?: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const hasBody = !['GET', 'HEAD', 'DELETE'].includes(route.method)
  const res = await fetch(`${svc.url}${concrete(route.path)}`, {
    method: route.method,
    headers,
    ...(hasBody ? { body: route.method === 'PUT' && route.path.endsWith('/pages') ? '' : '{}' } : {}),
  })
  const text = await res.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code
  } catch {}
  return { status: res.status, ...(code !== undefined ? { code } : {}) }
}

describe('authorization of every management route (one table, one middleware)', () => {
  let svc: RunningService
  let routes: Route[]
  /** A token per role, each held globally by its own user. */
  const tokens = new Map<string, string>()
  /** A user who is Admin, but only of a vault no request names. */
  let elsewhere: string

  async function userWithRole(name: string, role: string, scope = '*'): Promise<string> {
    const password = `${name}-password-123`
    const created = await apiFetch(`${svc.url}/api/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, password, role, scope }),
    })
    assert.equal(created.status, 201, await created.clone().text())
    const login = await fetch(`${svc.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: name, password }),
    })
    assert.equal(login.status, 200)
    return ((await login.json()) as { token: string }).token
  }

  before(async () => {
    svc = await startService()
    const doc = (await (await apiFetch(`${svc.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { 'x-cairn-permission'?: string; security?: unknown[] }>>
      components: { securitySchemes: Record<string, unknown> }
    }
    assert.ok(doc.components.securitySchemes.bearerToken, 'the document declares the bearer token scheme')
    routes = []
    for (const [path, item] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(item))
        routes.push({
          method: method.toUpperCase(),
          path,
          permission: op['x-cairn-permission'] ?? '(missing)',
        })
    for (const role of ROLE_NAMES)
      tokens.set(role, await userWithRole(`as-${role.toLowerCase().replace(/ /g, '-')}`, role))
    elsewhere = await userWithRole('elsewhere', 'Admin', 'vault/elsewhere')
  })
  after(() => svc.dispose())

  it('every route of openapi.json has an entry in the table, shown as x-cairn-permission, and the table names no other route', () => {
    assert.ok(routes.length > 80, `the document lists ${routes.length} routes`)
    for (const r of routes) {
      const entry = ROUTE_PERMISSIONS[`${r.method} ${r.path}`]
      assert.ok(entry !== undefined, `${r.method} ${r.path} has no entry in ROUTE_PERMISSIONS`)
      assert.equal(r.permission, entry, `${r.method} ${r.path} shows its permission`)
    }
    const documented = new Set(routes.map((r) => `${r.method} ${r.path}`))
    // The OpenAPI document itself is the one route that is not in its own paths.
    const stale = Object.keys(ROUTE_PERMISSIONS).filter(
      (k) => !documented.has(k) && k !== 'GET /api/v1/openapi.json' && !STATIC_ROUTES.includes(k),
    )
    assert.deepEqual(stale, [], 'table entries of routes that do not exist')
    const publicRoutes = routes.filter((r) => r.permission === 'public').map((r) => `${r.method} ${r.path}`)
    assert.deepEqual(publicRoutes.sort(), ['GET /healthz', 'GET /readyz', 'POST /api/v1/auth/login'])
  })

  it('every route but health and sign-in answers 401 Unauthorized without credentials, and with a revoked or made-up token', async () => {
    for (const r of [...routes, { method: 'GET', path: '/api/v1/openapi.json', permission: 'system/read' }]) {
      if (r.permission === 'public') continue
      const none = await send(svc, r)
      assert.deepEqual(
        none,
        { status: 401, code: 'Unauthorized' },
        `${r.method} ${r.path} without credentials`,
      )
      const madeUp = await send(svc, r, 'cairn_made-up-token-that-was-never-issued')
      assert.deepEqual(
        madeUp,
        { status: 401, code: 'Unauthorized' },
        `${r.method} ${r.path} with a made-up token`,
      )
    }
  })

  it('every route that needs a permission answers 403 Forbidden to a role without it, and to an Admin of another vault', async () => {
    let checked = 0
    for (const r of routes) {
      if (r.permission === 'public' || r.permission === 'authenticated') continue
      const lacking = ROLE_NAMES.find((role) => !roleGrants(role, r.permission as Permission))
      if (lacking !== undefined) {
        const answer = await send(svc, r, tokens.get(lacking))
        assert.deepEqual(answer, { status: 403, code: 'Forbidden' }, `${r.method} ${r.path} as ${lacking}`)
      }
      const scoped = await send(svc, r, elsewhere)
      assert.deepEqual(
        scoped,
        { status: 403, code: 'Forbidden' },
        `${r.method} ${r.path} as Admin of vault/elsewhere`,
      )
      checked++
    }
    assert.ok(checked > 80)
  })

  it('each role is allowed exactly the permissions of the role table (role × permission matrix)', async () => {
    // One route per permission, the cheapest: reads first, then the rest (with names that do not exist,
    // an allowed request ends in 404 or 400, a refused one in 403).
    const byPermission = new Map<string, Route>()
    for (const r of [...routes].sort((a, b) => Number(a.method !== 'GET') - Number(b.method !== 'GET')))
      if (!byPermission.has(r.permission)) byPermission.set(r.permission, r)
    const matrix: string[] = []
    for (const permission of PERMISSIONS) {
      const route = byPermission.get(permission)
      if (route === undefined) continue
      for (const role of ROLE_NAMES) {
        const answer = await send(svc, route, tokens.get(role))
        const allowed = answer.status !== 403 && answer.status !== 401
        assert.ok(answer.status < 500, `${route.method} ${route.path} as ${role}: ${answer.status}`)
        assert.equal(
          allowed,
          roleGrants(role, permission),
          `${role} × ${permission} (${route.method} ${route.path})`,
        )
        matrix.push(`${role} ${permission} ${allowed ? 'allow' : 'deny'}`)
      }
    }
    // Only the permissions of the resource guard's settings and approvals may have no route yet.
    const unrouted = PERMISSIONS.filter((p) => !byPermission.has(p))
    assert.ok(
      unrouted.every((p) => p === 'vaults/security' || p === 'guard/approve'),
      unrouted.join(', '),
    )
    assert.equal(matrix.length, (PERMISSIONS.length - unrouted.length) * ROLE_NAMES.length)
  })

  it('the roles keep the promises of the issue: operators cannot delete, contributors cannot delete vaults or manage security, readers see no keys', () => {
    const cannot = (role: keyof typeof ROLES, ...ps: Permission[]) =>
      ps.forEach((p) => {
        assert.equal(roleGrants(role, p), false, `${role} must not have ${p}`)
      })
    const can = (role: keyof typeof ROLES, ...ps: Permission[]) =>
      ps.forEach((p) => {
        assert.equal(roleGrants(role, p), true, `${role} must have ${p}`)
      })
    can('Backup Operator', 'backup/run', 'restore/run', 'jobs/cancel')
    cannot(
      'Backup Operator',
      'recoveryPoints/delete',
      'vaults/delete',
      'policies/write',
      'protection/stop',
      'vms/delete',
    )
    can('Backup Contributor', 'policies/write', 'protection/write', 'protection/stop', 'vaults/write')
    cannot(
      'Backup Contributor',
      'vaults/delete',
      'users/write',
      'roles/write',
      'audit/read',
      'vaults/security',
    )
    cannot('Reader', 'accounts/keys', 'audit/read', 'backup/run', 'disks/write')
    can('Security Admin', 'users/write', 'roles/write', 'tokens/manage', 'audit/read', 'vaults/security')
    cannot('Security Admin', 'accounts/keys', 'vaults/delete', 'backup/run')
    can('Disk Contributor', 'disks/write', 'disks/delete', 'accounts/keys')
    cannot('Disk Contributor', 'backup/run', 'vaults/read')
    cannot('Disk Reader', 'disks/write', 'accounts/keys')
    can('Guard', 'guard/approve')
    cannot('Guard', 'vaults/read', 'backup/run')
    for (const p of PERMISSIONS) if (p !== 'guard/approve') can('Admin', p)
    cannot('Admin', 'guard/approve')
  })
})
