import { open, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CairnError, formatBytes } from '../../util/index.js'
import type { ApiClient } from '../api-client.js'
import type { CommandContext, CommandDef } from '../command.js'
import { type Output, ProgressBar } from '../output.js'
import { type DiskName, diskPath, diskText, parseDiskName, splitContainer } from './_disk-names.js'

/** A disk or snapshot as the API answers it. */
interface DiskJson {
  ref: { account: string; container: string; disk: string }
  snapshot?: string
  size: number
  sequenceNumber: number
  metadata: Record<string, string>
  etag: string
  lastModified: string
  createdOn: string
  lease: { state: string; status: string }
  usedBytes: number
}

interface DiffJson {
  pageRanges: [number, number][]
  clearRanges: [number, number][]
  nextMarker?: string
}

/** Bytes per request when streaming a file through the API (the largest page write). */
const PIECE = 4 * 1024 * 1024
/** Requests in flight while streaming. */
const PARALLEL = 4

const NAME_HELP = '[[ACCOUNT/]CONTAINER/]DISK (default account devstoreaccount1, container disks)'

const showDisk = (out: Output, d: DiskJson) =>
  out.keyValues([
    ['disk', `${d.ref.account}/${d.ref.container}/${d.ref.disk}`],
    ['snapshot', d.snapshot],
    ['size', `${formatBytes(d.size)} (${d.size})`],
    ['used', `${formatBytes(d.usedBytes)} (${d.usedBytes})`],
    ['sequence', d.sequenceNumber],
    ['lease', `${d.lease.state} (${d.lease.status})`],
    ['etag', d.etag],
    ['modified', d.lastModified],
    ['created', d.createdOn],
    ['metadata', Object.keys(d.metadata).length ? d.metadata : undefined],
  ])

const diskColumns = [
  { header: 'disk', value: (d: DiskJson) => d.ref.disk },
  { header: 'snapshot', value: (d: DiskJson) => d.snapshot },
  { header: 'size', value: (d: DiskJson) => formatBytes(d.size), align: 'right' as const },
  { header: 'used', value: (d: DiskJson) => formatBytes(d.usedBytes), align: 'right' as const },
  { header: 'lease', value: (d: DiskJson) => d.lease.state },
  { header: 'modified', value: (d: DiskJson) => d.lastModified },
]

/** Parses `k=v` options into metadata. */
function metadata(list: unknown): Record<string, string> | undefined {
  const items = (list as string[] | undefined) ?? []
  if (items.length === 0) return undefined
  const out: Record<string, string> = {}
  for (const kv of items) {
    const eq = kv.indexOf('=')
    if (eq <= 0) throw new CairnError('UsageError', `Cannot read metadata "${kv}": use KEY=VALUE`)
    out[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return out
}

/** Runs `tasks` with at most `limit` in flight; stops at the first failure. */
async function pool(tasks: AsyncIterable<() => Promise<void>>, limit: number): Promise<void> {
  const running = new Set<Promise<void>>()
  let failure: unknown
  for await (const task of tasks) {
    if (failure !== undefined) break
    const p: Promise<void> = task().then(
      () => {
        running.delete(p)
      },
      (err) => {
        running.delete(p)
        failure ??= err
      },
    )
    running.add(p)
    if (running.size >= limit) await Promise.race(running)
  }
  await Promise.all(running)
  if (failure !== undefined) throw failure
}

/** PUTs `data` at `offset` of a disk. */
async function putPages(
  client: ApiClient,
  d: DiskName,
  offset: number,
  data: Uint8Array,
  signal: AbortSignal,
  leaseId?: string,
) {
  await client.raw('PUT', `${diskPath(d)}/pages`, {
    query: { offset, leaseId },
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
    signal,
  })
}

/** GETs bytes of a disk or snapshot. */
async function getPages(client: ApiClient, d: DiskName, offset: number, length: number, signal: AbortSignal) {
  const res = await client.raw('GET', `${diskPath(d)}/pages`, {
    query: { offset, length, snapshot: d.snapshot },
    signal,
  })
  return Buffer.from(await res.arrayBuffer())
}

/** Reads a file in pieces: yields [offset, bytes] in order. */
async function* filePieces(path: string, size: number, piece: number): AsyncGenerator<[number, Buffer]> {
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new CairnError('FileNotFound', `Cannot read "${path}": ${err.message}`)
  })
  try {
    for (let pos = 0; pos < size; pos += piece) {
      const want = Math.min(piece, size - pos)
      const buf = Buffer.alloc(want)
      let got = 0
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      yield [pos, buf]
    }
  } finally {
    await fh.close()
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    const st = await stat(path)
    if (st.isFile()) return st.size
  } catch (err) {
    throw new CairnError('FileNotFound', `Cannot read "${path}": ${(err as Error).message}`)
  }
  throw new CairnError('UsageError', `Cannot stream "${path}" through the API: it is not a regular file`)
}

