import type { IncomingMessage } from 'node:http'
import { createRoute, z } from '@hono/zod-openapi'
import type { DiskGeoReplication } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { A, AccountParams, body, json } from './_disk-schemas.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses } from './schemas.js'

// Disk geo-redundancy (docs/replication.md, "Disks"): an account's redundancy and pair, its replication
// status, a round now, failover on the secondary; and the two routes the paired site's primary calls.

/** Largest replication message: 8 MiB of pages and their ranges. */
const MAX_MESSAGE = 16 * 1024 * 1024

export const AccountReplication = z
  .object({
    account: z.string(),
    redundancy: z.string(),
    role: z.enum(['primary', 'secondary', 'none']),
    pair: z.string().optional(),
    status: z.enum(['live', 'bootstrap', 'unavailable']).optional(),
    lastSyncTime: z.string().optional(),
    lagSeconds: z.number().optional(),
    lastError: z.string().optional(),
    failedOverAt: z.string().optional(),
  })
  .openapi('AccountReplication')

export const UpdateAccountRequest = z
  .object({
    redundancy: z.enum(['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']).optional(),
    pair: z.string().optional().openapi({ description: 'the paired site GRS and RA-GRS replicate to' }),
  })
  .openapi('UpdateStorageAccountRequest')

export const RoundReport = z
  .object({
    account: z.string(),
    syncTime: z.number(),
    disks: z.number(),
    points: z.number(),
    changedBytes: z.number(),
    wireBytes: z.number(),
    resumedBytes: z
      .number()
      .openapi({ description: 'bytes of points cut short earlier that were not sent again' }),
  })
  .openapi('ReplicationRoundReport')

export const FailoverReport = z
  .object({
    account: z.string(),
    role: z.literal('primary'),
    failedOverAt: z.string(),
    lastSyncTime: z.string().optional(),
    dataLossWindowSeconds: z.number().optional(),
    disksRolledBack: z.number(),
    disks: z.number(),
    redundancy: z.string(),
  })
  .openapi('AccountFailoverReport')

const ReplicaState = z
  .object({
    account: z.string(),
    role: z.enum(['primary', 'secondary', 'none']),
    lastSyncTime: z.number().optional(),
    committed: z.record(z.string(), z.string()),
    applying: z
      .record(
        z.string(),
        z.object({
          target: z.string(),
          base: z.string().nullable(),
          plan: z.string(),
          chunks: z.array(z.number()),
        }),
      )
      .optional(),
    snapshots: z.record(z.string(), z.array(z.string())).optional(),
  })
  .openapi('DiskReplicaState')

const ReceiveAnswer = z.object({ kind: z.string(), applied: z.boolean() }).openapi('DiskReplicationAnswer')

/** Registers the routes of disk geo-replication. */
export function registerDiskGeoRoutes(app: ApiApp, ctx: ApiContext): void {
  const geo = (): DiskGeoReplication => {
    if (ctx.diskGeo === undefined)
      throw new CairnError('ServiceUnavailable', 'Disk geo-replication is not running on this service')
    return ctx.diskGeo
  }
  const tags = ['Disks']

  app.openapi(
    createRoute({
      method: 'patch',
      path: `${A}/{account}`,
      tags,
      summary:
        "Change a storage account's redundancy: GRS and RA-GRS replicate its disks to the paired site `pair`, LRS stops",
      request: { params: AccountParams, ...body(UpdateAccountRequest) },
      responses: { 200: json(AccountReplication, 'The account and its replication'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const opts: { redundancy?: string; pair?: string } = {}
      if (b.redundancy !== undefined) opts.redundancy = b.redundancy
      if (b.pair !== undefined) opts.pair = b.pair
      return c.json(await geo().configure(c.req.valid('param').account, opts), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${A}/{account}/replication`,
      tags,
      summary: "A storage account's geo-replication: role, pair, status, LastSyncTime and lag",
      request: { params: AccountParams },
      responses: { 200: json(AccountReplication, 'The replication'), ...errorResponses },
    }),
    (c) => c.json(geo().replication(c.req.valid('param').account), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${A}/{account}/replication/sync`,
      tags,
      summary: 'Run one replication round of a primary account now and wait for it',
      request: { params: AccountParams, ...body(z.object({}).strict().openapi('AccountSyncRequest')) },
      responses: { 200: json(RoundReport, 'What the round shipped'), ...errorResponses },
    }),
    async (c) => c.json(await geo().syncNow(c.req.valid('param').account), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${A}/{account}/failover`,
      tags,
      summary:
        'Make this site’s geo-replica of the account its primary; writes the old primary took after LastSyncTime are lost',
      request: { params: AccountParams, ...body(z.object({}).strict().openapi('AccountFailoverRequest')) },
      responses: { 200: json(FailoverReport, 'The failover and its data loss window'), ...errorResponses },
    }),
    async (c) => c.json(await geo().failover(c.req.valid('param').account), 200),
  )

  // ------------------------------------------------------------ the paired site's primary
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/geo/disks',
      tags: ['Sites'],
      summary: 'One disk replication message from the primary site (Site Peer token; docs/replication.md)',
      request: {
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
      },
      responses: { 200: json(ReceiveAnswer, 'Applied, or already applied'), ...errorResponses },
    }),
    async (c) => {
      const declared = c.req.header('content-length')
      if (declared !== undefined && Number(declared) > MAX_MESSAGE)
        throw new CairnError(
          'PayloadTooLarge',
          `Cannot accept a replication message of ${declared} bytes: the limit is ${MAX_MESSAGE} bytes`,
        )
      // The Node request itself when the body is still unread (no web-stream copy of each chunk).
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
      // (A web ReadableStream is async-iterable on Node; the DOM-less types do not say so.)
      const source: IncomingMessage | AsyncIterable<Uint8Array> =
        incoming !== undefined && !incoming.readableDidRead
          ? incoming
          : ((c.req.raw.body ?? []) as unknown as AsyncIterable<Uint8Array>)
      return c.json(await geo().receiveStream(source, MAX_MESSAGE), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/geo/disks/{account}',
      tags: ['Sites'],
      summary: 'What this site holds of a replicated account (Site Peer token)',
      request: { params: AccountParams },
      responses: { 200: json(ReplicaState, 'The replica'), ...errorResponses },
    }),
    async (c) => c.json(await geo().replicaState(c.req.valid('param').account), 200),
  )
}
