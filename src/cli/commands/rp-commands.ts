import type { SoftDeletedRecoveryPoint } from '../../api/index.js'
import { formatBytes, formatDuration } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { CREDENTIAL_OPTIONS, type RecoveryPointView, unlockIfGiven, v } from './_jobs.js'
import { printVmPoints, vaultOf } from './protection-commands.js'

const vaultOption = {
  name: 'vault',
  type: 'string' as const,
  value: 'VAULT',
  help: 'vault name (required; env CAIRN_VAULT)',
}

/** `cairn rp list|show|delete`. */
export const rpCommands: CommandDef[] = [
  {
    name: 'rp list',
    summary: 'List recovery points, oldest first: of a protected VM (both tiers), or of a vault',
    args: [{ name: 'VM', help: 'a protected VM (then --vault is optional)', optional: true }],
    options: [
      { ...vaultOption, help: 'vault name (required without VM, and with --deleted; env CAIRN_VAULT)' },
      { name: 'item', type: 'string', value: 'NAME', help: 'only this protected item' },
      {
        name: 'deleted',
        type: 'boolean',
        help: 'list the soft-deleted points of the vault instead, with when each is purged',
      },
      LIMIT_OPTION,
      ...CREDENTIAL_OPTIONS,
    ],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      if (args.VM !== undefined && opts.deleted !== true) return printVmPoints(ctx, args.VM)
      const vault = vaultOf(opts)
      await unlockIfGiven(client, vault, opts)
      if (opts.deleted === true) {
        const item = (opts.item as string | undefined) ?? args.VM
        const deleted = await client.list<SoftDeletedRecoveryPoint>(
          `${v(vault)}/softDeletedRecoveryPoints`,
          { item },
          { max: opts.limit as number | undefined },
        )
        return out.result(deleted, (rows) =>
          out.table(rows, [
            { header: 'id', value: (r) => r.id },
            { header: 'item', value: (r) => r.source.name },
            { header: 'state', value: () => 'SoftDeleted' },
            { header: 'deleted', value: (r) => r.deletedAt },
            { header: 'purged', value: (r) => r.purgeAt },
          ]),
        )
      }
      const items = await client.list<RecoveryPointView>(
        `${v(vault)}/recoveryPoints`,
        { item: opts.item as string | undefined },
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'id', value: (r) => r.id },
          { header: 'item', value: (r) => r.source.name },
          { header: 'disks', value: (r) => r.disks.map((d) => d.name).join(',') },
          { header: 'consistency', value: (r) => r.consistency },
          { header: 'added', value: (r) => formatBytes(r.bytesAdded), align: 'right' },
          { header: 'expires', value: (r) => r.expiresAt ?? '' },
        ]),
      )
    },
  },
  {
    name: 'rp show',
    summary: 'Show a recovery point: item, disks, sizes, how each was read, bytes added',
    args: [{ name: 'id', help: 'recovery point id' }],
    options: [vaultOption, ...CREDENTIAL_OPTIONS],
    async run({ args, opts, client, out }) {
      const vault = vaultOf(opts)
      await unlockIfGiven(client, vault, opts)
      const rp = await client.get<RecoveryPointView>(
        `${v(vault)}/recoveryPoints/${encodeURIComponent(args.id!)}`,
      )
      out.result(rp, (r) => {
        out.keyValues([
          ['id', r.id],
          ['item', `${r.source.kind} ${r.source.name}`],
          ['consistency', r.consistency],
          ['created', r.createdAt],
          ['expires', r.expiresAt ?? 'never'],
          ['parent', r.parent ?? 'none'],
          ['added', formatBytes(r.bytesAdded)],
          ['duration', formatDuration(r.durationMs)],
        ])
        out.line()
        out.table(r.disks, [
          { header: 'disk', value: (d) => d.name },
          { header: 'lun', value: (d) => d.lun },
          { header: 'size', value: (d) => formatBytes(d.size), align: 'right' },
          { header: 'mode', value: (d) => d.mode },
          { header: 'read', value: (d) => formatBytes(d.bytesScanned), align: 'right' },
          { header: 'new', value: (d) => formatBytes(d.bytesNew), align: 'right' },
        ])
      })
    },
  },
  {
    name: 'rp delete',
    summary:
      'Delete a recovery point (vault gc frees its space); while soft delete is on it is soft-deleted until purged (rp undelete)',
    args: [{ name: 'id', help: 'recovery point id' }],
    options: [vaultOption, ...CREDENTIAL_OPTIONS],
    async run({ args, opts, client, out }) {
      const vault = vaultOf(opts)
      await unlockIfGiven(client, vault, opts)
      await client.delete(`${v(vault)}/recoveryPoints/${encodeURIComponent(args.id!)}`)
      const soft = (
        await client.list<SoftDeletedRecoveryPoint>(`${v(vault)}/softDeletedRecoveryPoints`, {})
      ).find((p) => p.id === args.id)
      out.result(
        {
          deleted: args.id,
          state: soft ? 'SoftDeleted' : 'Deleted',
          ...(soft ? { purgeAt: soft.purgeAt } : {}),
        },
        () =>
          out.line(
            soft
              ? `Soft-deleted recovery point ${args.id}: purged at ${soft.purgeAt} unless undeleted (cairn rp undelete ${args.id} --vault ${vault})`
              : `Deleted recovery point ${args.id}`,
          ),
      )
    },
  },
]
