import { readFileSync } from 'node:fs'
import type {
  BackupNowRequest,
  ChangePolicyRequest,
  Deleted,
  ProtectedItem,
  ProtectRequest,
  ResumeProtectionRequest,
  StopProtectionRequest,
  StopProtectionResult,
  Vm,
  VmRecoveryPoint,
  VmRequest,
  VmRestoreRequest,
} from '../../api/index.js'
import { CairnError, diskLabel, parseDiskLabel } from '../../util/index.js'
import type { ApiClient } from '../api-client.js'
import { type CommandDef, LIMIT_OPTION, type OptionDef } from '../command.js'
import { CANCEL_ON_INTERRUPT, diskRef, followJob, type Job, printJob } from './_jobs.js'

// `cairn vm …`, `cairn protect`, `cairn protection …`, `cairn rp …`, `cairn job …`.

type Obj = Record<string, unknown>
type DiskRefView = Vm['osDisk']
/** `os,lun0,lun2` for a selection of data-disk LUNs (the OS disk is always in). */
const labels = (luns: number[]) => ['os', ...luns.map((l) => diskLabel(l))].join(',')

/** A data disk named `lunN` (or, the older form, `N`). */
function dataLun(text: string): number {
  const lun = parseDiskLabel(text, 'data disk')
  if (lun === 'os')
    throw new CairnError('UsageError', '--luns names data disks; the OS disk is always backed up')
  return lun
}

const ref = (d: DiskRefView | undefined) => (d ? `${d.account}/${d.container}/${d.disk}` : undefined)
const enc = encodeURIComponent
export const vaultOpt: OptionDef = {
  name: 'vault',
  type: 'string',
  value: 'V',
  help: 'vault name (env CAIRN_VAULT)',
}

export function vaultOf(opts: Obj): string {
  const v = (opts.vault as string | undefined) ?? process.env.CAIRN_VAULT
  if (!v) throw new CairnError('UsageError', 'Cannot tell which vault: give --vault V or set CAIRN_VAULT')
  return v
}

/** Where a restore puts its new disks (both restore commands). */
const targetOptions: OptionDef[] = [
  {
    name: 'target-account',
    type: 'string',
    value: 'A',
    help: "storage account of the new disks (default: each source disk's; e.g. on a replica's site)",
  },
  {
    name: 'target-container',
    type: 'string',
    value: 'C',
    help: "their container (default: each source disk's)",
  },
]

/** The target account and container of a restore request, when given. */
function targetOf(opts: Obj): Pick<VmRestoreRequest, 'targetAccount' | 'targetContainer'> {
  return {
    ...(opts['target-account'] ? { targetAccount: opts['target-account'] as string } : {}),
    ...(opts['target-container'] ? { targetContainer: opts['target-container'] as string } : {}),
  }
}

export function csv(text: string | undefined): string[] | undefined {
  return text === undefined
    ? undefined
    : text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
}

export async function itemVault(client: ApiClient, vm: string, opts: Obj): Promise<string> {
  const given = (opts.vault as string | undefined) ?? process.env.CAIRN_VAULT
  if (given) return given
  return (await client.get<ProtectedItem>(`/api/v1/vms/${enc(vm)}/protectedItem`)).vault
}

