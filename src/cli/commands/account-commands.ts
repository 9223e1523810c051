import { formatBytes } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { accountPath, type ContainerJson, containerPath, splitContainer } from './_disk-names.js'

interface AccountJson {
  name: string
  region: string
  redundancy: string
  createdOn: string
}

/** What the keys routes answer (no other route shows keys). */
interface KeysJson {
  account: string
  keys: [string, string]
}

interface UsageJson {
  segmentBytes: number
  liveBytes: number
  segments: number
}

const showAccount = (out: Parameters<CommandDef['run']>[0]['out'], a: AccountJson) =>
  out.keyValues([
    ['name', a.name],
    ['region', a.region],
    ['redundancy', a.redundancy],
    ['created', a.createdOn],
  ])

/** `cairn account …` and `cairn container …`: storage accounts and their containers. */
export const accountCommands: CommandDef[] = [
  {
    name: 'account create',
    summary: 'Create a storage account',
    args: [{ name: 'NAME', help: '3 to 24 lowercase letters and digits' }],
    options: [
      { name: 'region', type: 'string', value: 'REGION', help: 'region label (default local)' },
      {
        name: 'redundancy',
        type: 'string',
        value: 'SKU',
        help: 'LRS, ZRS, GRS, RA-GRS, GZRS or RA-GZRS (default LRS)',
      },
    ],
    examples: ['cairn account create prodeu1 --region westeurope --redundancy GRS'],
    async run({ args, opts, client, out }) {
      const a = await client.post<AccountJson>('/api/v1/accounts', {
        name: args.NAME,
        ...(opts.region ? { region: opts.region } : {}),
        ...(opts.redundancy ? { redundancy: opts.redundancy } : {}),
      })
      out.result(a, (x) => showAccount(out, x))
    },
  },
  {
    name: 'account list',
    summary: 'List storage accounts',
    async run({ client, out }) {
      const { items } = await client.get<{ items: AccountJson[] }>('/api/v1/accounts')
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'name', value: (a) => a.name },
          { header: 'region', value: (a) => a.region },
          { header: 'redundancy', value: (a) => a.redundancy },
          { header: 'created', value: (a) => a.createdOn },
        ]),
      )
    },
  },
  {
    name: 'account show',
    summary: 'Show a storage account (its keys: cairn account keys)',
    args: [{ name: 'NAME', help: 'account name' }],
    async run({ args, client, out }) {
      const a = await client.get<AccountJson>(accountPath(args.NAME!))
      out.result(a, (x) => showAccount(out, x))
    },
  },
  {
    name: 'account keys',
    summary: 'Print the Shared Key credentials and a connection string for the blob API',
    args: [{ name: 'NAME', help: 'account name' }],
    options: [
      { name: 'blob-url', type: 'string', value: 'URL', help: 'blob endpoint for the connection string' },
    ],
    async run({ args, opts, client, out }) {
      const a = await client.get<KeysJson>(`${accountPath(args.NAME!)}/keys`)
      const info = await client.get<{ listeners: Record<string, string> }>('/api/v1/info')
      const endpoint =
        (opts['blob-url'] as string | undefined) ?? info.listeners.blob ?? 'http://127.0.0.1:10000'
      const connectionString = `DefaultEndpointsProtocol=http;AccountName=${a.account};AccountKey=${a.keys[0]};BlobEndpoint=${endpoint}/${a.account};`
      const keys = {
        account: a.account,
        key1: a.keys[0],
        key2: a.keys[1],
        blobEndpoint: `${endpoint}/${a.account}`,
        connectionString,
      }
      out.result(keys, (k) =>
        out.keyValues([
          ['account', k.account],
          ['key1', k.key1],
          ['key2', k.key2],
          ['blob endpoint', k.blobEndpoint],
          ['connection string', k.connectionString],
        ]),
      )
    },
  },
  {
    name: 'account delete',
    summary: 'Delete a storage account with all its containers, disks and snapshots',
    args: [{ name: 'NAME', help: 'account name' }],
    options: [
      {
        name: 'force',
        type: 'boolean',
        help: 'delete even what protected VMs or recovery points need (those points fall back to the vault)',
      },
    ],
    async run({ args, opts, client, out }) {
      await client.delete(accountPath(args.NAME!), { force: opts.force ? 'true' : undefined })
      out.result({ deleted: args.NAME }, () => out.line(`deleted account ${args.NAME}`))
    },
  },
  {
    name: 'account keys regenerate',
    summary:
      'Replace key1 or key2 of a storage account (the old key, and every SAS signed with it, stop working)',
    args: [{ name: 'NAME', help: 'account name' }],
    options: [{ name: 'key', type: 'string', value: 'KEY', help: 'key1 or key2', default: 'key2' }],
    examples: ['cairn account keys regenerate prodeu1 --key key1'],
    async run({ args, opts, client, out }) {
      const a = await client.post<KeysJson>(`${accountPath(args.NAME!)}/keys/regenerate`, {
        keyName: opts.key,
      })
      out.result({ account: a.account, key1: a.keys[0], key2: a.keys[1] }, (x) =>
        out.keyValues([
          ['account', x.account],
          ['key1', x.key1],
          ['key2', x.key2],
        ]),
      )
    },
  },
  {
    name: 'account usage',
    summary: 'Show the space the disk store uses: data segments and the bytes still visible',
    async run({ client, out }) {
      const u = await client.get<UsageJson>('/api/v1/diskstore/usage')
      out.result(u, (x) =>
        out.keyValues([
          ['segments', x.segments],
          ['segment bytes', `${formatBytes(x.segmentBytes)} (${x.segmentBytes})`],
          ['live bytes', `${formatBytes(x.liveBytes)} (${x.liveBytes})`],
        ]),
      )
    },
  },
  {
    name: 'container create',
    summary: 'Create a container in an account',
    args: [{ name: 'ACCOUNT/CONTAINER', help: 'account and container name' }],
    async run({ args, client, out }) {
      const { account, container } = splitContainer(args['ACCOUNT/CONTAINER']!)
      const c = await client.post<ContainerJson>(`${accountPath(account)}/containers`, { name: container })
      out.result(c, (x) => out.line(`created container ${x.account}/${x.name}`))
    },
  },
  {
    name: 'container list',
    summary: 'List the containers of an account',
    args: [{ name: 'ACCOUNT', help: 'account name (default devstoreaccount1)', optional: true }],
    async run({ args, client, out }) {
      const { items } = await client.get<{ items: ContainerJson[] }>(
        `${accountPath(args.ACCOUNT ?? 'devstoreaccount1')}/containers`,
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'name', value: (c) => c.name },
          { header: 'modified', value: (c) => c.lastModified },
        ]),
      )
    },
  },
  {
    name: 'container delete',
    summary: 'Delete a container with all its disks and snapshots',
    args: [{ name: 'ACCOUNT/CONTAINER', help: 'account and container name' }],
    options: [
      {
        name: 'force',
        type: 'boolean',
        help: 'delete even what protected VMs or recovery points need (those points fall back to the vault)',
      },
    ],
    async run({ args, opts, client, out }) {
      const { account, container } = splitContainer(args['ACCOUNT/CONTAINER']!)
      await client.delete(containerPath(account, container), { force: opts.force ? 'true' : undefined })
      out.result({ deleted: `${account}/${container}` }, () =>
        out.line(`deleted container ${account}/${container}`),
      )
    },
  },
]
