import { createRoute, z } from '@hono/zod-openapi'
import { clean } from './_clean.js'
import {
  A,
  Account,
  AccountKeys,
  AccountParams,
  accountJson,
  body,
  C,
  Container,
  ContainerParams,
  Count,
  deleteGuard,
  Force,
  json,
  Metadata,
} from './_disk-schemas.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses } from './schemas.js'

/** Registers the routes of storage accounts and containers (under /api/v1/accounts). */
export function registerAccountRoutes(app: ApiApp, ctx: ApiContext): void {
  const store = () => ctx.diskStore
  const guard = () => deleteGuard(ctx)
  const tags = ['Disks']

  // ------------------------------------------------------------ accounts
  app.openapi(
    createRoute({
      method: 'get',
      path: A,
      tags,
      summary: 'List storage accounts',
      responses: { 200: json(z.object({ items: z.array(Account) }), 'Storage accounts'), ...errorResponses },
    }),
    (c) => c.json({ items: store().listAccounts().map(accountJson) }, 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: A,
      tags,
      summary: 'Create a storage account',
      request: body(
        z.object({
          name: z.string().openapi({ example: 'prodeu1' }),
          region: z.string().optional(),
          redundancy: z.enum(['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']).optional(),
        }),
      ),
      responses: { 201: json(Account, 'The new account'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const opts: { region?: string; redundancy?: string } = {}
      if (b.region !== undefined) opts.region = b.region
      if (b.redundancy !== undefined) opts.redundancy = b.redundancy
      return c.json(accountJson(await store().createAccount(b.name, opts)), 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${A}/{account}`,
      tags,
      summary: 'Show a storage account',
      request: { params: AccountParams },
      responses: { 200: json(Account, 'The account'), ...errorResponses },
    }),
    (c) => c.json(accountJson(store().getAccount(c.req.valid('param').account)), 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${A}/{account}/keys`,
      tags,
      summary: 'The two Shared Keys of a storage account (no other route answers them)',
      request: { params: AccountParams },
      responses: { 200: json(AccountKeys, 'The keys'), ...errorResponses },
    }),
    (c) => {
      const a = store().getAccount(c.req.valid('param').account)
      return c.json({ account: a.name, keys: a.keys }, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${A}/{account}`,
      tags,
      summary:
        'Delete a storage account with all its containers, disks and snapshots (refused with DiskInUse while protection depends on a disk in it, unless force=true)',
      request: { params: AccountParams, query: Force },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const force = c.req.valid('query').force === 'true'
      await guard().deleteAccount(c.req.valid('param').account, { force })
      return c.body(null, 204)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: `${A}/{account}/keys/regenerate`,
      tags,
      summary:
        'Replace key1 or key2 of a storage account: requests and SAS signed with the old key fail at once, the other key keeps working',
      request: { params: AccountParams, ...body(z.object({ keyName: z.enum(['key1', 'key2']) })) },
      responses: { 200: json(AccountKeys, 'The keys, one of them new'), ...errorResponses },
    }),
    async (c) => {
      const which = c.req.valid('json').keyName === 'key1' ? 1 : 2
      const a = await store().regenerateAccountKey(c.req.valid('param').account, which)
      return c.json({ account: a.name, keys: a.keys }, 200)
    },
  )

  // ------------------------------------------------------------ containers
  app.openapi(
    createRoute({
      method: 'get',
      path: C,
      tags,
      summary: 'List the containers of an account',
      request: {
        params: AccountParams,
        query: z.object({
          prefix: z.string().optional(),
          marker: z.string().optional(),
          maxResults: Count.optional(),
        }),
      },
      responses: {
        200: json(z.object({ items: z.array(Container), nextMarker: z.string().optional() }), 'Containers'),
        ...errorResponses,
      },
    }),
    (c) => c.json(store().listContainers(c.req.valid('param').account, clean(c.req.valid('query'))), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: C,
      tags,
      summary: 'Create a container',
      request: {
        params: AccountParams,
        ...body(z.object({ name: z.string(), metadata: Metadata.optional() })),
      },
      responses: { 201: json(Container, 'The new container'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const info = await store().createContainer(
        c.req.valid('param').account,
        b.name,
        b.metadata ? { metadata: b.metadata } : {},
      )
      return c.json(info, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: `${C}/{container}`,
      tags,
      summary: 'Show a container',
      request: { params: ContainerParams },
      responses: { 200: json(Container, 'The container'), ...errorResponses },
    }),
    (c) => {
      const p = c.req.valid('param')
      return c.json(store().getContainer(p.account, p.container), 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: `${C}/{container}`,
      tags,
      summary:
        'Delete a container with all its disks and snapshots (refused with DiskInUse while protection depends on a disk in it, unless force=true)',
      request: { params: ContainerParams, query: Force },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      const p = c.req.valid('param')
      await guard().deleteContainer(p.account, p.container, { force: c.req.valid('query').force === 'true' })
      return c.body(null, 204)
    },
  )
}
