import { createRoute, z } from '@hono/zod-openapi'
import type { StoreHealth } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { ErrorBody } from './schemas.js'

const ListenerTls = z
  .object({
    fingerprint: z.string().optional(),
    notAfter: z.string().optional(),
    selfSigned: z.boolean().optional(),
    psk: z.boolean().optional(),
  })
  .openapi('ListenerTls', {
    description:
      "A listener's TLS: the SHA-256 fingerprint of its certificate (what `cairn --fingerprint` pins), or NBD pre-shared keys",
  })

export const Info = z
  .object({
    name: z.literal('cairn'),
    version: z.string(),
    dataDir: z.string(),
    startedAt: z.string(),
    listeners: z.record(z.string(), z.string()).openapi({ example: { api: 'http://127.0.0.1:7070' } }),
    tls: z.record(z.string(), ListenerTls).optional(),
  })
  .openapi('Info')

export const Status = z
  .object({
    status: z.enum(['ok', 'degraded', 'stopping']),
    diskStore: z.object({
      state: z.enum(['ok', 'low', 'full']),
      freeBytes: z.number(),
      totalBytes: z.number(),
      reserveBytes: z.number(),
      since: z.string().optional(),
      message: z.string().optional(),
    }),
    tls: z.record(z.string(), ListenerTls).openapi({
      description:
        'TLS of each listener that has it (api, blob, nbd); a listener not named speaks plain text',
    }),
  })
  .openapi('Status')

/** `/healthz`, `/readyz`, `/metrics`, `/api/v1/status` and `/api/v1/info`. */
export function registerSystemRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      summary: 'Readiness: the service accepts work and its catalog answers',
      responses: {
        200: {
          description: 'Ready',
          content: { 'application/json': { schema: z.object({ status: z.literal('ready') }) } },
        },
        503: {
          description: 'ServiceUnavailable: stopping, or the catalog cannot be reached',
          content: { 'application/json': { schema: ErrorBody } },
        },
      },
    }),
    async (c) => {
      const reason = !ctx.accepting() ? 'the service is stopping' : await ctx.notReady?.()
      if (reason !== undefined)
        throw new CairnError('ServiceUnavailable', `The service is not ready: ${reason}`)
      return c.json({ status: 'ready' as const }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics of this process (text exposition format)',
      responses: {
        200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } },
      },
    }),
    async (c) => {
      const body = (await ctx.metrics?.render()) ?? ''
      return c.body(body, 200, {
        'content-type': ctx.metrics?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8',
      }) as never
    },
  )
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
    (c) => c.json({ status: overall(ctx) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/status',
      summary: "Whether the service can write: the disk store's free space and any disk-full episode",
      responses: {
        200: { description: 'Service status', content: { 'application/json': { schema: Status } } },
      },
    }),
    (c) => c.json({ status: overall(ctx), diskStore: diskStoreHealth(ctx), tls: ctx.info().tls ?? {} }, 200),
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

function diskStoreHealth(ctx: ApiContext): StoreHealth {
  return ctx.diskStore.health?.() ?? { state: 'ok', freeBytes: 0, totalBytes: 0, reserveBytes: 0 }
}

/** `stopping` while shutting down, `degraded` while the disk store is full, else `ok`. */
function overall(ctx: ApiContext): 'ok' | 'degraded' | 'stopping' {
  if (!ctx.accepting()) return 'stopping'
  return diskStoreHealth(ctx).state === 'full' ? 'degraded' : 'ok'
}