/** Streams a local raw image into a new disk: zero pages are skipped, a failure deletes the disk. */
async function importLocal(ctx: CommandContext, d: DiskName, path: string): Promise<DiskJson> {
  const { client, out, signal } = ctx
  const { forEachDataRun } = await import('../../diskstore/index.js')
  const bytes = await fileSize(path)
  const size = Math.ceil(bytes / 512) * 512
  await client.put(diskPath(d), { size })
  const bar = new ProgressBar(`import ${d.disk}`, out.interactive)
  let done = 0
  try {
    async function* tasks() {
      for await (const [pos, buf] of filePieces(path, size, PIECE)) {
        const runs: [number, number][] = []
        forEachDataRun(buf, buf.length, (s, e) => runs.push([s, e]))
        yield async () => {
          for (const [s, e] of runs) await putPages(client, d, pos + s, buf.subarray(s, e), signal)
          done += buf.length
          bar.update(done, size)
        }
      }
    }
    await pool(tasks(), PARALLEL)
    bar.update(size, size)
  } catch (err) {
    await client.delete(diskPath(d), { snapshots: 'include' }).catch(() => {})
    throw err
  } finally {
    bar.done()
  }
  return client.get<DiskJson>(diskPath(d))
}

/** Streams a disk or snapshot into a sparse local file: only written ranges are fetched. */
async function exportLocal(
  ctx: CommandContext,
  d: DiskName,
  path: string,
): Promise<{ path: string; size: number }> {
  const { client, out, signal } = ctx
  const info = await client.get<DiskJson>(diskPath(d), { snapshot: d.snapshot })
  const { pageRanges } = await client.get<{ pageRanges: [number, number][] }>(`${diskPath(d)}/ranges`, {
    snapshot: d.snapshot,
  })
  const total = pageRanges.reduce((n, [s, e]) => n + e + 1 - s, 0)
  const fh = await open(path, 'w').catch((err: Error) => {
    throw new CairnError('FileNotFound', `Cannot write "${path}": ${err.message}`)
  })
  const bar = new ProgressBar(`export ${d.disk}`, out.interactive)
  let done = 0
  try {
    await fh.truncate(info.size)
    async function* tasks() {
      for (const [start, endInclusive] of pageRanges) {
        for (let at = start; at <= endInclusive; at += PIECE) {
          const n = Math.min(PIECE, endInclusive + 1 - at)
          yield async () => {
            const data = await getPages(client, d, at, n, signal)
            await fh.write(data, 0, data.length, at)
            done += n
            bar.update(done, total)
          }
        }
      }
    }
    await pool(tasks(), PARALLEL)
    await fh.sync()
  } finally {
    bar.done()
    await fh.close()
  }
  return { path, size: info.size }
}

