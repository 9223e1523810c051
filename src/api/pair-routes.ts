import { createRoute, z } from '@hono/zod-openapi'
import type { PairRegistry } from '../sites/index.js'
import { CairnError } from '../util/index.js'
import { paginate } from './_page.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json, Page, PageQuery } from './schemas.js'

// Paired sites (docs/replication.md): the sites this one replicates with, and the hello a peer's
// Site Peer token reaches.

const PairName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
  .openapi({ param: { name: 'pair', in: 'path' }, example: 'west' })

export const Pair = z
  .object({
    name: z.string(),
    url: z.string(),
    peerSite: z.string().nullable().openapi({ description: "The peer's site id, learned at pair add" }),
    customCa: z.boolean().openapi({ description: 'A CA to trust is stored for this pair' }),
    createdAt: z.string(),
    health: z.object({
      state: z.enum(['Unknown', 'Healthy', 'Unreachable', 'Unauthorized', 'CertificateRejected']),
      lastContactAt: z.string().optional(),
      lastError: z.string().optional(),
      failures: z.number().openapi({ description: 'Failed attempts in a row' }),
    }),
  })
  .openapi('Pair')

const NewPair = z
  .object({
    name: z.string().min(1).max(63),
    url: z.string().min(1).max(2048).openapi({ example: 'https://west.example:7070' }),
    token: z
      .string()
      .min(1)
      .max(512)
      .openapi({ description: 'A token of the Site Peer role made on the peer' }),
    ca: z
      .string()
      .max(65536)
      .optional()
      .openapi({ description: "PEM of the CA (or self-signed certificate) of the peer's API" }),
  })
  .openapi('NewPair')

export const SiteHelloBody = z.object({ siteId: z.string(), version: z.string() }).openapi('SiteHello')

/** Pair management and the site hello. */
export function registerPairRoutes(app: ApiApp, ctx: ApiContext): void {
  const pairs = (): PairRegistry => {
    if (!ctx.pairs) throw new CairnError('ServiceUnavailable', 'This service has no paired sites')
    return ctx.pairs
  }
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/site',
      summary: "This site's id and version: the hello a paired site sends with its Site Peer token",
      responses: { 200: json(SiteHelloBody, 'This site'), ...errorResponses },
    }),
    async (c) => c.json(await pairs().hello(), 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/pairs',
      summary: 'List the paired sites with the health of each link',
      request: { query: PageQuery.extend({ probe: z.enum(['true', 'false']).optional() }) },
      responses: { 200: json(Page(Pair).openapi('PairList'), 'Paired sites'), ...errorResponses },
    }),
    async (c) => {
      const { probe, ...q } = c.req.valid('query')
      const all = probe === 'true' ? await pairs().probeAll() : await pairs().list()
      return c.json(
        paginate(all, (p) => [p.name], q, 'pairs'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/pairs',
      summary:
        'Pair with another site: its URL and a Site Peer token made there; refused unless the site answers with that token',
      request: body(NewPair),
      responses: { 201: json(Pair, 'The pair'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await pairs().add(b.name, { url: b.url, token: b.token, ...(b.ca ? { ca: b.ca } : {}) })
      return c.json(info, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/pairs/{pair}',
      summary: 'One paired site and the health of its link',
      request: { params: z.object({ pair: PairName }) },
      responses: { 200: json(Pair, 'The pair'), ...errorResponses },
    }),
    async (c) => c.json(await pairs().get(c.req.valid('param').pair), 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/pairs/{pair}',
      summary: 'Forget a paired site (a GRS vault that replicates to it is refused: change nothing first)',
      request: { params: z.object({ pair: PairName }) },
      responses: { 204: { description: 'Removed' }, ...errorResponses },
    }),
    async (c) => {
      await pairs().remove(c.req.valid('param').pair)
      return c.body(null, 204)
    },
  )
}
