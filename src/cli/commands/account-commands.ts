import type {
  AccountFailoverReport,
  AccountReplication,
  Container,
  CreateContainerRequest,
  CreateStorageAccountRequest,
  DiskStoreUsage,
  Info,
  RegenerateKeyRequest,
  ReplicationRoundReport,
  StorageAccount,
  StorageAccountKeys,
  UpdateStorageAccountRequest,
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

const showReplication = (out: Parameters<CommandDef['run']>[0]['out'], r: AccountReplication) =>
  out.keyValues([
    ['account', r.account],
    ['redundancy', r.redundancy],
    ['role', r.role],
    ['pair', r.pair ?? ''],
    ['status', r.status ?? ''],
    ['last sync time', r.lastSyncTime ?? ''],
    ['lag', r.lagSeconds === undefined ? '' : `${r.lagSeconds} s`],
    ['last error', r.lastError ?? ''],
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
      {
        name: 'pair',
        type: 'string',
        value: 'PAIR',
        help: 'GRS and RA-GRS: the paired site (cairn pair list) its disks replicate to',
      },
    ],
    examples: ['cairn account create prodeu1 --region westeurope --redundancy RA-GRS --pair west'],
    async run({ args, opts, client, out }) {
      const a = await client.post<StorageAccount, CreateStorageAccountRequest>('/api/v1/accounts', {
        name: args.NAME!,
        ...(opts.region ? { region: opts.region as string } : {}),
        ...(opts.pair ? { pair: opts.pair as string } : {}),
        ...(opts.redundancy
          ? { redundancy: opts.redundancy as NonNullable<CreateStorageAccountRequest['redundancy']> }
          : {}),
      })
      out.result(a, (x) => showAccount(out, x))
    },
  },
  {
    name: 'account update',
    summary:
      "Change a storage account's redundancy: GRS and RA-GRS replicate its disks to a paired site, LRS stops",
    args: [{ name: 'NAME', help: 'account name' }],
    options: [
      { name: 'redundancy', type: 'string', value: 'SKU', help: 'LRS, ZRS, GRS, RA-GRS, GZRS or RA-GZRS' },
      { name: 'pair', type: 'string', value: 'PAIR', help: 'the paired site to replicate to (GRS, RA-GRS)' },
    ],
    examples: ['cairn account update prodeu1 --redundancy RA-GRS --pair west'],
    async run({ args, opts, client, out }) {
      const r = await client.patch<AccountReplication, UpdateStorageAccountRequest>(accountPath(args.NAME!), {
        ...(opts.redundancy
          ? { redundancy: opts.redundancy as NonNullable<UpdateStorageAccountRequest['redundancy']> }
          : {}),
        ...(opts.pair ? { pair: opts.pair as string } : {}),
      })
      out.result(r, (x) => showReplication(out, x))
    },
  },
  {
    name: 'account replication',
    summary: "Show a storage account's geo-replication: role, pair, status, LastSyncTime and lag",
    args: [{ name: 'NAME', help: 'account name' }],
    async run({ args, client, out }) {
      const r = await client.get<AccountReplication>(`${accountPath(args.NAME!)}/replication`)
      out.result(r, (x) => showReplication(out, x))
    },
  },
  {
    name: 'account sync',
    summary: 'Ship the changed disks of a GRS or RA-GRS account to its paired site now, and wait',
    args: [{ name: 'NAME', help: 'account name (on its primary site)' }],
    async run({ args, client, out }) {
      const r = await client.post<ReplicationRoundReport>(`${accountPath(args.NAME!)}/replication/sync`, {})
      out.result(r, (x) =>
        out.keyValues([
          ['account', x.account],
          ['synced to', new Date(x.syncTime).toISOString()],
          ['disks', x.disks],
          ['points shipped', x.points],
          ['changed bytes', `${formatBytes(x.changedBytes)} (${x.changedBytes})`],
          ['bytes sent', `${formatBytes(x.wireBytes)} (${x.wireBytes})`],
        ]),
      )
    },
  },
  {
    name: 'account failover',
    summary:
      "Make this site's geo-replica of a storage account its primary (writes the old primary took after LastSyncTime are lost)",
    args: [{ name: 'NAME', help: 'account name (on the secondary site)' }],
    examples: ['cairn account failover prodeu1'],
    async run({ args, client, out }) {
      const r = await client.post<AccountFailoverReport>(`${accountPath(args.NAME!)}/failover`, {})
      out.result(r, (x) =>
        out.keyValues([
          ['account', x.account],
          ['role', `${x.role} (redundancy ${x.redundancy})`],
          ['failed over', x.failedOverAt],
          ['last sync time', x.lastSyncTime ?? 'never'],
          [
            'data loss window',
            x.dataLossWindowSeconds === undefined
              ? 'everything: no complete sync arrived'
              : `writes to the old primary after ${x.lastSyncTime} (up to ${x.dataLossWindowSeconds.toFixed(1)} s before the failover) are lost`,
          ],
          ['disks', `${x.disks} (${x.disksRolledBack} rolled back to their last complete point)`],
        ]),
      )
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
