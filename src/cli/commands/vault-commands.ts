import type {
  CreateVaultRequest,
  GcResult,
  PruneReport,
  PruneRequest,
  Vault,
  VaultCredentials,
  VaultDeleted,
  VaultUsage,
  VerifyRequest,
  VerifyResult,
} from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { CREDENTIAL_OPTIONS, credentialFields, followJob, type Job, unlockIfGiven, v } from './_jobs.js'

/** A vault as the API answers it. */
type VaultView = Vault

const vaultArg = [{ name: 'vault', help: 'vault name' }]

/** `cairn vault create|list|show|unlock|usage|verify|prune|gc|key|delete`. */
export const vaultCommands: CommandDef[] = [
  {
    name: 'vault create',
    summary: 'Create a vault (encrypted with a passphrase or key file when one is given)',
    args: [{ name: 'name', help: 'vault name' }],
    options: [
      {
        name: 'location',
        type: 'string',
        value: 'DIR',
        help: 'absolute folder on the service host, empty or absent (default DATA/vaults/NAME)',
      },
      { name: 'attach', type: 'boolean', help: 'register a vault that already exists at --location' },
      {
        name: 'same-key-as',
        type: 'string',
        value: 'VAULT',
        help: 'encrypt with the vault key of this unlocked vault (copies between them send ciphertext)',
      },
      {
        name: 'redundancy',
        type: 'string',
        value: 'LRS|GRS',
        help: 'GRS: a read-only replica on the paired site --pair (docs/replication.md); default LRS, fixed after the first backup',
      },
      {
        name: 'pair',
        type: 'string',
        value: 'PAIR',
        help: 'the paired site of a GRS vault (cairn pair list)',
      },
      ...CREDENTIAL_OPTIONS,
    ],
    examples: [
      'cairn vault create main',
      'CAIRN_VAULT_PASSPHRASE=... cairn vault create offsite --location /mnt/backup/offsite',
    ],
    async run({ args, opts, client, out }) {
      const body: CreateVaultRequest = {
        name: args.name!,
        ...(opts.location ? { location: opts.location as string } : {}),
        ...(opts.attach ? { attach: true } : {}),
        ...(opts['same-key-as'] ? { sameKeyAs: opts['same-key-as'] as string } : {}),
        ...(opts.redundancy ? { redundancy: redundancyOf(opts.redundancy) } : {}),
        ...(opts.pair ? { pair: opts.pair as string } : {}),
        ...(await credentialFields(opts)),
      }
      const info = await client.post<VaultView, CreateVaultRequest>('/api/v1/vaults', body)
      out.result(info, (i) =>
        out.line(`Created vault ${i.name} at ${i.location}${i.encrypted ? ' (encrypted)' : ''}`),
      )
    },
  },
  {
    name: 'vault list',
    summary: 'List vaults',
    options: [LIMIT_OPTION],
    async run({ opts, client, out }) {
      const items = await client.list<VaultView>(
        '/api/v1/vaults',
        {},
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'name', value: (r) => r.name },
          { header: 'encrypted', value: (r) => (r.encrypted ? (r.unlocked ? 'yes' : 'locked') : 'no') },
          { header: 'location', value: (r) => r.location },
          {
            header: 'redundancy',
            value: (r) =>
              r.replication?.redundancy === 'GRS' ? `GRS ${r.replication.role ?? ''}`.trimEnd() : 'LRS',
          },
          { header: 'created', value: (r) => r.createdAt },
        ]),
      )
    },
  },
  {
    name: 'vault show',
    summary: 'Show a vault',
    args: vaultArg,
    async run({ args, client, out }) {
      const info = await client.get<VaultView>(v(args.vault!))
      out.result(info, (i) => {
        const { replication, ...rest } = i
        // One list, so the replication lines line up with the rest.
        out.keyValues([
          ...Object.entries(rest),
          ...Object.entries(replication ?? {}).map(([k, x]): [string, unknown] => [`replication ${k}`, x]),
        ])
      })
    },
  },
  {
    name: 'vault redundancy',
    summary: 'Set the redundancy of a vault before its first backup: LRS, or GRS with --pair',
    args: [...vaultArg, { name: 'redundancy', help: 'LRS or GRS' }],
    options: [{ name: 'pair', type: 'string', value: 'PAIR', help: 'the paired site of a GRS vault' }],
    async run({ args, opts, client, out }) {
      const r = await client.put<ReplicationStatus>(`${v(args.vault!)}/redundancy`, {
        redundancy: redundancyOf(args.redundancy),
        ...(opts.pair ? { pair: opts.pair as string } : {}),
      })
      out.result(r, (x) =>
        out.line(`Vault ${args.vault} is ${x.redundancy}${x.pair ? ` (pair ${x.pair})` : ''}`),
      )
    },
  },
  {
    name: 'vault failover',
    summary: "Promote this site's read-only replica of a GRS vault to primary (run on the secondary)",
    description:
      'Points the old primary committed after the last sync are not in the replica: the data loss window is the time since lastSyncAt. The old primary, when it answers, becomes the secondary and catches up from here.',
    args: vaultArg,
    async run({ args, client, out }) {
      const r = await client.post<ReplicationStatus>(`${v(args.vault!)}/failover`, {})
      out.result(r, (x) =>
        out.line(
          `Vault ${args.vault} is primary here now (epoch ${x.epoch}); last sync ${x.lastSyncAt ?? 'never'}; old primary ${x.oldPrimaryNotified ? 'told' : 'not reachable: it becomes the secondary when it answers'}`,
        ),
      )
    },
  },
  {
    name: 'vault unlock',
    summary: 'Give an encrypted vault its passphrase or key file; the service keeps the key in memory',
    args: vaultArg,
    options: CREDENTIAL_OPTIONS,
    async run({ args, opts, client, out }) {
      const info = await client.post<VaultView, VaultCredentials>(
        `${v(args.vault!)}/unlock`,
        await credentialFields(opts),
      )
      out.result(info, (i) => out.line(`Vault ${i.name} is unlocked`))
    },
  },
  {
    name: 'vault usage',
    summary: 'Vault size: logical, stored and new bytes per recovery point, deduplication, compression',
    args: vaultArg,
    options: CREDENTIAL_OPTIONS,
    async run({ args, opts, client, out }) {
      await unlockIfGiven(client, args.vault!, opts)
      const u = await client.get<VaultUsage>(`${v(args.vault!)}/usage`)
      out.result(u, (x) => {
        out.keyValues([
          ['recovery points', x.recoveryPoints],
          ['packs', x.packs],
          ['logical (all points)', formatBytes(x.logicalBytes)],
          ['data held', `${formatBytes(x.dataBytes)} (every stored copy, before compression)`],
          ['stored', formatBytes(x.storedBytes)],
          ['deduplication', `${x.deduplicationRatio.toFixed(2)}x (logical / data held)`],
          ['compression', `${x.compressionRatio.toFixed(2)}x (data held / its stored size)`],
          ['overall', `${x.overallRatio.toFixed(2)}x (logical / stored)`],
        ])
        out.line()
        out.table(x.perRecoveryPoint, [
          { header: 'recovery point', value: (r) => r.id },
          { header: 'logical', value: (r) => formatBytes(r.logicalBytes), align: 'right' },
          { header: 'new', value: (r) => formatBytes(r.bytesAdded), align: 'right' },
        ])
      })
    },
  },
  {
    name: 'vault verify',
    summary:
      'Check that every recovery point can be restored; re-read, decrypt and re-hash every pack (or a sample)',
    description:
      'Checks every recovery point as a restore reads it (manifest, index pages, each extent against its\n' +
      'chunk), then re-reads the packs. --read-data also restores every point through the restore code\n' +
      'into a target that discards the bytes (each leaf shared between points once). A point that cannot\n' +
      'be restored is a problem naming it; the exit status is then 6.',
    args: vaultArg,
    options: [
      {
        name: 'sample',
        type: 'number',
        value: 'FRACTION',
        help: 'check this share of packs, 0–1 (default all)',
      },
      { name: 'read-data', type: 'boolean', help: 'restore every point into a discarding target' },
      ...CREDENTIAL_OPTIONS,
    ],
    async run({ args, opts, client, out, signal }) {
      await unlockIfGiven(client, args.vault!, opts)
      const job = await client.post<Job, VerifyRequest>(`${v(args.vault!)}/verify`, {
        ...(opts.sample !== undefined ? { sample: opts.sample as number } : {}),
        ...(opts['read-data'] ? { readData: true } : {}),
      })
      const done = await followJob(client, out, job, 'verify', signal)
      const r = done.result as VerifyResult
      out.result(r, (x) => {
        out.line(
          `Checked ${x.recoveryPoints} recovery points, ${x.packsChecked} packs, ${x.chunksChecked} chunks, ${formatBytes(x.bytesChecked)}`,
        )
        if (opts['read-data']) out.line(`Restored ${formatBytes(x.bytesRestored)} through the restore code`)
        for (const p of x.problems) out.line(`PROBLEM ${p.object}: ${p.message}`)
        for (const id of x.unrestorable) out.line(`UNRESTORABLE ${id}`)
        if (x.problems.length === 0) out.line('No problems found')
      })
      return r.problems.length ? 6 : 0
    },
  },
  {
    name: 'vault prune',
    summary: 'Remove expired recovery points and those no retention rule keeps (gc frees the space)',
    args: vaultArg,
    options: [
      { name: 'keep-last', type: 'number', value: 'N', help: 'keep the newest N' },
      {
        name: 'keep-hourly',
        type: 'number',
        value: 'N',
        help: 'keep the newest of each of the last N hours',
      },
      { name: 'keep-daily', type: 'number', value: 'N', help: 'keep the newest of each of the last N days' },
      {
        name: 'keep-weekly',
        type: 'number',
        value: 'N',
        help: 'keep the newest of each of the last N weeks',
      },
      {
        name: 'keep-monthly',
        type: 'number',
        value: 'N',
        help: 'keep the newest of each of the last N months',
      },
      {
        name: 'keep-yearly',
        type: 'number',
        value: 'N',
        help: 'keep the newest of each of the last N years',
      },
      { name: 'item', type: 'string', value: 'NAME', help: 'only recovery points of this item' },
      {
        name: 'include-policy-points',
        type: 'boolean',
        help: 'also prune the points of protected VMs (by default their backup policy manages them)',
      },
      { name: 'dry-run', type: 'boolean', help: 'show what would be removed' },
      ...CREDENTIAL_OPTIONS,
    ],
    examples: ['cairn vault prune main --keep-daily 7 --keep-weekly 4 --keep-monthly 12'],
    async run({ args, opts, client, out }) {
      await unlockIfGiven(client, args.vault!, opts)
      const body: PruneRequest = {}
      for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
        const val = opts[`keep-${k}`]
        if (val !== undefined)
          body[`keep${k[0]!.toUpperCase()}${k.slice(1)}` as `keep${Capitalize<typeof k>}`] = val as number
      }
      if (opts.item) body.item = opts.item as string
      if (opts['dry-run']) body.dryRun = true
      if (opts['include-policy-points']) body.includePolicyPoints = true
      const r = await client.post<PruneReport, PruneRequest>(`${v(args.vault!)}/prune`, body)
      out.result(r, (x) => {
        for (const id of x.removed) out.line(`${x.dryRun ? 'would remove' : 'removed'} ${id}`)
        out.line(
          `${x.kept.length} kept, ${x.removed.length} ${x.dryRun ? 'to remove' : 'removed'}` +
            (x.skipped.length > 0
              ? `, ${x.skipped.length} of protected VMs left to their backup policy (--include-policy-points prunes them too)`
              : ''),
        )
      })
    },
  },
  {
    name: 'vault gc',
    summary: 'Reclaim the space of packs no recovery point needs (safe while backups run)',
    args: vaultArg,
    options: CREDENTIAL_OPTIONS,
    async run({ args, opts, client, out, signal }) {
      await unlockIfGiven(client, args.vault!, opts)
      const job = await client.post<Job>(`${v(args.vault!)}/gc`)
      const done = await followJob(client, out, job, 'gc', signal)
      const r = done.result as GcResult
      out.result(r, (x) => {
        if (x.skipped) out.line(`GC skipped: ${x.skipped}`)
        out.line(
          `Deleted ${x.packsDeleted} packs, repacked ${x.packsRepacked}, reclaimed ${formatBytes(Math.max(0, x.bytesReclaimed))}`,
        )
      })
    },
  },
  {
    name: 'vault key',
    summary: 'Rewrap the vault key with a new passphrase or key file (no data is rewritten)',
    args: vaultArg,
    options: [
      { name: 'new-passphrase-file', type: 'string', value: 'FILE', help: 'file holding the new passphrase' },
      { name: 'new-key-file', type: 'string', value: 'FILE', help: 'new key file' },
      ...CREDENTIAL_OPTIONS,
    ],
    async run({ args, opts, client, out }) {
      await unlockIfGiven(client, args.vault!, opts)
      const next = await credentialFields({
        ...(opts['new-passphrase-file'] ? { 'passphrase-file': opts['new-passphrase-file'] } : {}),
        ...(opts['new-key-file'] ? { 'key-file': opts['new-key-file'] } : {}),
      })
      const info = await client.post<VaultView, VaultCredentials>(`${v(args.vault!)}/key`, next)
      out.result(info, (i) => out.line(`Rewrapped the key of vault ${i.name}`))
    },
  },
  {
    name: 'vault delete',
    summary: 'Forget a vault; --delete-data removes its files too',
    description:
      '--delete-data is refused while the vault holds recovery points or protected items (stop their\n' +
      'protection and delete the points first). It removes only the files of the vault layout, and the\n' +
      'folder when nothing else is left in it.',
    args: vaultArg,
    options: [
      {
        name: 'delete-data',
        type: 'boolean',
        help: "delete the vault's files as well (refused while it holds recovery points)",
      },
    ],
    async run({ args, opts, client, out }) {
      // Where it lives, to say how to register it again: without --delete-data its files stay. A refusal
      // (no such vault, no permission) is left to the DELETE itself, so it is answered and audited as such.
      const location = await client.get<VaultView>(v(args.vault!)).then(
        (x) => x.location,
        () => undefined,
      )
      const r = await client.delete<VaultDeleted>(v(args.vault!), {
        deleteData: opts['delete-data'] ? 'true' : undefined,
      })
      out.result(r, (x) => {
        out.line(
          x.dataDeleted
            ? `Deleted vault ${x.name} and its files`
            : location === undefined
              ? `Forgot vault ${x.name}; its files stay in place (vault create --attach registers it again)`
              : `Forgot vault ${x.name}; its files stay in ${location} (cairn vault create ${x.name} --location ${location} --attach registers it again)`,
        )
        if (x.left.length > 0) out.line(`Left in place (not vault files): ${x.left.join(', ')}`)
      })
    },
  },
]

function redundancyOf(value: unknown): 'LRS' | 'GRS' {
  const r = String(value).toUpperCase()
  if (r !== 'LRS' && r !== 'GRS')
    throw new CairnError('UsageError', `Redundancy must be LRS or GRS, not "${String(value)}"`)
  return r
}

type ReplicationStatus = NonNullable<VaultView['replication']> & { oldPrimaryNotified?: boolean }
