import type { GuardRequest, GuardStatus } from '../../api/index.js'
import { CairnError } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { v } from './_jobs.js'

// `cairn guard …`: multi-user authorization (docs/security.md). A vault's resource guard holds back
// critical operations until another identity with the Guard role approves a request.

type GuardStatusView = GuardStatus
type GuardRequestView = GuardRequest

const OPERATIONS =
  'reduceSoftDelete, disableImmutability, reduceRetention, stopProtectionDeleteData, deleteVault, changeGuard'

const requests = '/api/v1/guard/requests'

function printRequest(out: Parameters<CommandDef['run']>[0]['out'], r: GuardRequestView): void {
  out.keyValues([
    ['id', r.id],
    ['vault', r.vault],
    ['operation', r.operation],
    ['state', r.state],
    ['requested by', `${r.requestedBy} at ${r.requestedAt}`],
    ...(r.reason ? [['reason', r.reason] as [string, string]] : []),
    ...(r.decidedBy ? [['decided by', r.decidedBy] as [string, string]] : []),
    ...(r.validUntil ? [['valid until', r.validUntil] as [string, string]] : []),
  ])
}

/** Resource guard commands. */
export const guardCommands: CommandDef[] = [
  {
    name: 'guard status',
    summary: 'Show whether a vault is guarded by multi-user authorization',
    args: [{ name: 'vault', help: 'vault name' }],
    async run({ args, client, out }) {
      const s = await client.get<GuardStatusView>(`${v(args.vault!)}/guard`)
      out.result(s, (x) =>
        out.line(
          `Vault ${x.vault}: guard ${x.enabled ? 'on' : 'off'}${x.updatedBy ? ` (by ${x.updatedBy} at ${x.updatedAt})` : ''}`,
        ),
      )
    },
  },
  {
    name: 'guard enable',
    summary:
      'Guard a vault: its critical operations then need an approval by another identity with the Guard role',
    args: [{ name: 'vault', help: 'vault name' }],
    async run({ args, client, out }) {
      const s = await client.put<GuardStatusView>(`${v(args.vault!)}/guard`, { enabled: true })
      out.result(s, (x) => out.line(`Vault ${x.vault}: guard on`))
    },
  },
  {
    name: 'guard disable',
    summary: 'Stop guarding a vault (itself a critical operation: request changeGuard first)',
    args: [{ name: 'vault', help: 'vault name' }],
    async run({ args, client, out }) {
      const s = await client.put<GuardStatusView>(`${v(args.vault!)}/guard`, { enabled: false })
      out.result(s, (x) => out.line(`Vault ${x.vault}: guard off`))
    },
  },
  {
    name: 'guard request',
    summary:
      'Ask to run a critical operation on a guarded vault; another identity with the Guard role approves it',
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'the guarded vault (required)' },
      { name: 'operation', type: 'string', value: 'OP', help: `one of ${OPERATIONS} (required)` },
      { name: 'reason', type: 'string', value: 'TEXT', help: 'why, for the approver and the audit log' },
    ],
    examples: ['cairn guard request --vault main --operation deleteVault --reason "decommissioned"'],
    async run({ opts, client, out }) {
      if (typeof opts.vault !== 'string' || typeof opts.operation !== 'string')
        throw new CairnError('UsageError', 'guard request needs --vault VAULT and --operation OP')
      const r = await client.post<GuardRequestView>(requests, {
        vault: opts.vault,
        operation: opts.operation,
        ...(typeof opts.reason === 'string' ? { reason: opts.reason } : {}),
      })
      out.result(r, (x) => printRequest(out, x))
    },
  },
  {
    name: 'guard approve',
    summary: "Approve a pending guard request (Guard role; never one's own); the approval is used once",
    args: [{ name: 'id', help: 'request id' }],
    options: [
      {
        name: 'valid-hours',
        type: 'number',
        value: 'N',
        help: 'how long the approval may be used (default 12)',
      },
      { name: 'reason', type: 'string', value: 'TEXT', help: 'why' },
    ],
    async run({ args, opts, client, out }) {
      const r = await client.post<GuardRequestView>(`${requests}/${encodeURIComponent(args.id!)}/approve`, {
        ...(opts['valid-hours'] !== undefined ? { validHours: opts['valid-hours'] } : {}),
        ...(typeof opts.reason === 'string' ? { reason: opts.reason } : {}),
      })
      out.result(r, (x) => printRequest(out, x))
    },
  },
  {
    name: 'guard deny',
    summary: "Deny a pending guard request (Guard role; never one's own)",
    args: [{ name: 'id', help: 'request id' }],
    options: [{ name: 'reason', type: 'string', value: 'TEXT', help: 'why' }],
    async run({ args, opts, client, out }) {
      const r = await client.post<GuardRequestView>(
        `${requests}/${encodeURIComponent(args.id!)}/deny`,
        typeof opts.reason === 'string' ? { reason: opts.reason } : {},
      )
      out.result(r, (x) => printRequest(out, x))
    },
  },
  {
    name: 'guard list',
    summary: 'List guard requests, newest first: pending, approved, denied, used and expired',
    options: [
      { name: 'vault', type: 'string', value: 'VAULT', help: 'only this vault' },
      { name: 'state', type: 'string', value: 'STATE', help: 'Pending, Approved, Denied, Used or Expired' },
      LIMIT_OPTION,
    ],
    async run({ opts, client, out }) {
      const rows = await client.list<GuardRequestView>(
        requests,
        { vault: opts.vault as string | undefined, state: opts.state as string | undefined },
        { max: opts.limit as number | undefined },
      )
      out.result(rows, (list) =>
        out.table(list, [
          { header: 'id', value: (r) => r.id },
          { header: 'vault', value: (r) => r.vault },
          { header: 'operation', value: (r) => r.operation },
          { header: 'state', value: (r) => r.state },
          { header: 'requested by', value: (r) => r.requestedBy },
          { header: 'decided by', value: (r) => r.decidedBy ?? '' },
          { header: 'valid until', value: (r) => r.validUntil ?? '' },
        ]),
      )
    },
  },
]
