import type {
  Container,
  CreateContainerRequest,
  CreateStorageAccountRequest,
  DiskStoreUsage,
  Info,
  RegenerateKeyRequest,
  StorageAccount,
  StorageAccountKeys,
} from '../../api/index.js'
import { formatBytes } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { accountPath, containerPath, splitContainer } from './_disk-names.js'

const showAccount = (out: Parameters<CommandDef['run']>[0]['out'], a: StorageAccount) =>
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
      const a = await client.post<StorageAccount, CreateStorageAccountRequest>('/api/v1/accounts', {
        name: args.NAME!,
        ...(opts.region ? { region: opts.region as string } : {}),
        ...(opts.redundancy
          ? { redundancy: opts.redundancy as NonNullable<CreateStorageAccountRequest['redundancy']> }
          : {}),
      })
      out.result(a, (x) => showAccount(out, x))
    },
  },
  {
    name: 'account list',
    summary: 'List storage accounts',
    options: [LIMIT_OPTION],
    async run({ opts, client, out }) {
      const items = await client.list<StorageAccount>(
        '/api/v1/accounts',
        {},
        { max: opts.limit as number | undefined },
      )
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
      const a = await client.get<StorageAccount>(accountPath(args.NAME!))
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
      const a = await client.get<StorageAccountKeys>(`${accountPath(args.NAME!)}/keys`)
      const info = await client.get<Info>('/api/v1/info')
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
      const a = await client.post<StorageAccountKeys, RegenerateKeyRequest>(
        `${accountPath(args.NAME!)}/keys/regenerate`,
        { keyName: opts.key as RegenerateKeyRequest['keyName'] },
      )
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
      const u = await client.get<DiskStoreUsage>('/api/v1/diskstore/usage')
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
      const c = await client.post<Container, CreateContainerRequest>(`${accountPath(account)}/containers`, {
        name: container,
      })
      out.result(c, (x) => out.line(`created container ${x.account}/${x.name}`))
    },
  },
  {
    name: 'container list',
    summary: 'List the containers of an account',
    args: [{ name: 'ACCOUNT', help: 'account name (default devstoreaccount1)', optional: true }],
    options: [LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const items = await client.list<Container>(
        `${accountPath(args.ACCOUNT ?? 'devstoreaccount1')}/containers`,
        {},
        { max: opts.limit as number | undefined },
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
