import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { deleteCookie, setCookie } from 'hono/cookie'
import { type AuthService, newPassword, PERMISSIONS, type Principal, ROLES } from '../auth/index.js'
import { CairnError } from '../util/index.js'
import { clientAddress, SESSION_COOKIE } from './_authorize.js'
import { paginate } from './_page.js'
import type { ApiApp, ApiEnv } from './new-api-app.js'
import { body, errorResponses, json, Page, PageQuery } from './schemas.js'

export const Assignment = z.object({ role: z.string(), scope: z.string() }).openapi('Assignment')
export const RoleAssignment = z
  .object({
    id: z.string(),
    user: z.string(),
    role: z.string(),
    scope: z.string(),
    createdAt: z.string(),
    createdBy: z.string(),
  })
  .openapi('RoleAssignment')
export const Credential = z
  .object({
    id: z.string(),
    user: z.string(),
    kind: z.enum(['token', 'login', 'session']),
    name: z.string(),
    role: z.string().optional(),
    scope: z.string().optional(),
    createdAt: z.string(),
    expiresAt: z.string().optional(),
    lastUsedAt: z.string().optional(),
  })
  .openapi('Credential')
export const User = z
  .object({ name: z.string(), createdAt: z.string(), roles: z.array(Assignment) })
  .openapi('User')
export const AuditRecord = z
  .object({
    seq: z.number(),
    time: z.string(),
    actor: z.string(),
    roles: z.array(z.string()),
    client: z.string(),
    action: z.string(),
    target: z.string(),
    result: z.enum(['success', 'failure', 'denied']),
    status: z.number(),
    details: z.record(z.string(), z.unknown()).openapi({
      description: 'The error code of a refused or failed request, and such facts; never a secret',
    }),
    prevHash: z.string(),
    hash: z.string(),
  })
  .openapi('AuditRecord')

export const Login = z
  .object({
    user: z.string().min(1).max(256),
    password: z.string().max(1024),
    session: z.boolean().optional().openapi({
      description:
        'true: answer a browser session (HttpOnly SameSite=Strict cookie) and its CSRF token instead of a token',
    }),
  })
  .strict()
  .openapi('Login')
export const LoginAnswer = z
  .object({
    user: z.string(),
    roles: z.array(Assignment),
    expiresAt: z.string(),
    token: z
      .string()
      .optional()
      .openapi({ description: 'The login token (shown once): Authorization: Bearer TOKEN' }),
    csrfToken: z.string().optional().openapi({
      description: 'With session: the value of the x-cairn-csrf header on state-changing requests',
    }),
  })
  .openapi('LoginAnswer')
export const NewToken = z
  .object({
    name: z.string().min(1).max(100).optional(),
    role: z.string().optional(),
    scope: z.string().optional().openapi({ description: '*, vault/NAME or account/NAME (with role)' }),
    expiresInSeconds: z.number().int().positive().optional(),
  })
  .strict()
  .openapi('NewToken')
export const NewUser = z
  .object({
    name: z.string().min(1).max(64),
    password: z
      .string()
      .max(1024)
      .optional()
      .openapi({ description: 'Absent: a password is generated and answered once' }),
    role: z.string().optional(),
    scope: z.string().optional(),
  })
  .strict()
  .openapi('NewUser')
export const NewAssignment = z
  .object({ user: z.string().min(1).max(64), role: z.string(), scope: z.string().optional() })
  .strict()
  .openapi('NewAssignment')

const param = (name: string) =>
  z.object({ [name]: z.string().openapi({ param: { name, in: 'path' } }) } as Record<string, z.ZodString>)
const noContent = { 204: { description: 'Done' } }

/** The signed-in principal (the authorize middleware put it there; only `public` routes lack one). */
function principalOf(c: Context<ApiEnv>): Principal {
  const p = c.get('principal')
  if (!p) throw new CairnError('Unauthorized', 'Cannot answer: the request is not authenticated')
  return p
}

/**
 * Sign-in and identities: `/api/v1/auth/*` (login, logout, whoami, own password and tokens), `/users`,
 * `/roles`, `/roleAssignments`, `/tokens` (everyone's) and `/audit`.
 */