/** Commands for VMs, policies, protection, recovery points and jobs. */
export const protectionCommands: CommandDef[] = [
  {
    name: 'vm create',
    summary: 'Register a VM: its disks (disk-store disks), size, OS, configuration and agent',
    args: [{ name: 'NAME', help: 'VM name' }],
    options: [
      { name: 'os-disk', type: 'string', value: 'D', help: 'OS disk as [[account/]container/]disk' },
      {
        name: 'data-disk',
        type: 'list',
        value: 'lunN=D',
        help: 'a data disk at a LUN, e.g. lun0=vms/data (repeat, up to 32)',
      },
      { name: 'temp-disk', type: 'string', value: 'D', help: 'temporary disk (never backed up)' },
      { name: 'size', type: 'string', value: 'SIZE', help: 'VM size descriptor (default custom)' },
      { name: 'os-type', type: 'string', value: 'OS', help: 'Linux or Windows (default Linux)' },
      { name: 'os-name', type: 'string', value: 'TEXT', help: 'OS description, e.g. "Debian 12"' },
      {
        name: 'config',
        type: 'string',
        value: 'FILE',
        help: 'JSON configuration document saved with each backup',
      },
      { name: 'agent', type: 'string', value: 'URL', help: 'agent endpoint, e.g. http://10.0.0.5:7071' },
      { name: 'agent-token', type: 'string', value: 'T', help: 'agent token (env CAIRN_AGENT_TOKEN)' },
      {
        name: 'qga',
        type: 'string',
        value: 'CHANNEL',
        help: "the QEMU guest agent: unix:PATH, its socket on the service host, or libvirt:DOMAIN, through the service host's libvirt (instead of --agent)",
      },
    ],
    examples: [
      'cairn vm create web-1 --os-disk acct/vms/web-1-os --data-disk lun0=acct/vms/web-1-data --agent http://10.0.0.5:7071 --agent-token s3cret-token',
    ],
    async run({ args, opts, client, out }) {
      if (!opts['os-disk'])
        throw new CairnError('UsageError', 'Cannot create a VM without --os-disk [[account/]container/]disk')
      const dataDisks = (opts['data-disk'] as string[]).map((spec) => {
        const m = /^(?:lun)?(\d+)=(.+)$/i.exec(spec)
        if (!m)
          throw new CairnError(
            'UsageError',
            `--data-disk expects lunN=[[account/]container/]disk, not "${spec}"`,
          )
        return { lun: Number(m[1]), disk: diskRef(m[2]!) }
      })
      const body: VmRequest = {
        name: args.NAME!,
        osDisk: diskRef(opts['os-disk'] as string),
        dataDisks,
        vmSize: (opts.size as string | undefined) ?? 'custom',
        osType: ((opts['os-type'] as string | undefined) ?? 'Linux') as NonNullable<VmRequest['osType']>,
      }
      if (opts['os-name']) body.osName = opts['os-name'] as string
      if (opts['temp-disk']) body.tempDisk = diskRef(opts['temp-disk'] as string)
      if (opts.config) body.configuration = JSON.parse(readFileSync(opts.config as string, 'utf8'))
      if (opts.agent) {
        const token = (opts['agent-token'] as string | undefined) ?? process.env.CAIRN_AGENT_TOKEN
        if (!token) throw new CairnError('UsageError', '--agent needs --agent-token T (or CAIRN_AGENT_TOKEN)')
        body.agent = { url: opts.agent as string, token }
      }
      if (opts.qga) body.qga = opts.qga as string
      const vm = await client.post<Vm, VmRequest>('/api/v1/vms', body)
      out.result(vm, (v) => out.line(`VM ${v.name} registered with ${1 + v.dataDisks.length} disk(s)`))
    },
  },
  {
    name: 'vm list',
    summary: 'List VMs',
    options: [LIMIT_OPTION],
    async run({ opts, client, out }) {
      const vms = await client.list<Vm>('/api/v1/vms', {}, { max: opts.limit as number | undefined })
      out.result(vms, (rows) =>
        out.table(rows, [
          { header: 'name', value: (v) => v.name },
          { header: 'size', value: (v) => v.vmSize },
          { header: 'os', value: (v) => v.osName ?? v.osType },
          { header: 'data disks', value: (v) => v.dataDisks.length, align: 'right' },
          { header: 'agent', value: (v) => v.agent?.url },
        ]),
      )
    },
  },
  {
    name: 'vm show',
    summary: 'Show a VM and its disks',
    args: [{ name: 'NAME', help: 'VM name' }],
    async run({ args, client, out }) {
      const vm = await client.get<Vm>(`/api/v1/vms/${enc(args.NAME!)}`)
      out.result(vm, (v) =>
        out.keyValues([
          ['name', v.name],
          ['size', v.vmSize],
          ['os', `${v.osType}${v.osName ? ` (${v.osName})` : ''}`],
          ['os disk', ref(v.osDisk)],
          ...v.dataDisks.map((d): [string, unknown] => [`lun${d.lun}`, ref(d.disk)]),
          ['temp disk', ref(v.tempDisk)],
          ['agent', v.agent?.url ?? (v.qga ? `qemu guest agent ${v.qga}` : undefined)],
        ]),
      )
    },
  },
  {
    name: 'vm delete',
    summary: 'Forget a VM (its disks stay); refused while it has backup data',
    args: [{ name: 'NAME', help: 'VM name' }],
    async run({ args, client, out }) {
      await client.delete<Deleted>(`/api/v1/vms/${enc(args.NAME!)}`)
      out.result({ deleted: args.NAME }, () => out.line(`VM ${args.NAME} deleted`))
    },
  },
  {
    name: 'protect',
    summary: 'Enable protection of a VM with a policy in a vault (the OS disk always included)',
    args: [{ name: 'VM', help: 'VM name' }],
    options: [
      vaultOpt,
      { name: 'policy', type: 'string', value: 'P', help: 'backup policy of the vault' },
      { name: 'luns', type: 'string', value: 'LIST', help: 'back up only these data disks, e.g. lun0,lun2' },
      { name: 'include-future-disks', type: 'boolean', help: 'with --luns: also disks attached later' },
    ],
    examples: [
      'cairn protect web-1 --vault v1 --policy daily-30',
      'cairn protect db-1 --vault v1 --policy daily-30 --luns lun0',
    ],
    async run({ args, opts, client, out }) {
      if (!opts.policy) throw new CairnError('UsageError', 'Cannot protect without --policy P')
      const body: ProtectRequest = { vm: args.VM!, policy: opts.policy as string }
      const luns = csv(opts.luns as string | undefined)
      if (luns) body.includedLuns = luns.map(dataLun)
      if (opts['include-future-disks']) body.includeFutureDisks = true
      const item = await client.post<ProtectedItem, ProtectRequest>(
        `/api/v1/vaults/${enc(vaultOf(opts))}/protectedItems`,
        body,
      )
      out.result(item, (i) =>
        out.line(`VM ${i.vmName} protected in vault ${i.vault} with policy ${i.policyName}`),
      )
    },
  },
  {
    name: 'protection list',
    summary: 'List the protected items of a vault',
    options: [vaultOpt, LIMIT_OPTION],
    async run({ opts, client, out }) {
      const items = await client.list<ProtectedItem>(
        `/api/v1/vaults/${enc(vaultOf(opts))}/protectedItems`,
        {},
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'vm', value: (i) => i.vmName },
          { header: 'state', value: (i) => i.state },
          { header: 'policy', value: (i) => i.policyName },
          { header: 'disks', value: (i) => (i.includedLuns ? labels(i.includedLuns) : 'all') },
          {
            header: 'last backup',
            value: (i) => (i.lastBackupAt ? `${i.lastBackupAt} ${i.lastBackupStatus}` : undefined),
          },
        ]),
      )
    },
  },
  {
    name: 'protection show',
    summary: 'Show the protection of a VM',
    args: [{ name: 'VM', help: 'VM name' }],
    async run({ args, client, out }) {
      const item = await client.get<ProtectedItem>(`/api/v1/vms/${enc(args.VM!)}/protectedItem`)
      out.result(item, (i) =>
        out.keyValues([
          ['vm', i.vmName],
          ['vault', i.vault],
          ['state', i.state],
          ['policy', i.policyName],
          ['disks', i.includedLuns ? labels(i.includedLuns) : 'all'],
          ['future disks', i.includeFutureDisks],
          ['since', i.protectedSince],
          ['last backup', i.lastBackupAt ? `${i.lastBackupAt} (${i.lastBackupStatus})` : undefined],
        ]),
      )
    },
  },
  {
    name: 'protection change',
    summary: 'Move a protected VM to another policy of its vault',
    args: [{ name: 'VM', help: 'VM name' }],
    options: [vaultOpt, { name: 'policy', type: 'string', value: 'P', help: 'new policy' }],
    async run({ args, opts, client, out }) {
      if (!opts.policy) throw new CairnError('UsageError', 'Cannot change policy without --policy P')
      const vault = await itemVault(client, args.VM!, opts)
      const item = await client.patch<ProtectedItem, ChangePolicyRequest>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}`,
        { policy: opts.policy as string },
      )
      out.result(item, (i) => out.line(`VM ${i.vmName} now uses policy ${i.policyName}`))
    },
  },
  {
    name: 'protection stop',
    summary: 'Stop protection of a VM, retaining its backup data (or deleting it with --delete-data)',
    args: [{ name: 'VM', help: 'VM name' }],
    options: [vaultOpt, { name: 'delete-data', type: 'boolean', help: 'also delete every recovery point' }],
    async run({ args, opts, client, out }) {
      const deleteData = opts['delete-data'] === true
      let vault: string
      try {
        vault = await itemVault(client, args.VM!, opts)
      } catch (err) {
        // Stopping with data deletion twice is fine: the VM is simply not protected any more.
        if (!deleteData || !(err instanceof CairnError) || err.code !== 'ProtectedItemNotFound') throw err
        return out.result({ vmName: args.VM, state: 'NotProtected', deletedPoints: [] }, () =>
          out.line(`VM ${args.VM}: NotProtected`),
        )
      }
      const item = await client.post<StopProtectionResult, StopProtectionRequest>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}/stopProtection`,
        { deleteData },
      )
      out.result(item, (i) =>
        out.line(
          `VM ${args.VM}: ${i.state}${'deletedPoints' in i ? ` (${i.deletedPoints.length} recovery point(s) deleted)` : ''}`,
        ),
      )
    },
  },
  {
    name: 'protection resume',
    summary: 'Resume stopped protection, optionally with another policy',
    args: [{ name: 'VM', help: 'VM name' }],
    options: [
      vaultOpt,
      { name: 'policy', type: 'string', value: 'P', help: 'policy (default: the previous one)' },
    ],
    async run({ args, opts, client, out }) {
      const vault = await itemVault(client, args.VM!, opts)
      const body: ResumeProtectionRequest = {}
      if (opts.policy) body.policy = opts.policy as string
      const item = await client.post<ProtectedItem, ResumeProtectionRequest>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}/resume`,
        body,
      )
      out.result(item, (i) => out.line(`VM ${i.vmName}: ${i.state} with policy ${i.policyName}`))
    },
  },
  {
    name: 'backup now',
    summary: 'Back up a VM now (on-demand, kept 30 days unless --expires); --wait follows the job',
    args: [{ name: 'VM', help: 'VM name' }],
    options: [
      vaultOpt,
      {
        name: 'expires',
        type: 'string',
        value: 'WHEN',
        help: 'expiry: an ISO time or a number of days (default 30)',
      },
      { name: 'wait', type: 'boolean', help: 'follow the job to its end with live progress' },
      CANCEL_ON_INTERRUPT,
    ],
    examples: ['cairn backup now web-1 --wait', 'cairn backup now web-1 --expires 90'],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const vault = await itemVault(client, args.VM!, opts)
      const body: BackupNowRequest = {}
      const expires = opts.expires as string | undefined
      if (expires !== undefined) {
        body.expiresAt = /^\d+$/.test(expires)
          ? new Date(Date.now() + Number(expires) * 86_400_000).toISOString()
          : expires
      }
      const job = await client.post<Job, BackupNowRequest>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}/backup`,
        body,
      )
      if (!opts.wait)
        return out.result(job, (j) => out.line(`backup job ${j.id} started (cairn job watch ${j.id})`))
      return waitFor(ctx, job)
    },
  },
  {
    name: 'restore vm',
    summary: 'Create a new VM from a recovery point (new disks plus the saved configuration)',
    args: [{ name: 'VM', help: 'the protected VM' }],
    options: [
      vaultOpt,
      { name: 'rp', type: 'string', value: 'ID', help: 'recovery point (default: the latest)' },
      { name: 'as', type: 'string', value: 'NAME', help: 'name of the new VM' },
      {
        name: 'replace',
        type: 'boolean',
        help: 'replace the disks of VM itself instead (snapshots them first)',
      },
      ...targetOptions,
      { name: 'wait', type: 'boolean', help: 'follow the job to its end' },
      CANCEL_ON_INTERRUPT,
    ],
    examples: [
      'cairn restore vm web-1 --rp 20261204T195200123Z-7b55 --as web-1-restored --wait',
      'cairn restore vm web-1 --vault geo --as web-1-dr --target-account drdisks --wait   # on a replica',
      'cairn restore vm web-1 --replace --wait',
    ],
    async run(ctx) {
      const { args, opts, client } = ctx
      const vault = await itemVault(client, args.VM!, opts)
      const rp = await pointOf(client, vault, args.VM!, opts.rp as string | undefined)
      let body: VmRestoreRequest
      if (opts.replace) body = { recoveryType: 'OriginalLocation' }
      else {
        if (!opts.as)
          throw new CairnError(
            'UsageError',
            'Cannot restore as a new VM without --as NAME (or use --replace)',
          )
        body = { recoveryType: 'AlternateLocation', targetVmName: opts.as as string, ...targetOf(opts) }
      }
      return startRestore(ctx, vault, rp, body)
    },
  },
  {
    name: 'restore disks',
    summary: 'Restore chosen disks of a recovery point as new disks <prefix>-os, <prefix>-lunN',
    args: [{ name: 'VM', help: 'the protected VM' }],
    options: [
      vaultOpt,
      { name: 'rp', type: 'string', value: 'ID', help: 'recovery point (default: the latest)' },
      { name: 'disks', type: 'string', value: 'LIST', help: 'which disks, e.g. os,lun0,lun2 (default all)' },
      {
        name: 'luns',
        type: 'string',
        value: 'LIST',
        help: 'the older name of --disks (os,0,2 still accepted)',
      },
      {
        name: 'prefix',
        type: 'string',
        value: 'NAME',
        help: 'name prefix of the new disks (default VM-restored)',
      },
      ...targetOptions,
      { name: 'wait', type: 'boolean', help: 'follow the job to its end' },
      CANCEL_ON_INTERRUPT,
    ],
    async run(ctx) {
      const { args, opts, client } = ctx
      const vault = await itemVault(client, args.VM!, opts)
      const rp = await pointOf(client, vault, args.VM!, opts.rp as string | undefined)
      const body: VmRestoreRequest = { recoveryType: 'RestoreDisks', ...targetOf(opts) }
      if (opts.prefix) body.diskPrefix = opts.prefix as string
      if (opts.disks !== undefined && opts.luns !== undefined)
        throw new CairnError('UsageError', 'Give --disks or --luns, not both')
      const chosen = csv((opts.disks ?? opts.luns) as string | undefined)
      if (chosen) body.disks = chosen.map((l) => diskLabel(parseDiskLabel(l)))
      return startRestore(ctx, vault, rp, body)
    },
  },
]

