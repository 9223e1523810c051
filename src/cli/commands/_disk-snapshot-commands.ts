// `cairn disk snapshot|snapshots|snapshot-delete|diff|promote`: a disk's snapshots and what changed between them.
import type {
  Disk,
  DiskDiff,
  PromoteRequest,
  SnapshotGroup,
  SnapshotGroupRequest,
  WriteResult,
} from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import { type ApiClient, LIST_PAGE_SIZE } from '../api-client.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { NAME_HELP, parseMetadata, showDisk } from './_disk-json.js'
import { type DiskName, diskPath, diskText, parseDiskName } from './_disk-names.js'

/** Every page of a diff (following nextCursor). */
async function fullDiff(client: ApiClient, d: DiskName, query: Record<string, string | number | undefined>) {
  const all: DiskDiff = { pageRanges: [], clearRanges: [] }
  let cursor: string | undefined
  do {
    const part = await client.get<DiskDiff>(`${diskPath(d)}/diff`, {
      ...query,
      limit: LIST_PAGE_SIZE,
      cursor,
    })
    all.pageRanges.push(...part.pageRanges)
    all.clearRanges.push(...part.clearRanges)
    cursor = part.nextCursor
  } while (cursor !== undefined)
  return all
}

/** The snapshot commands of `cairn disk` (snapshots, diffs, promote). */
export const diskSnapshotCommands: CommandDef[] = [
  {
    name: 'disk snapshot',
    summary: 'Take an instant read-only snapshot; with --with, of several disks at one instant',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [
      {
        name: 'with',
        type: 'list',
        value: 'NAME',
        help: 'another disk of the consistency group (repeatable)',
      },
      { name: 'metadata', type: 'list', value: 'KEY=VALUE', help: 'metadata of the snapshot (repeatable)' },
    ],
    examples: [
      'cairn disk snapshot web1-os',
      'cairn disk snapshot web1-os --with web1-data --with web1-logs',
    ],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args.NAME!)
      const others = ((opts.with as string[]) ?? []).map((n) => parseDiskName(n))
      let items: Disk[]
      if (others.length === 0) {
        const md = parseMetadata(opts.metadata)
        items = [await client.post<Disk>(`${diskPath(d)}/snapshots`, md ? { metadata: md } : {})]
      } else {
        const disks = [d, ...others].map(({ account, container, disk }) => ({ account, container, disk }))
        items = (await client.post<SnapshotGroup, SnapshotGroupRequest>('/api/v1/snapshot-groups', { disks }))
          .items
      }
      out.result(others.length === 0 ? items[0] : items, () => {
        for (const s of items) out.line(`${s.ref.account}/${s.ref.container}/${s.ref.disk}@${s.snapshot}`)
      })
    },
  },
  {
    name: 'disk snapshots',
    summary: 'List the snapshots of a disk, oldest first',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args.NAME!)
      const items = await client.list<Disk>(
        `${diskPath(d)}/snapshots`,
        {},
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'snapshot', value: (s) => s.snapshot },
          { header: 'size', value: (s) => formatBytes(s.size), align: 'right' },
          { header: 'used', value: (s) => formatBytes(s.usedBytes), align: 'right' },
        ]),
      )
    },
  },
  {
    name: 'disk snapshot-delete',
    summary: 'Delete one snapshot of a disk',
    args: [{ name: 'NAME@SNAPSHOT', help: `${NAME_HELP}@SNAPSHOT` }],
    options: [
      {
        name: 'force',
        type: 'boolean',
        help: 'delete even what protected VMs or recovery points need (those points fall back to the vault)',
      },
    ],
    async run({ args, opts, client, out }) {
      const d = parseDiskName(args['NAME@SNAPSHOT']!, { snapshot: true })
      if (!d.snapshot) throw new CairnError('UsageError', 'Name the snapshot to delete as DISK@SNAPSHOT')
      await client.delete(`${diskPath(d)}/snapshots/${encodeURIComponent(d.snapshot)}`, {
        force: opts.force ? 'true' : undefined,
      })
      out.result({ deleted: diskText(d) }, () => out.line(`deleted ${diskText(d)}`))
    },
  },
  {
    name: 'disk diff',
    summary: 'Changed and cleared page ranges between two snapshots, or a snapshot and the live disk',
    description:
      'With --json: {"pageRanges":[[start,endInclusive],…],"clearRanges":[…]} (Azure-style inclusive ends).',
    args: [{ name: 'NAME', help: NAME_HELP }],
    options: [
      { name: 'from', type: 'string', value: 'SNAPSHOT', help: 'the earlier snapshot' },
      { name: 'to', type: 'string', value: 'SNAPSHOT', help: 'the later snapshot (default: the live disk)' },
      { name: 'offset', type: 'size', value: 'N', help: 'only ranges from this byte' },
      { name: 'length', type: 'size', value: 'N', help: 'only ranges within this many bytes' },
    ],
    async run({ args, opts, client, out }) {
      if (opts.from === undefined)
        throw new CairnError('UsageError', 'Missing option --from (see cairn disk diff --help)')
      const d = parseDiskName(args.NAME!)
      const diff = await fullDiff(client, d, {
        from: opts.from as string,
        to: opts.to as string | undefined,
        offset: opts.offset as number | undefined,
        length: opts.length as number | undefined,
      })
      out.result(diff, (x) => {
        const rows = [
          ...x.pageRanges.map(([s, e]) => ({ kind: 'changed', s, e })),
          ...x.clearRanges.map(([s, e]) => ({ kind: 'cleared', s, e })),
        ].sort((a, b) => a.s - b.s)
        out.table(rows, [
          { header: 'kind', value: (r) => r.kind },
          { header: 'start', value: (r) => r.s, align: 'right' },
          { header: 'end', value: (r) => r.e + 1, align: 'right' },
          { header: 'length', value: (r) => formatBytes(r.e + 1 - r.s), align: 'right' },
        ])
      })
    },
  },
  {
    name: 'disk promote',
    summary: 'Make the content of a disk that of one of its snapshots (no data copied)',
    args: [{ name: 'NAME@SNAPSHOT', help: `${NAME_HELP}@SNAPSHOT` }],
    async run({ args, client, out }) {
      const d = parseDiskName(args['NAME@SNAPSHOT']!, { snapshot: true })
      if (!d.snapshot) throw new CairnError('UsageError', 'Name the snapshot to promote as DISK@SNAPSHOT')
      await client.post<WriteResult, PromoteRequest>(`${diskPath(d)}/promote`, { snapshot: d.snapshot })
      const info = await client.get<Disk>(diskPath({ ...d }))
      out.result(info, (x) => showDisk(out, x))
    },
  },
]