export function registerAuthRoutes(app: ApiApp, auth: AuthService): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/auth/login',
      summary: 'Sign in with a user name and password; answers a login token, or a browser session cookie',
      request: body(Login),
      responses: { 200: json(LoginAnswer, 'Signed in'), ...errorResponses },
    }),
    async (c) => {
      const req = c.req.valid('json')
      const r = await auth.login({
        user: req.user,
        password: req.password,
        client: clientAddress(c),
        ...(req.session ? { session: true } : {}),
      })
      const answer = { user: r.user, roles: r.roles, expiresAt: r.expiresAt }
      if (!req.session) return c.json({ ...answer, token: r.secret }, 200)
      setCookie(c, SESSION_COOKIE, r.secret, {
        httpOnly: true,
        secure: new URL(c.req.url).protocol === 'https:',
        sameSite: 'Strict',
        path: '/',
        expires: new Date(r.expiresAt),
      })
      return c.json({ ...answer, csrfToken: r.csrf! }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/auth/logout',
      summary: 'End the login token or browser session of this request',
      responses: noContent,
    }),
    async (c) => {
      await auth.logout(principalOf(c))
      deleteCookie(c, SESSION_COOKIE, { path: '/' })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/auth/whoami',
      summary: 'Who this request is signed in as, how, and with which roles',
      responses: {
        200: json(
          z.object({
            user: z.string(),
            kind: z.string(),
            credential: z.string(),
            roles: z.array(Assignment),
          }),
          'The identity',
        ),
      },
    }),
    (c) => {
      const p = principalOf(c)
      return c.json({ user: p.user, kind: p.kind, credential: p.credentialId, roles: p.assignments }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/auth/password',
      summary: 'Change the password of the signed-in user (needs the current one); ends their logins',
      request: body(
        z.object({ currentPassword: z.string().max(1024), newPassword: z.string().max(1024) }).strict(),
      ),
      responses: { ...noContent, ...errorResponses },
    }),
    async (c) => {
      const p = principalOf(c)
      const req = c.req.valid('json')
      if (!(await auth.checkPassword(p.userId, req.currentPassword)))
        throw new CairnError('LoginFailed', 'Cannot change the password: the current password is wrong')
      await auth.setPassword(p.user, req.newPassword, p)
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/auth/tokens',
      summary: 'The tokens, logins and sessions of the signed-in user (never their secrets)',
      request: { query: PageQuery },
      responses: { 200: json(Page(Credential), 'Credentials'), ...errorResponses },
    }),
    async (c) => {
      const all = await auth.listCredentials({ userId: principalOf(c).userId })
      return c.json(paginate(all, byCreation, c.req.valid('query'), 'tokens'), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/auth/tokens',
      summary:
        'Make an API token for the signed-in user, optionally narrowed to one of their roles on a scope; the token is shown once',
      request: body(NewToken),
      responses: {
        201: json(Credential.extend({ token: z.string() }), 'The token (its secret shown this once)'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const req = c.req.valid('json')
      const t = await auth.createToken(principalOf(c), {
        ...(req.name !== undefined ? { name: req.name } : {}),
        ...(req.role !== undefined ? { role: req.role } : {}),
        ...(req.scope !== undefined ? { scope: req.scope } : {}),
        ...(req.expiresInSeconds !== undefined ? { expiresInMs: req.expiresInSeconds * 1000 } : {}),
      })
      return c.json(t, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/auth/tokens/{token}',
      summary: 'Revoke one of the signed-in user’s tokens, logins or sessions',
      request: { params: param('token') },
      responses: { ...noContent, ...errorResponses },
    }),
    async (c) => {
      await auth.revokeCredential(c.req.param('token'), { userId: principalOf(c).userId })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/tokens',
      summary: 'Every user’s tokens, logins and sessions (never their secrets)',
      request: { query: PageQuery },
      responses: { 200: json(Page(Credential), 'Credentials'), ...errorResponses },
    }),
    async (c) =>
      c.json(paginate(await auth.listCredentials(), byCreation, c.req.valid('query'), 'tokens'), 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/tokens/{token}',
      summary: 'Revoke any user’s token, login or session',
      request: { params: param('token') },
      responses: { ...noContent, ...errorResponses },
    }),
    async (c) => {
      await auth.revokeCredential(c.req.param('token'))
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/users',
      summary: 'List users and their roles',
      request: { query: PageQuery },
      responses: { 200: json(Page(User), 'Users'), ...errorResponses },
    }),
    async (c) =>
      c.json(
        paginate(await auth.listUsers(), (u) => [u.name], c.req.valid('query'), 'users'),
        200,
      ),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/users',
      summary:
        'Add a user (a generated password is answered once when none is given), optionally with a role',
      request: body(NewUser),
      responses: {
        201: json(User.extend({ password: z.string().optional() }), 'The user'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const req = c.req.valid('json')
      const actor = principalOf(c)
      const by = actor.user
      const generated = req.password === undefined ? newPassword() : undefined
      await auth.createUser(req.name, req.password ?? generated!, { by })
      if (req.role !== undefined) await auth.assignRole(req.name, req.role, req.scope ?? '*', { by, actor })
      const user = await auth.getUser(req.name)
      return c.json(generated === undefined ? user : { ...user, password: generated }, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/users/{user}',
      summary: 'Show a user and their roles',
      request: { params: param('user') },
      responses: { 200: json(User, 'The user'), ...errorResponses },
    }),
    async (c) => c.json(await auth.getUser(c.req.param('user')), 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/users/{user}',
      summary: 'Remove a user with their role assignments and credentials (never the last global Admin)',
      request: { params: param('user') },
      responses: { ...noContent, ...errorResponses },
    }),
    async (c) => {
      await auth.deleteUser(c.req.param('user'), principalOf(c))
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/users/{user}/password',
      summary: 'Set a user’s password (generated and answered once when none is given); ends their logins',
      request: {
        params: param('user'),
        ...body(z.object({ password: z.string().max(1024).optional() }).strict()),
      },
      responses: { 200: json(z.object({ password: z.string().optional() }), 'Set'), ...errorResponses },
    }),
    async (c) => {
      const req = c.req.valid('json')
      const generated = req.password === undefined ? newPassword() : undefined
      await auth.setPassword(c.req.param('user'), req.password ?? generated!, principalOf(c))
      return c.json(generated === undefined ? {} : { password: generated }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/roles',
      summary: 'The built-in roles and the permissions each grants',
      request: { query: PageQuery },
      responses: {
        200: json(
          Page(
            z
              .object({
                name: z.string(),
                description: z.string(),
                permissions: z.array(z.enum(PERMISSIONS)),
              })
              .openapi('Role'),
          ),
          'Roles, in the order of docs/security.md',
        ),
        ...errorResponses,
      },
    }),
    (c) => {
      const roles = Object.values(ROLES).map((r, i) => ({
        i,
        role: { ...r, permissions: [...r.permissions] },
      }))
      const page = paginate(roles, (r) => [String(r.i).padStart(3, '0')], c.req.valid('query'), 'roles')
      return c.json({ ...page, items: page.items.map((r) => r.role) }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/roleAssignments',
      summary: 'List role assignments, of one user with ?user=',
      request: { query: PageQuery.extend({ user: z.string().optional() }) },
      responses: { 200: json(Page(RoleAssignment), 'Assignments'), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const all = await auth.listAssignments(q.user === undefined ? {} : { user: q.user })
      return c.json(
        paginate(all, (a) => [a.user, a.createdAt, a.id], q, 'role assignments'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/roleAssignments',
      summary: 'Give a user a role, globally (scope *) or on vault/NAME or account/NAME',
      request: body(NewAssignment),
      responses: { 201: json(RoleAssignment, 'The assignment'), ...errorResponses },
    }),
    async (c) => {
      const req = c.req.valid('json')
      const actor = principalOf(c)
      const a = await auth.assignRole(req.user, req.role, req.scope ?? '*', { by: actor.user, actor })
      return c.json(a, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/roleAssignments/{assignment}',
      summary: 'Remove a role assignment (never the last global Admin)',
      request: { params: param('assignment') },
      responses: { ...noContent, ...errorResponses },
    }),
    async (c) => {
      await auth.removeAssignment(c.req.param('assignment'), principalOf(c))
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/audit',
      summary: 'Audit records, newest first: every state-changing request and every sign-in',
      request: {
        query: z.object({
          limit: z.coerce.number().int().min(1).max(1000).optional(),
          cursor: z.string().regex(/^\d+$/).optional(),
          actor: z.string().optional(),
        }),
      },
      responses: {
        200: json(z.object({ items: z.array(AuditRecord), nextCursor: z.string().optional() }), 'Records'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      return c.json(
        await auth.audit.list({
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { before: Number(q.cursor) } : {}),
          ...(q.actor !== undefined ? { actor: q.actor } : {}),
        }),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/audit/verify',
      summary: 'Check the audit log’s hash chain: names every removed, inserted or edited record',
      responses: {
        200: json(
          z.object({
            ok: z.boolean(),
            records: z.number(),
            problems: z.array(z.object({ seq: z.number(), problem: z.string() })),
          }),
          'The report',
        ),
      },
    }),
    async (c) => c.json(await auth.audit.verify(), 200),
  )
}

/** Credentials are listed oldest first. */
const byCreation = (t: { createdAt: string; id: string }) => [t.createdAt, t.id]