/** Starts a restore of recovery point `rp` of the command's VM; prints the job, or follows it with --wait. */
async function startRestore(
  ctx: Parameters<CommandDef['run']>[0],
  vault: string,
  rp: string,
  body: VmRestoreRequest,
): Promise<number | undefined> {
  const { args, opts, client, out } = ctx
  const job = await client.post<Job, VmRestoreRequest>(
    `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(args.VM!)}/recoveryPoints/${enc(rp)}/restore`,
    body,
  )
  if (opts.wait) return waitFor(ctx, job)
  out.result(job, (j) => out.line(`restore job ${j.id} started (cairn job watch ${j.id})`))
  return undefined
}

/** Follows a job to its end (see followJob: Ctrl-C detaches, or cancels with --cancel-on-interrupt). */
async function waitFor(ctx: Parameters<CommandDef['run']>[0], job: Job): Promise<undefined> {
  const { opts, client, out, signal } = ctx
  const done = await followJob(client, out, job, `${job.kind} ${job.id.slice(0, 8)}`, signal, {
    cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
  })
  out.result(done, (j) => printJob(out, j))
  return undefined
}

/** The given recovery point, or the latest one of the VM. */
async function pointOf(
  client: ApiClient,
  vault: string,
  vm: string,
  rp: string | undefined,
): Promise<string> {
  if (rp) return rp
  const points = await client.list<VmRecoveryPoint>(
    `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/recoveryPoints`,
  )
  const latest = points.at(-1)
  if (!latest)
    throw new CairnError('RecoveryPointNotFound', `Cannot restore VM "${vm}": it has no recovery point yet`)
  return latest.id
}

// A helper the shared `rp list` command uses for VM recovery points.

/** Prints the recovery points of a protected VM (both tiers). */
export async function printVmPoints(ctx: Parameters<CommandDef['run']>[0], vm: string): Promise<void> {
  const { opts, client, out } = ctx
  const vault = await itemVault(client, vm, opts)
  const points = await client.list<VmRecoveryPoint>(
    `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/recoveryPoints`,
    {},
    { max: opts.limit as number | undefined },
  )
  out.result(points, (rows) =>
    out.table(rows, [
      { header: 'id', value: (p) => p.id },
      { header: 'time', value: (p) => p.time },
      { header: 'kind', value: (p) => p.kind },
      { header: 'consistency', value: (p) => p.consistency },
      { header: 'tier', value: (p) => p.tier },
      { header: 'disks', value: (p) => p.disks.map((d) => d.name).join(',') },
      { header: 'expires', value: (p) => p.expiresAt },
    ]),
  )
}
