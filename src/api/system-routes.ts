import { createRoute, z } from '@hono/zod-openapi'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'

const Info = z
  .object({
    name: z.literal('cairn'),
    version: z.string(),
    dataDir: z.string(),
    startedAt: z.string(),
    listeners: z.record(z.string(), z.string()).openapi({ example: { api: 'http://127.0.0.1:7070' } }),
  })
  .openapi('Info')

/** `/healthz` and `/api/v1/info`. */
export function registerSystemRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      summary: 'Liveness check',
      responses: {
        200: {
          description: 'The service runs',
          content: { 'application/json': { schema: z.object({ status: z.string() }) } },
        },
      },
    }),
    (c) => c.json({ status: ctx.accepting() ? 'ok' : 'stopping' }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/info',
      summary: 'Version, data folder and listeners of the service',
      responses: {
        200: { description: 'Service information', content: { 'application/json': { schema: Info } } },
      },
    }),
    (c) => c.json(ctx.info(), 200),
  )
}
