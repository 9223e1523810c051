import type { ServerResponse } from 'node:http'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import { createRoute, z } from '@hono/zod-openapi'
import type { VaultReplication } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { ReplicationStatus, VaultParams } from './_vault-schemas.js'
import { type ApiContext, vaultServiceOf } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { body, errorResponses, json } from './schemas.js'

// Vault redundancy (docs/replication.md): an admin's redundancy and failover routes, and the routes a
// paired site reaches with its Site Peer token (the replica pulls objects from the primary, reports
// its lag, and the two sites agree on who is primary by epoch).

const Redundancy = ReplicationStatus.shape.redundancy
const Status = ReplicationStatus

const Replica = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
  .openapi({ param: { name: 'replica', in: 'path' } })
const R = z.object({ replica: Replica })
const LockParams = z.object({
  replica: Replica,
  lock: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .openapi({ param: { name: 'lock', in: 'path' } }),
})
const Count = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const BackendObject = z
  .object({ name: z.string(), size: z.number(), modified: z.number() })
  .openapi('VaultObject')
const Role = z.object({ role: z.string(), epoch: z.number(), siteId: z.string() }).openapi('ReplicaRole')
const tags = ['replication']
/** One batched read of the secondary: at most this many ranges and bytes. */
const MAX_RANGES = 1024
const MAX_RANGE_BYTES = 64 * 1024 * 1024
/** A range of one object this long or longer is sent piece by piece (the secondary's whole packs). */
const PIECE = 1024 * 1024

/**
 * What the object route returns to @hono/node-server once it wrote its answer itself (its
 * RESPONSE_ALREADY_SENT with the status sent, for the audit and the metrics). Made as this module
 * loads, before the adaptor replaces the global Response with its own.
 */
const ALREADY_SENT = new Response(null, { status: 200, headers: RESPONSE_ALREADY_SENT.headers })

