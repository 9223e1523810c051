import type {
  UndeletedRecoveryPoint,
  UndeleteItemRequest,
  UndeleteItemResult,
  VaultSettings,
  VaultSettingsChange,
} from '../../api/index.js'
import { CairnError } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { CREDENTIAL_OPTIONS, unlockIfGiven, v } from './_jobs.js'

// `cairn vault settings`, `cairn rp undelete`, `cairn protection undelete`: soft delete, immutability
// and undelete (docs/security.md, "Backups that survive a stolen admin").

type SettingsView = VaultSettings

const enc = encodeURIComponent

function needVault(opts: Record<string, unknown>): string {
  if (typeof opts.vault !== 'string') throw new CairnError('UsageError', 'this command needs --vault VAULT')
  return opts.vault
}

/** Soft delete, immutability and undelete commands. */
export const vaultSafetyCommands: CommandDef[] = [
  {
    name: 'vault settings',
    summary:
      'Show or change soft delete (Enabled, Disabled, AlwaysOn; 14–180 days) and immutability (Disabled, Enabled, Locked) of a vault; AlwaysOn and Locked cannot be undone',
    args: [{ name: 'vault', help: 'vault name' }],
    options: [
      {
        name: 'soft-delete',
        type: 'string',
        value: 'STATE',
        help: 'Enabled, Disabled or AlwaysOn (one-way)',
      },
      { name: 'soft-delete-days', type: 'number', value: 'N', help: 'days deleted data is kept, 14–180' },
      { name: 'immutability', type: 'string', value: 'STATE', help: 'Disabled, Enabled or Locked (one-way)' },
    ],
    examples: [
      'cairn vault settings main',
      'cairn vault settings main --soft-delete AlwaysOn --soft-delete-days 30',
      'cairn vault settings main --immutability Locked',
    ],
    async run({ args, opts, client, out }) {
      const path = `${v(args.vault!)}/settings`
      // Values as given: the service refuses a state it does not know.
      type Change = Required<VaultSettingsChange>
      const softDelete: Change['softDelete'] = {
        ...(opts['soft-delete'] !== undefined
          ? { state: opts['soft-delete'] as NonNullable<Change['softDelete']['state']> }
          : {}),
        ...(opts['soft-delete-days'] !== undefined
          ? { retentionDays: opts['soft-delete-days'] as number }
          : {}),
      }
      const change: VaultSettingsChange = {
        ...(Object.keys(softDelete).length > 0 ? { softDelete } : {}),
        ...(opts.immutability !== undefined
          ? { immutability: { state: opts.immutability as NonNullable<Change['immutability']['state']> } }
          : {}),
      }
      const s =
        Object.keys(change).length > 0
          ? await client.patch<SettingsView, VaultSettingsChange>(path, change)
          : await client.get<SettingsView>(path)
      out.result(s, (r) =>
        out.keyValues([
          ['soft delete', `${r.softDelete.state}, ${r.softDelete.retentionDays} days`],
          ['immutability', r.immutability.state],
          ['updated', r.updatedAt ?? 'never (defaults)'],
        ]),
      )
    },
  },
  {
    name: 'rp undelete',
    summary: 'Bring back a soft-deleted recovery point of a vault (see rp list --deleted)',
    args: [{ name: 'id', help: 'recovery point id' }],
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'vault name (required)' },
      ...CREDENTIAL_OPTIONS,
    ],
    async run({ args, opts, client, out }) {
      const vault = needVault(opts)
      await unlockIfGiven(client, vault, opts)
      const rp = await client.post<UndeletedRecoveryPoint>(
        `${v(vault)}/softDeletedRecoveryPoints/${enc(args.id!)}/undelete`,
        {},
      )
      out.result(rp, (r) => out.line(`Undeleted recovery point ${r.id}`))
    },
  },
  {
    name: 'protection undelete',
    summary:
      "Bring back a VM's backup data deleted by 'protection stop --delete-data' while soft delete was on; the item returns stopped (resume it)",
    args: [{ name: 'VM', help: 'VM name' }],
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'the vault that held its points (required)' },
      {
        name: 'policy',
        type: 'string',
        value: 'P',
        help: 'policy of the item (default: the one its points were taken under)',
      },
    ],
    async run({ args, opts, client, out }) {
      const vault = needVault(opts)
      const r = await client.post<UndeleteItemResult, UndeleteItemRequest>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}/undelete`,
        opts.policy !== undefined ? { policy: opts.policy as string } : {},
      )
      out.result(r, (x) =>
        out.line(`VM ${x.item.vmName}: ${x.item.state}, ${x.undeleted.length} recovery point(s) undeleted`),
      )
    },
  },
]
