// The one authorization check of the management API: every request is authenticated (bearer token, or
// session cookie plus CSRF header), looked up in the route → permission table of src/auth
// (ROUTE_PERMISSIONS) and allowed or refused here, before any route runs; state-changing requests are
// written to the audit log with their outcome. docs/security.md, "Roles".
import type { Context, MiddlewareHandler } from 'hono'
import { getCookie } from 'hono/cookie'
import {
  type AuthService,
  type Principal,
  requestScope,
  roleText,
  routeKey,
  routeRequirement,
} from '../auth/index.js'
import { CairnError, type Logger, runAsActor } from '../util/index.js'
import type { ApiEnv } from './new-api-app.js'

/** Name of the browser-session cookie. */
export const SESSION_COOKIE = 'cairn_session'
/** Header that carries a session's CSRF token on state-changing requests. */
export const CSRF_HEADER = 'x-cairn-csrf'

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The client's address as the audit log and the sign-in limits see it. */
export function clientAddress(c: Context): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming
  return incoming?.socket?.remoteAddress ?? 'unknown'
}

/** The OpenAPI path (`/api/v1/vaults/{vault}`) of the route that will answer the request, if any. */
function matchedRoute(c: Context): string | undefined {
  const method = c.req.method === 'HEAD' ? 'GET' : c.req.method
  const route = c.req.matchedRoutes.find((r) => r.method === method && r.path !== '*' && r.path !== '/*')
  return route?.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')
}

/** The values of the `{name}` segments of a route path in a request path. */
function paramsOf(template: string, path: string): Record<string, string> {
  const t = template.split('/')
  const p = path.split('/')
  const out: Record<string, string> = {}
  t.forEach((seg, i) => {
    const m = /^\{(\w+)\}$/.exec(seg)
    if (m && p[i] !== undefined) {
      try {
        out[m[1]!] = decodeURIComponent(p[i]!)
      } catch {
        out[m[1]!] = p[i]!
      }
    }
  })
  return out
}

/**
 * Authenticates and authorizes every request by the table, and audits state-changing ones. A route
 * without an entry is refused (403) to everyone; a request without credentials is 401 unless the route
 * is public.
 */
export function authorize(auth: AuthService, logger: Logger): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const method = c.req.method
    const route = matchedRoute(c)
    const requirement = route === undefined ? undefined : routeRequirement(method, route)
    const stateChanging = !SAFE.has(method)
    const action = route === undefined ? `${method} ${c.req.path}` : routeKey(method, route)
    const client = clientAddress(c)
    if (requirement === 'public') return next()
    let principal: Principal | undefined
    // A record that cannot be written (a full file system) is logged, not turned into a failed request:
    // deletes must still work to free space. The chain stays whole: an append is one transaction.
    const audit = (status: number, details: Record<string, unknown> = {}) =>
      stateChanging
        ? auth.audit
            .append({
              actor: principal?.user ?? 'anonymous',
              roles: principal?.assignments.map(roleText) ?? [],
              client,
              action,
              target: c.req.path.slice(0, 512),
              result: status < 400 ? 'success' : status === 401 || status === 403 ? 'denied' : 'failure',
              status,
              details,
            })
            .then(
              () => {},
              (err: unknown) =>
                logger.error('cannot write the audit record of a request', {
                  requestId: c.get('requestId'),
                  action,
                  status,
                  message: err instanceof Error ? err.message : String(err),
                }),
            )
        : Promise.resolve()
    try {
      const header = c.req.header('authorization')
      const bearer = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1]
      if (header !== undefined && bearer === undefined)
        throw new CairnError(
          'Unauthorized',
          'Cannot authenticate the request: send "Authorization: Bearer TOKEN"',
        )
      const session = bearer === undefined ? getCookie(c, SESSION_COOKIE) : undefined
      principal = await auth.authenticate({
        ...(bearer !== undefined ? { bearer } : {}),
        ...(session !== undefined ? { session } : {}),
        ...(c.req.header(CSRF_HEADER) !== undefined ? { csrf: c.req.header(CSRF_HEADER)! } : {}),
        stateChanging,
      })
      if (principal === undefined)
        throw new CairnError(
          'Unauthorized',
          `Cannot ${method} ${c.req.path}: the request carries no credentials (sign in with cairn login, or send "Authorization: Bearer TOKEN")`,
        )
      if (route !== undefined) {
        if (requirement === undefined)
          throw new CairnError(
            'Forbidden',
            `Cannot ${action}: no permission is defined for this route, so it is refused to everyone`,
          )
        const scope = requestScope(paramsOf(route, c.req.path))
        if (!auth.allows(principal, requirement, scope))
          throw new CairnError(
            'Forbidden',
            `Cannot ${action}: user "${principal.user}" has no role that allows ${requirement}${scope === '*' ? '' : ` on ${scope}`}`,
          )
      }
    } catch (err) {
      if (err instanceof CairnError) await audit(err.status, { error: err.code })
      throw err
    }
    c.set('principal', principal)
    await runAsActor(principal.user, () => next())
    const error = c.res.status >= 400 ? await errorCode(c.res) : undefined
    await audit(c.res.status, error === undefined ? {} : { error })
  }
}

/** The `error.code` of an error answer (read from a copy; the answer is left as it is). */
async function errorCode(res: Response): Promise<string | undefined> {
  if (!res.headers.get('content-type')?.includes('application/json')) return undefined
  try {
    const body = (await res.clone().json()) as { error?: { code?: unknown } }
    return typeof body.error?.code === 'string' ? body.error.code : undefined
  } catch {
    return undefined
  }
}