/** Redundancy, failover and the site-to-site replication routes. */
export function registerReplicationRoutes(app: ApiApp, ctx: ApiContext): void {
  const repl = (): VaultReplication => {
    if (!ctx.replication) throw new CairnError('ServiceUnavailable', 'This service replicates no vaults')
    return ctx.replication
  }
  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/vaults/{vault}/redundancy',
      tags,
      summary: 'Set the redundancy of a vault that holds no recovery point yet (LRS, or GRS with a pair)',
      request: {
        params: VaultParams,
        ...body(
          z.object({ redundancy: Redundancy, pair: z.string().optional() }).openapi('RedundancyChange'),
        ),
      },
      responses: { 200: json(Status, 'The replication state'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      return c.json(
        await vaultServiceOf(ctx).setRedundancy(c.req.valid('param').vault, b.redundancy, b.pair),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/vaults/{vault}/failover',
      tags,
      summary:
        "Promote this site's read-only replica of a GRS vault to primary (the old primary becomes the secondary)",
      request: { params: VaultParams, ...body(z.object({}).openapi('FailoverRequest')) },
      responses: { 200: json(Status, 'The replication state'), ...errorResponses },
    }),
    async (c) => c.json(await vaultServiceOf(ctx).failover(c.req.valid('param').vault), 200),
  )

  // --- site to site (Site Peer token) ---
  const base = '/api/v1/replication/vaults/{replica}'
  app.openapi(
    createRoute({
      method: 'get',
      path: `${base}/objects`,
      tags,
      summary: 'The objects of a GRS vault this site is the primary of (the secondary pulls)',
      request: { params: R, query: z.object({ prefix: z.string().max(512).default('') }) },
      responses: { 200: json(z.array(BackendObject), 'Objects'), ...errorResponses },
    }),
    async (c) =>
      c.json(await repl().listObjects(c.req.valid('param').replica, c.req.valid('query').prefix), 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${base}/object`,
      tags,
      summary: 'One object of a GRS vault this site is the primary of, or a range of it',
      request: {
        params: R,
        query: z.object({ name: z.string().max(512), offset: Count.optional(), length: Count.optional() }),
      },
      responses: {
        200: {
          description: 'The bytes',
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const vault = c.req.valid('param').replica
      // A long range (the secondary's whole pack) goes to Node's own answer piece by piece from a few
      // reused buffers: no buffer the size of the range, no fresh memory per byte sent.
      const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
      if (outgoing !== undefined && q.offset !== undefined && q.length !== undefined && q.length >= PIECE) {
        const send = await repl().objectSender(vault, q.name, q.offset, q.length)
        const res = c.body(null, 200, {
          'content-type': 'application/octet-stream',
          'content-length': String(q.length),
        })
        outgoing.writeHead(200, Object.fromEntries(res.headers))
        // A read that fails or ends early cuts the answer (its headers are gone): the secondary sees a
        // short body.
        send(outgoing).catch(() => {})
        return ALREADY_SENT
      }
      const bytes = await repl().readObject(vault, q.name, q.offset, q.length)
      return c.body(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length), 200, {
        'content-type': 'application/octet-stream',
      })
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${base}/ranges`,
      tags,
      summary:
        'Many ranges of the objects of a GRS vault this site is the primary of, end to end in the order asked',
      request: {
        params: R,
        ...body(
          z
            .object({
              ranges: z
                .array(z.object({ name: z.string().max(512), offset: Count, length: Count }))
                .min(1)
                .max(MAX_RANGES)
                .refine((rs) => rs.reduce((n, r) => n + r.length, 0) <= MAX_RANGE_BYTES, {
                  message: `at most ${MAX_RANGE_BYTES} bytes in all`,
                }),
            })
            .openapi('ObjectRanges'),
        ),
      },
      responses: {
        200: {
          description: 'The bytes of the ranges, end to end',
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const parts = await repl().readRanges(c.req.valid('param').replica, c.req.valid('json').ranges)
      // The parts go out one after the other, never copied into one buffer.
      let next = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(ctl) {
          const p = parts[next++]
          if (p) ctl.enqueue(new Uint8Array(p.buffer as ArrayBuffer, p.byteOffset, p.length))
          else ctl.close()
        },
      })
      return c.body(stream, 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(parts.reduce((n, p) => n + p.length, 0)),
      })
    },
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: `${base}/locks/{lock}`,
      tags,
      summary: "Write the secondary's copy lock on the primary (prune and GC keep the points it names)",
      request: {
        params: LockParams,
        ...body(z.object({ data: z.string().max(700_000) }).openapi('ReplicaLock')),
      },
      responses: { 204: { description: 'Written' }, ...errorResponses },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await repl().putLock(p.replica, p.lock, Buffer.from(c.req.valid('json').data, 'base64'))
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${base}/locks/{lock}`,
      tags,
      summary: "Remove the secondary's copy lock on the primary",
      request: { params: LockParams },
      responses: { 204: { description: 'Removed' }, ...errorResponses },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await repl().putLock(p.replica, p.lock, null)
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${base}/role`,
      tags,
      summary: "This site's role and epoch for a vault (Primary, Secondary or None)",
      request: { params: R },
      responses: { 200: json(Role, 'The role'), ...errorResponses },
    }),
    async (c) => c.json(await repl().role(c.req.valid('param').replica), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${base}/status`,
      tags,
      summary: 'The secondary reports its last sync and lag to the primary',
      request: {
        params: R,
        ...body(
          z
            .object({
              lastSyncAt: z.string().datetime().optional(),
              pointsBehind: z.number().int().min(0),
              bytesBehind: z.number().min(0),
              failure: z.string().max(4000).optional(),
            })
            .openapi('ReplicaSyncReport'),
        ),
      },
      responses: { 204: { description: 'Recorded' }, ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      await repl().recordSync(c.req.valid('param').replica, {
        pointsBehind: b.pointsBehind,
        bytesBehind: b.bytesBehind,
        ...(b.lastSyncAt ? { lastSyncAt: b.lastSyncAt } : {}),
        ...(b.failure ? { error: b.failure } : {}),
      })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${base}/replica`,
      tags,
      summary: 'The primary of a GRS vault asks this site to hold its read-only replica',
      request: {
        params: R,
        ...body(
          z
            .object({
              vaultId: z.string().max(64),
              primarySite: z.string().max(64),
              epoch: z.number().int().min(1),
            })
            .openapi('ReplicaRequest'),
        ),
      },
      responses: { 200: json(Status, 'The replica'), ...errorResponses },
    }),
    async (c) => c.json(await repl().acceptReplica(c.req.valid('param').replica, c.req.valid('json')), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${base}/demote`,
      tags,
      summary: 'After a failover the new primary tells the old one (a newer epoch) to become the secondary',
      request: {
        params: R,
        ...body(
          z
            .object({ epoch: z.number().int().min(1), primarySite: z.string().max(64) })
            .openapi('ReplicaDemotion'),
        ),
      },
      responses: { 200: json(Status, 'The replica'), ...errorResponses },
    }),
    async (c) => c.json(await repl().demote(c.req.valid('param').replica, c.req.valid('json')), 200),
  )
}
