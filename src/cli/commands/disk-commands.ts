import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import type {
  CopyDiskRequest,
  CreateDiskRequest,
  Disk,
  DiskExportRequest,
  DiskExportResult,
  DiskImportRequest,
  DiskSpace,
  LeaseRequest,
  LeaseResult,
  ResizeDiskRequest,
  SequenceNumberRequest,
  WriteResult,
} from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { ProgressBar } from '../output.js'
import { diskColumns, NAME_HELP, parseMetadata, showDisk } from './_disk-json.js'
import { containerPath, diskPath, diskText, parseDiskName, splitContainer } from './_disk-names.js'
import { diskSnapshotCommands } from './_disk-snapshot-commands.js'
import {
  exportLocal,
  filePieces,
  fileSize,
  getPages,
  importLocal,
  PIECE,
  putPages,
} from './_disk-transfer.js'

/** `cairn disk …`: disks, pages, snapshots, diffs, copies, import and export. */
export const diskCommands: CommandDef[] = [
  {
    name: 'disk create',
    summary: 'Create a thin disk (a page blob): unwritten pages read as zeros and cost nothing',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [
      { name: 'size', type: 'size', value: 'SIZE', help: 'size, a multiple of 512 up to 8TiB (e.g. 64GiB)' },
      { name: 'metadata', type: 'list', value: 'KEY=VALUE', help: 'metadata (repeatable)' },
    ],
    examples: ['cairn disk create os --size 64GiB', 'cairn disk create prodeu1/vhds/web1-os --size 1TiB'],
    async run({ args, opts, client, out }) {
      if (opts.size === undefined)
        throw new CairnError('UsageError', 'Missing option --size (see cairn disk create --help)')
      const d = parseDiskName(args.NAME!)
      const md = parseMetadata(opts.metadata)
      const info = await client.put<Disk, CreateDiskRequest>(diskPath(d), {
        size: opts.size as number,
        ...(md ? { metadata: md } : {}),
      })
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk list',
    summary: 'List the disks of a container',
    args: [
      { name: 'CONTAINER', help: '[ACCOUNT/]CONTAINER (default devstoreaccount1/disks)', optional: true },
    ],
    options: [
      { name: 'snapshots', type: 'boolean', help: 'list snapshots too' },
      { name: 'prefix', type: 'string', value: 'PREFIX', help: 'only disks whose name starts with PREFIX' },
      LIMIT_OPTION,
    ],
    async run({ args, opts, client, out }) {
      const { account, container } = splitContainer(args.CONTAINER ?? 'devstoreaccount1/disks')
      const items = await client.list<Disk>(
        `${containerPath(account, container)}/disks`,
        { includeSnapshots: opts.snapshots ? 'true' : undefined, prefix: opts.prefix as string | undefined },
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) => out.table(rows, diskColumns))
    },
  },
  {
    name: 'disk show',
    summary: 'Show a disk or one of its snapshots',
    args: [{ name: 'NAME', help: `${NAME_HELP}[@SNAPSHOT]` }],
    async run({ args, client, out }) {
      const d = parseDiskName(args.NAME!, { snapshot: true })
      const info = await client.get<Disk>(diskPath(d), { snapshot: d.snapshot })
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk resize',
    summary: 'Grow or shrink a disk (shrinking drops the pages past the new end)',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [{ name: 'size', type: 'size', value: 'SIZE', help: 'new size' }],
    async run({ args, opts, client, out }) {
      if (opts.size === undefined)
        throw new CairnError('UsageError', 'Missing option --size (see cairn disk resize --help)')
      const d = parseDiskName(args.NAME!)
      await client.post<WriteResult, ResizeDiskRequest>(`${diskPath(d)}/resize`, {
        size: opts.size as number,
      })
      const info = await client.get<Disk>(diskPath(d))
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk delete',
    summary: 'Delete a disk; one with snapshots needs --snapshots include (all) or only (just the snapshots)',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [
      { name: 'snapshots', type: 'string', value: 'include|only', help: 'what happens to its snapshots' },
      {
        name: 'force',
        type: 'boolean',
        help: 'delete even what protected VMs or recovery points need (those points fall back to the vault)',
      },
    ],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args.NAME!)
      await client.delete(diskPath(d), {
        snapshots: opts.snapshots as string | undefined,
        force: opts.force ? 'true' : undefined,
      })
      out.result({ deleted: diskText(d), snapshots: opts.snapshots ?? null }, () =>
        out.line(
          opts.snapshots === 'only' ? `deleted the snapshots of ${diskText(d)}` : `deleted ${diskText(d)}`,
        ),
      )
    },
  },
  {
    name: 'disk import',
    summary: 'Import a raw image into a new disk; zero blocks stay holes',
    description:
      'The file is streamed through the API in one request holding its data extents only (zero pages\n' +
      'are left out), so it works against a remote service; of a sparse file only the data ranges are\n' +
      'read (qemu-img map, when installed, finds them). The disk appears once all of it is in; a failure\n' +
      'leaves no disk. When the service runs on this host (a loopback --url) and FILE lies under one of\n' +
      'its --import-roots, the service reads the file itself after checking it is the same file (size,\n' +
      'device, inode, time); --stream always streams. With --server, the service reads FILE (a regular\n' +
      'file) on its own machine; it must be under a folder the service was started with --import-root\n' +
      '(docs/security.md).',
    args: [
      { name: 'NAME', help: NAME_HELP },
      { name: 'FILE', help: 'raw image' },
    ],
    options: [
      {
        name: 'server',
        type: 'boolean',
        help: "FILE is a path on the service's machine, under an --import-root",
      },
      {
        name: 'stream',
        type: 'boolean',
        help: 'always stream FILE through the API, even to a service on this host that could read it',
      },
    ],
    examples: ['cairn disk import web1-os web1-os.raw', 'cairn disk import os /srv/images/os.raw --server'],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const d = parseDiskName(args.NAME!)
      const info = opts.server
        ? await client.post<Disk, DiskImportRequest>(`${diskPath(d)}/import`, { path: resolve(args.FILE!) })
        : await importLocal(ctx, d, args.FILE!, { stream: opts.stream === true })
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk export',
    summary: 'Export a disk or snapshot to a sparse raw file',
    description:
      'Only written ranges are fetched; holes stay holes in FILE. Export a snapshot for a consistent image\n' +
      'of a disk in use. An existing FILE is replaced only with --overwrite; a failed export removes the\n' +
      'FILE it created. With --server, the service writes FILE on its own machine, under a folder it was\n' +
      'started with --export-root (docs/security.md).',
    args: [
      { name: 'NAME', help: `${NAME_HELP}[@SNAPSHOT]` },
      { name: 'FILE', help: 'output file' },
    ],
    options: [
      {
        name: 'server',
        type: 'boolean',
        help: "FILE is a path on the service's machine, under an --export-root",
      },
      { name: 'overwrite', type: 'boolean', help: 'replace FILE if it exists' },
    ],
    examples: [
      'cairn disk export os@2026-11-22T19:37:17.1234567Z os.raw',
      'cairn disk export os /srv/exports/os.raw --server --overwrite',
    ],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const d = parseDiskName(args.NAME!, { snapshot: true })
      const result = opts.server
        ? await client.post<DiskExportResult, DiskExportRequest>(`${diskPath(d)}/export`, {
            path: resolve(args.FILE!),
            ...(d.snapshot ? { snapshot: d.snapshot } : {}),
            ...(opts.overwrite ? { overwrite: true } : {}),
          })
        : await exportLocal(ctx, d, args.FILE!, opts.overwrite === true)
      out.result(result, (r) => out.line(`exported ${diskText(d)} (${formatBytes(r.size)}) to ${r.path}`))
    },
  },
  {
    name: 'disk write',
    summary: 'Write the bytes of FILE (a multiple of 512 bytes) at --offset',
    args: [
      { name: 'NAME', help: NAME_HELP },
      { name: 'FILE', help: 'data to write' },
    ],
    options: [
      { name: 'offset', type: 'size', value: 'N', help: 'byte offset, a multiple of 512', default: '0' },
      { name: 'lease-id', type: 'string', value: 'ID', help: 'the lease id, when the disk is leased' },
    ],
    examples: ['cairn disk write os --offset 1MiB boot.bin'],
    async run({ args, opts, client, out, signal }) {
      const d = parseDiskName(args.NAME!)
      const offset = opts.offset as number
      const size = await fileSize(args.FILE!)
      if (size % 512 !== 0) {
        throw new CairnError(
          'RangeNotAligned',
          `Cannot write "${args.FILE}": its ${size} bytes are not a multiple of 512`,
        )
      }
      const bar = new ProgressBar(`write ${d.disk}`, out.interactive && size > 16 * PIECE)
      for await (const [pos, buf] of filePieces(args.FILE!, size, PIECE)) {
        await putPages(client, d, offset + pos, buf, signal, {
          leaseId: opts['lease-id'] as string | undefined,
        })
        bar.update(pos + buf.length, size)
      }
      bar.done()
      out.result({ disk: diskText(d), offset, bytes: size }, () =>
        out.line(`wrote ${formatBytes(size)} at ${offset} of ${diskText(d)}`),
      )
    },
  },
  {
    name: 'disk read',
    summary: 'Read bytes of a disk or snapshot to stdout or a file (holes read as zeros)',
    args: [{ name: 'NAME', help: `${NAME_HELP}[@SNAPSHOT]` }],
    options: [
      { name: 'offset', type: 'size', value: 'N', help: 'byte offset', default: '0' },
      { name: 'length', type: 'size', value: 'N', help: 'bytes to read' },
      { name: 'output', short: 'o', type: 'string', value: 'FILE', help: 'write to FILE instead of stdout' },
    ],
    async run({ args, opts, client, out, signal }) {
      const d = parseDiskName(args.NAME!, { snapshot: true })
      if (opts.length === undefined)
        throw new CairnError('UsageError', 'Missing option --length (see cairn disk read --help)')
      const offset = opts.offset as number
      const length = opts.length as number
      const file = opts.output as string | undefined
      const fh = file ? await open(file, 'w') : undefined
      const bar = new ProgressBar(
        `read ${d.disk}`,
        out.interactive && file !== undefined && length > 16 * PIECE,
      )
      try {
        for (let at = 0; at < length; at += PIECE) {
          const data = await getPages(client, d, offset + at, Math.min(PIECE, length - at), signal)
          if (fh) await fh.write(data, 0, data.length, at)
          else await new Promise<void>((r, j) => process.stdout.write(data, (e) => (e ? j(e) : r())))
          bar.update(at + data.length, length)
        }
      } finally {
        bar.done()
        await fh?.close()
      }
      if (file)
        out.result({ disk: diskText(d), offset, bytes: length, file }, () =>
          out.note(`read ${formatBytes(length)} to ${file}`),
        )
    },
  },
  ...diskSnapshotCommands,
  {
    name: 'disk lease',
    summary: 'Acquire, renew, release, change or break the lease of a disk',
    description:
      'A leased disk refuses writes, resizes and deletion without the lease id (after the reference).\n' +
      'acquire: --duration 15..60 seconds or -1 (infinite, the default), optional --proposed-id;\n' +
      'renew and release: --lease-id; change: --lease-id and --proposed-id; break: optional --break-period.',
    args: [
      { name: 'NAME', help: NAME_HELP },
      { name: 'ACTION', help: 'acquire, renew, release, change or break' },
    ],
    options: [
      { name: 'duration', type: 'number', value: 'SECONDS', help: 'acquire: 15 to 60, or -1 for infinite' },
      { name: 'lease-id', type: 'string', value: 'ID', help: 'the active lease id' },
      { name: 'proposed-id', type: 'string', value: 'ID', help: 'the new lease id (a GUID)' },
      {
        name: 'break-period',
        type: 'number',
        value: 'SECONDS',
        help: 'break: seconds before the lease ends',
      },
    ],
    examples: ['cairn disk lease os acquire --duration 60', 'cairn disk lease os release --lease-id ID'],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args.NAME!)
      const action = args.ACTION!
      if (!['acquire', 'renew', 'release', 'change', 'break'].includes(action)) {
        throw new CairnError(
          'UsageError',
          `Unknown lease action "${action}": use acquire, renew, release, change or break`,
        )
      }
      const body: LeaseRequest = { action: action as LeaseRequest['action'] }
      if (opts.duration !== undefined) body.duration = opts.duration as number
      if (opts['lease-id'] !== undefined) body.leaseId = opts['lease-id'] as string
      if (opts['proposed-id'] !== undefined) body.proposedId = opts['proposed-id'] as string
      if (opts['break-period'] !== undefined) body.breakPeriod = opts['break-period'] as number
      const r = await client.post<LeaseResult, LeaseRequest>(`${diskPath(d)}/lease`, body)
      out.result(r, (x) =>
        out.keyValues([
          ['disk', diskText(d)],
          ['action', action],
          ['lease id', x.id],
          ['seconds left', x.leaseTime],
        ]),
      )
    },
  },
  {
    name: 'disk sequence-number',
    summary: "Set a disk's sequence number: max (raise to VALUE), update (set to VALUE) or increment",
    args: [
      { name: 'NAME', help: NAME_HELP },
      { name: 'ACTION', help: 'max, update or increment' },
      { name: 'VALUE', help: 'the number (not for increment)', optional: true },
    ],
    options: [
      { name: 'lease-id', type: 'string', value: 'ID', help: 'the lease id, when the disk is leased' },
    ],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args.NAME!)
      const action = args.ACTION!
      if (!['max', 'update', 'increment'].includes(action)) {
        throw new CairnError('UsageError', `Unknown action "${action}": use max, update or increment`)
      }
      const value = args.VALUE === undefined ? undefined : Number(args.VALUE)
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new CairnError(
          'UsageError',
          `Cannot use sequence number "${args.VALUE}": a whole number >= 0 is needed`,
        )
      }
      const r = await client.post<WriteResult, SequenceNumberRequest>(`${diskPath(d)}/sequence-number`, {
        action: action as SequenceNumberRequest['action'],
        ...(value === undefined ? {} : { value }),
        ...(opts['lease-id'] === undefined ? {} : { leaseId: opts['lease-id'] as string }),
      })
      out.result(r, (x) => out.line(`sequence number of ${diskText(d)}: ${x.sequenceNumber}`))
    },
  },
  {
    name: 'disk copy',
    summary: 'Make a new disk from a disk or snapshot without copying data',
    args: [
      { name: 'SOURCE', help: `${NAME_HELP}[@SNAPSHOT]` },
      { name: 'TARGET', help: NAME_HELP },
    ],
    options: [{ name: 'overwrite', type: 'boolean', help: 'replace the content of an existing TARGET' }],
    examples: ['cairn disk copy web1-os@2026-11-22T19:37:17.1234567Z web1-os-restored'],
    async run({ args, opts, client, out }) {
      const s = parseDiskName(args.SOURCE!, { snapshot: true })
      const t = parseDiskName(args.TARGET!)
      const info = await client.post<Disk, CopyDiskRequest>(`${diskPath(s)}/copy`, {
        target: { account: t.account, container: t.container, disk: t.disk },
        ...(s.snapshot ? { snapshot: s.snapshot } : {}),
        ...(opts.overwrite ? { overwrite: true } : {}),
      })
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk space',
    summary: 'Show the bytes a disk or snapshot uses and the bytes only it holds',
    args: [{ name: 'NAME', help: `${NAME_HELP}[@SNAPSHOT]` }],
    async run({ args, client, out }) {
      const d = parseDiskName(args.NAME!, { snapshot: true })
      const r = await client.get<DiskSpace>(`${diskPath(d)}/space`, {
        snapshot: d.snapshot,
      })
      out.result(r, (x) =>
        out.keyValues([
          ['disk', diskText(d)],
          ['used', `${formatBytes(x.usedBytes)} (${x.usedBytes})`],
          ['exclusive', `${formatBytes(x.exclusiveBytes)} (${x.exclusiveBytes})`],
        ]),
      )
    },
  },
]