/** Every page of a diff (following nextMarker). */
async function fullDiff(client: ApiClient, d: DiskName, query: Record<string, string | number | undefined>) {
  const all: DiffJson = { pageRanges: [], clearRanges: [] }
  let marker: string | undefined
  do {
    const part = await client.get<DiffJson>(`${diskPath(d)}/diff`, { ...query, marker })
    all.pageRanges.push(...part.pageRanges)
    all.clearRanges.push(...part.clearRanges)
    marker = part.nextMarker
  } while (marker !== undefined)
  return all
}

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
      const md = metadata(opts.metadata)
      const info = await client.put<DiskJson>(diskPath(d), {
        size: opts.size,
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
    ],
    async run({ args, opts, client, out }) {
      const { account, container } = splitContainer(args.CONTAINER ?? 'devstoreaccount1/disks')
      const items: DiskJson[] = []
      let marker: string | undefined
      do {
        const page = await client.get<{ items: DiskJson[]; nextMarker?: string }>(
          `/api/v1/accounts/${encodeURIComponent(account)}/containers/${encodeURIComponent(container)}/disks`,
          {
            includeSnapshots: opts.snapshots ? 'true' : undefined,
            prefix: opts.prefix as string | undefined,
            marker,
          },
        )
        items.push(...page.items)
        marker = page.nextMarker
      } while (marker !== undefined)
      out.result(items, (rows) => out.table(rows, diskColumns))
    },
  },
  {
    name: 'disk show',
    summary: 'Show a disk or one of its snapshots',
    args: [{ name: 'NAME', help: `${NAME_HELP}[@SNAPSHOT]` }],
    async run({ args, client, out }) {
      const d = parseDiskName(args.NAME!, { snapshot: true })
      const info = await client.get<DiskJson>(diskPath(d), { snapshot: d.snapshot })
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
      await client.post(`${diskPath(d)}/resize`, { size: opts.size })
      const info = await client.get<DiskJson>(diskPath(d))
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
      'The file is streamed through the API in 4 MiB pieces, skipping zero pages, so it works against a\n' +
      'remote service. With --server, the service reads FILE (a regular file) on its own machine; it must\n' +
      'be under a folder the service was started with --import-root (docs/security.md).',
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
    ],
    examples: ['cairn disk import web1-os web1-os.raw', 'cairn disk import os /srv/images/os.raw --server'],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const d = parseDiskName(args.NAME!)
      const info = opts.server
        ? await client.post<DiskJson>(`${diskPath(d)}/import`, { path: resolve(args.FILE!) })
        : await importLocal(ctx, d, args.FILE!)
      out.result(info, (x) => showDisk(out, x))
    },
  },
  {
    name: 'disk export',
    summary: 'Export a disk or snapshot to a sparse raw file',
    description:
      'Only written ranges are fetched; holes stay holes in FILE. Export a snapshot for a consistent image\n' +
      'of a disk in use. With --server, the service writes FILE on its own machine, under a folder it was\n' +
      'started with --export-root, and replaces an existing FILE only with --overwrite (docs/security.md).',
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
      { name: 'overwrite', type: 'boolean', help: 'with --server: replace FILE if it exists' },
    ],
    examples: [
      'cairn disk export os@2026-11-22T19:37:17.1234567Z os.raw',
      'cairn disk export os /srv/exports/os.raw --server --overwrite',
    ],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const d = parseDiskName(args.NAME!, { snapshot: true })
      const result = opts.server
        ? await client.post<{ path: string; size: number }>(`${diskPath(d)}/export`, {
            path: resolve(args.FILE!),
            ...(d.snapshot ? { snapshot: d.snapshot } : {}),
            ...(opts.overwrite ? { overwrite: true } : {}),
          })
        : await exportLocal(ctx, d, args.FILE!)
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
        await putPages(client, d, offset + pos, buf, signal, opts['lease-id'] as string | undefined)
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
      let items: DiskJson[]
      if (others.length === 0) {
        const md = metadata(opts.metadata)
        items = [await client.post<DiskJson>(`${diskPath(d)}/snapshots`, md ? { metadata: md } : {})]
      } else {
        const disks = [d, ...others].map(({ account, container, disk }) => ({ account, container, disk }))
        items = (await client.post<{ items: DiskJson[] }>('/api/v1/snapshot-groups', { disks })).items
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
    async run({ args, client, out }) {
      const d = parseDiskName(args.NAME!)
      const { items } = await client.get<{ items: DiskJson[] }>(`${diskPath(d)}/snapshots`)
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
      await client.post(`${diskPath(d)}/promote`, { snapshot: d.snapshot })
      const info = await client.get<DiskJson>(diskPath({ ...d }))
      out.result(info, (x) => showDisk(out, x))
    },
  },
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
      const body: Record<string, unknown> = { action }
      if (opts.duration !== undefined) body.duration = opts.duration
      if (opts['lease-id'] !== undefined) body.leaseId = opts['lease-id']
      if (opts['proposed-id'] !== undefined) body.proposedId = opts['proposed-id']
      if (opts['break-period'] !== undefined) body.breakPeriod = opts['break-period']
      const r = await client.post<{ id?: string; leaseTime?: number; etag: string }>(
        `${diskPath(d)}/lease`,
        body,
      )
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
      const r = await client.post<{ sequenceNumber: number }>(`${diskPath(d)}/sequence-number`, {
        action,
        ...(value === undefined ? {} : { value }),
        ...(opts['lease-id'] === undefined ? {} : { leaseId: opts['lease-id'] }),
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
      const info = await client.post<DiskJson>(`${diskPath(s)}/copy`, {
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
      const r = await client.get<{ usedBytes: number; exclusiveBytes: number }>(`${diskPath(d)}/space`, {
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
