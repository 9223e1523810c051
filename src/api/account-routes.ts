import { createRoute, z } from '@hono/zod-openapi'
import { CairnError } from '../util/index.js'
import { clean } from './_clean.js'
import {
  A,
  Account,
  AccountKeys,
  AccountList,
  AccountParams,
  accountJson,
  body,
  C,
  Container,
  ContainerList,
  ContainerParams,
  CreateAccountRequest,
  CreateContainerRequest,
  deleteGuard,
  Force,
  json,
  RegenerateKeyRequest,
} from './_disk-schemas.js'
import { markerPage, paginate } from './_page.js'
import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses, PageQuery } from './schemas.js'

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
      summary: 'List storage accounts, by name',
      request: { query: PageQuery },
      responses: { 200: json(AccountList, 'Storage accounts'), ...errorResponses },
    }),
    (c) => {
      const accounts = store().listAccounts().map(accountJson)
      return c.json(
        paginate(accounts, (a) => [a.name], c.req.valid('query'), 'accounts'),
        200,
      )
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: A,
      tags,
      summary: 'Create a storage account',
      request: body(CreateAccountRequest),
      responses: { 201: json(Account, 'The new account'), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid('json')
      const opts: { region?: string; redundancy?: string } = {}
      if (b.region !== undefined) opts.region = b.region
      if (b.redundancy !== undefined) opts.redundancy = b.redundancy
      if (b.pair !== undefined && ctx.diskGeo === undefined)
        throw new CairnError('ServiceUnavailable', 'Disk geo-replication is not running on this service')
      const created = await store().createAccount(b.name, opts)
      if (b.pair === undefined) return c.json(accountJson(created), 201)
      try {
        await ctx.diskGeo?.configure(b.name, { pair: b.pair })
      } catch (err) {
        await store().deleteAccount(b.name)
        throw err
      }
      return c.json(accountJson(store().getAccount(b.name)), 201)
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
      request: { params: AccountParams, ...body(RegenerateKeyRequest) },
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
      summary: 'List the containers of an account, by name',
      request: { params: AccountParams, query: PageQuery.extend({ prefix: z.string().optional() }) },
      responses: { 200: json(ContainerList, 'Containers'), ...errorResponses },
    }),
    (c) => {
      const { prefix, ...q } = c.req.valid('query')
      const account = c.req.valid('param').account
      const page = markerPage(q, 'containers', (marker, maxResults) =>
        store().listContainers(account, { ...clean({ prefix, marker }), maxResults }),
      )
      return c.json(page, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: C,
      tags,
      summary: 'Create a container',
      request: {
        params: AccountParams,
        ...body(CreateContainerRequest),
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
