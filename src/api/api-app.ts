import { randomUUID } from 'node:crypto'
import { CairnError } from '../util/index.js'
import { authorize } from './_authorize.js'
import { errorResponse } from './_errors.js'
import { withPermissions } from './_openapi-permissions.js'
import { bodyLimit, crossSiteGuard, hostGuard } from './_request-guards.js'
import { registerAccountRoutes } from './account-routes.js'
import type { ApiContext } from './api-context.js'
import { registerAuthRoutes } from './auth-routes.js'
import { registerDiskGeoRoutes } from './disk-geo-routes.js'
import { registerDiskRoutes } from './disk-routes.js'
import { registerFileBrowseRoutes } from './file-browse-routes.js'
import { registerFileRecoveryRoutes } from './file-recovery-routes.js'
import { registerGuardRoutes } from './guard-routes.js'
import { registerJobRoutes } from './job-routes.js'
import { type ApiApp, newApiApp } from './new-api-app.js'
import { registerPairRoutes } from './pair-routes.js'
import { registerPortalRoutes } from './portal-routes.js'
import { registerProtectionRoutes } from './protection-routes.js'
import { registerReplicationRoutes } from './replication-routes.js'
import { registerSnapshotRoutes } from './snapshot-routes.js'
import { registerSystemRoutes } from './system-routes.js'
import { registerVaultRoutes } from './vault-routes.js'
import { registerVaultSafetyRoutes } from './vault-safety-routes.js'

/** Builds the management API (`/healthz`, `/api/v1/...`, `/api/v1/openapi.json`) over the given context. */
export function createApiApp(ctx: ApiContext): ApiApp {
  const app = newApiApp()
  const log = ctx.logger

  app.use('*', async (c, next) => {
    const requestId = c.req.header('x-request-id') ?? randomUUID()
    c.set('requestId', requestId)
    c.header('x-request-id', requestId)
    const started = performance.now()
    if (!ctx.accepting() && c.req.path !== '/healthz' && c.req.path !== '/readyz') {
      throw new CairnError('ServiceUnavailable', 'The service is shutting down')
    }
    await next()
    if (ctx.metrics) {
      const route = c.req.matchedRoutes.findLast((r) => r.method !== 'ALL')?.path ?? 'unmatched'
      ctx.metrics.observeRequest(c.req.method, route, c.res.status, (performance.now() - started) / 1000)
    }
    // One line per request only at debug: a guest's I/O or a watching console makes thousands.
    log[c.res.status >= 500 ? 'warn' : 'debug']('request', {
      requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    })
  })

  app.use('*', hostGuard(ctx.allowedHosts ?? []))
  app.use('*', crossSiteGuard(ctx.allowedHosts ?? []))
  app.use('*', bodyLimit())
  // The one authorization check: the route → permission table of src/auth, before any route runs.
  app.use('*', authorize(ctx.auth, log))

  registerSystemRoutes(app, ctx)
  registerAuthRoutes(app, ctx.auth)
  if (ctx.protection) registerProtectionRoutes(app, ctx.protection)
  if (ctx.mounts) registerFileRecoveryRoutes(app, ctx.mounts)
  if (ctx.files) registerFileBrowseRoutes(app, ctx.files)
  registerAccountRoutes(app, ctx)
  registerDiskRoutes(app, ctx)
  registerDiskGeoRoutes(app, ctx)
  registerSnapshotRoutes(app, ctx)
  registerVaultRoutes(app, ctx)
  registerVaultSafetyRoutes(app, ctx)
  registerGuardRoutes(app, ctx)
  registerJobRoutes(app, ctx)
  registerPairRoutes(app, ctx)
  registerReplicationRoutes(app, ctx)
  registerPortalRoutes(app, ctx.portalDir)

  const document = {
    openapi: '3.1.0' as const,
    info: {
      title: 'Cairn management API',
      version: ctx.info().version,
      description:
        'Backup and disaster recovery for virtual-machine disks. Errors answer {"error":{"code","message"}}. Every route but /healthz and sign-in needs credentials; x-cairn-permission names what each requires (docs/security.md).',
    },
  }
  app.get('/api/v1/openapi.json', (c) => c.json(withPermissions(app.getOpenAPI31Document(document))))

  app.notFound((c) => {
    const e = new CairnError(
      'RouteNotFound',
      `No route ${c.req.method} ${c.req.path}; see /api/v1/openapi.json`,
    )
    return c.json(e.toJSON(), 404)
  })
  app.onError((err, c) => errorResponse(err, c, log))
  return app
}
