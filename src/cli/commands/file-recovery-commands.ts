import { chmodSync, writeFileSync } from 'node:fs'
import type { Mount, MountRequest } from '../../api/index.js'
import { formatBytes } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { itemVault, vaultOpt } from './protection-commands.js'

// `cairn rp mount|mounts|unmount`: file recovery from a VM's recovery points (docs/filerecovery.md).

const enc = encodeURIComponent
const pointPath = (vault: string, vm: string, rp: string) =>
  `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/recoveryPoints/${enc(rp)}`
const rpOpt = { name: 'rp', type: 'string' as const, value: 'ID', help: 'recovery point id', required: true }

function printMount(out: Parameters<CommandDef['run']>[0]['out'], m: Mount): void {
  out.keyValues([
    ['mount', m.id],
    ['vm', m.vm],
    ['recovery point', `${m.point} (${m.pointTime})`],
    ['expires', m.expiresAt],
    ['auth', m.psk ? `TLS-PSK, identity ${m.psk.identity}` : 'token in the export names'],
  ])
  out.line()
  out.table(m.disks, [
    { header: 'disk', value: (d) => d.name },
    { header: 'size', value: (d) => formatBytes(d.size), align: 'right' },
    { header: 'from', value: (d) => d.from },
    { header: 'uri', value: (d) => d.uri },
  ])
  for (const w of m.warnings) out.note(`warning: ${w}`)
}

export const fileRecoveryCommands: CommandDef[] = [
  {
    name: 'rp mount',
    summary:
      'Mount a recovery point of a VM: every disk read-only over NBD with a key of its own, for --hours (default 12); writes the attach script with --script',
    args: [{ name: 'VM', help: 'a protected VM' }],
    options: [
      rpOpt,
      { name: 'hours', type: 'number', value: 'H', help: 'hours the mount lives (default 12, at most 168)' },
      {
        name: 'script',
        type: 'string',
        value: 'FILE',
        help: 'write the attach script (bash, run as root on a Linux host) to FILE',
      },
      vaultOpt,
    ],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const body: MountRequest = opts.hours !== undefined ? { hours: opts.hours as number } : {}
      const m = await client.post<Mount, MountRequest>(
        `${pointPath(vault, vm, opts.rp as string)}/mounts`,
        body,
      )
      if (typeof opts.script === 'string') {
        writeFileSync(opts.script, m.script, { mode: 0o700 })
        chmodSync(opts.script, 0o700)
      }
      out.result(m, (v) => {
        printMount(out, v)
        if (typeof opts.script === 'string')
          out.note(
            `attach script: sudo bash ${opts.script} [DIR]   (cairn rp unmount ${vm} ${v.id} ends the mount)`,
          )
      })
    },
  },
  {
    name: 'rp mounts',
    summary: 'List the live mounts of a VM',
    args: [{ name: 'VM', help: 'a protected VM' }],
    options: [vaultOpt],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const list = await client.list<Mount>(`/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/mounts`)
      out.result(list, (rows) =>
        out.table(rows, [
          { header: 'mount', value: (m) => m.id },
          { header: 'point', value: (m) => m.point },
          { header: 'disks', value: (m) => m.disks.map((d) => `${d.name}:${d.from}`).join(',') },
          { header: 'expires', value: (m) => m.expiresAt },
          { header: 'by', value: (m) => m.createdBy },
        ]),
      )
    },
  },
  {
    name: 'rp unmount',
    summary: 'End a mount at once: its key stops working and open NBD connections are closed',
    args: [
      { name: 'VM', help: 'a protected VM' },
      { name: 'MOUNT', help: 'mount id (cairn rp mounts VM)' },
    ],
    options: [vaultOpt],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const all = await client.list<Mount>(`/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/mounts`)
      const found = all.find((x) => x.id === args.MOUNT)
      // A mount gone already still goes through DELETE: its answer (MountNotFound) says so.
      const point = found?.point ?? '-'
      const r = await client.delete<{ unmounted: string }>(
        `${pointPath(vault, vm, point)}/mounts/${enc(args.MOUNT!)}`,
      )
      out.result(r, () => out.line(`unmounted ${r.unmounted}`))
    },
  },
]
