import {
  accessSync,
  chmodSync,
  constants,
  createWriteStream,
  existsSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, resolve, sep } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type {
  ArchiveJobRequest,
  FileEntry,
  FileVersion,
  Mount,
  MountRequest,
  PointVolume,
} from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION, type OptionDef } from '../command.js'
import { followJob, type Job } from './_jobs.js'
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

/** The error of a local file the command cannot write: FileNotFound when its folder is missing. */
function cannotWrite(path: string, err: unknown): CairnError {
  const code = (err as NodeJS.ErrnoException).code
  if ((code === 'ENOENT' || code === 'ENOTDIR') && !existsSync(dirname(resolve(path))))
    return new CairnError(
      'FileNotFound',
      `Cannot write ${path}: its folder ${dirname(resolve(path))} does not exist`,
    )
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
    return new CairnError('UsageError', `Cannot write ${path}: permission denied`)
  if (code === 'EISDIR') return new CairnError('UsageError', `Cannot write ${path}: it is a folder`)
  return new CairnError('UsageError', `Cannot write ${path}: ${code ?? (err as Error).message}`)
}

/** Refuses a file path this command could not create or replace (its folder missing or read-only, a folder). */
function checkWritable(path: string): void {
  try {
    if (existsSync(path)) {
      if (statSync(path).isDirectory()) throw Object.assign(new Error(path), { code: 'EISDIR' })
      accessSync(path, constants.W_OK)
    } else accessSync(dirname(resolve(path)), constants.W_OK)
  } catch (err) {
    throw cannotWrite(path, err)
  }
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
      const script = typeof opts.script === 'string' ? opts.script : undefined
      // A script that cannot be written is refused before the mount exists, not after.
      if (script !== undefined) checkWritable(script)
      const vault = await itemVault(client, vm, opts)
      const body: MountRequest = opts.hours !== undefined ? { hours: opts.hours as number } : {}
      const at = `${pointPath(vault, vm, opts.rp as string)}/mounts`
      const m = await client.post<Mount, MountRequest>(at, body)
      if (script !== undefined) {
        try {
          writeFileSync(script, m.script, { mode: 0o700 })
          chmodSync(script, 0o700)
        } catch (err) {
          // Nobody would learn the key of a mount whose script was lost: end it.
          await client.delete(`${at}/${enc(m.id)}`).catch(() => undefined)
          throw cannotWrite(script, err)
        }
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
    options: [vaultOpt, LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const list = await client.list<Mount>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/mounts`,
        {},
        { max: opts.limit as number | undefined },
      )
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

// --- browse: `cairn rp volumes|files|download|history` ---

const locationOpts: OptionDef[] = [
  { name: 'disk', type: 'string', value: 'D', help: 'disk of the point: os (default) or lunN' },
  {
    name: 'partition',
    type: 'string',
    value: 'N',
    help: 'partition number, or "disk" for a whole-disk file system (default: the first browsable volume)',
  },
]

function locationQuery(opts: Record<string, unknown>): Record<string, string | undefined> {
  return { disk: opts.disk as string | undefined, partition: opts.partition as string | undefined }
}

const modeText = (e: FileEntry) => {
  const kind = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?'
  const bits = e.mode & 0o777
  const rwx = (n: number) => `${n & 4 ? 'r' : '-'}${n & 2 ? 'w' : '-'}${n & 1 ? 'x' : '-'}`
  return kind + rwx(bits >> 6) + rwx((bits >> 3) & 7) + rwx(bits & 7)
}

export const fileBrowseCommands: CommandDef[] = [
  {
    name: 'rp volumes',
    summary:
      'The partitions and file systems of every disk of a recovery point, and whether they can be browsed',
    args: [{ name: 'VM', help: 'a protected VM' }],
    options: [rpOpt, vaultOpt, LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const items = await client.list<PointVolume>(
        `${pointPath(vault, vm, opts.rp as string)}/volumes`,
        {},
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'disk', value: (v) => v.disk },
          { header: 'partition', value: (v) => v.partition ?? 'disk' },
          { header: 'size', value: (v) => formatBytes(v.size), align: 'right' },
          { header: 'type', value: (v) => v.fsType },
          { header: 'label', value: (v) => v.label },
          { header: 'browse', value: (v) => (v.supported ? 'yes' : `no: ${v.reason ?? ''}`) },
        ]),
      )
    },
  },
  {
    name: 'rp files',
    summary: 'List a folder of a recovery point (or show one file) without restoring it',
    args: [
      { name: 'VM', help: 'a protected VM' },
      { name: 'PATH', help: 'path inside the file system (default /)', optional: true },
    ],
    options: [rpOpt, ...locationOpts, vaultOpt, LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const base = pointPath(vault, vm, opts.rp as string)
      const path = args.PATH ?? '/'
      const entry = await client.get<FileEntry>(`${base}/file`, { path, ...locationQuery(opts) })
      const rows =
        entry.type === 'dir'
          ? await client.list<FileEntry>(
              `${base}/files`,
              { path, ...locationQuery(opts) },
              { max: opts.limit as number | undefined },
            )
          : [entry]
      out.result(rows, (list) =>
        out.table(list, [
          { header: 'mode', value: modeText },
          { header: 'uid', value: (e) => e.uid, align: 'right' },
          { header: 'gid', value: (e) => e.gid, align: 'right' },
          { header: 'size', value: (e) => e.size, align: 'right' },
          { header: 'modified', value: (e) => new Date(e.mtime).toISOString() },
          {
            header: 'name',
            value: (e) => (e.type === 'symlink' ? `${e.name} -> ${e.target ?? ''}` : e.name),
          },
        ]),
      )
    },
  },
  {
    name: 'rp download',
    summary:
      'Take files back from a recovery point: files and folders into DIR (extracted), or as one FILE.tar / FILE.zip; with --job the service writes the archive to a file under its export root',
    args: [
      { name: 'VM', help: 'a protected VM' },
      {
        name: 'PATH',
        help: 'file or folder inside the file system; several (of one volume) go into one archive, each under its own name',
        variadic: true,
      },
    ],
    options: [
      rpOpt,
      { name: 'to', type: 'string', value: 'DIR|FILE.tar|FILE.zip', help: 'where to put it', required: true },
      {
        name: 'job',
        type: 'boolean',
        help: 'the service writes the archive (a host path under its export root), as a job',
      },
      { name: 'overwrite', type: 'boolean', help: 'replace files that exist' },
      ...locationOpts,
      vaultOpt,
    ],
    async run(ctx) {
      const { args, opts, client, out } = ctx
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const base = pointPath(vault, vm, opts.rp as string)
      const to = opts.to as string
      const format = to.endsWith('.zip') ? 'zip' : 'tar'
      const paths = ctx.lists?.PATH ?? [args.PATH!]
      // One path keeps the one-path forms of the API (`path=…`); several repeat it.
      const pathValue = paths.length === 1 ? paths[0]! : paths
      if (opts.job === true) {
        const partition =
          opts.partition === undefined
            ? undefined
            : opts.partition === 'disk'
              ? 'disk'
              : Number(opts.partition)
        const job = await client.post<Job, ArchiveJobRequest>(`${base}/archive`, {
          path: pathValue,
          format,
          to,
          ...(opts.overwrite === true ? { overwrite: true } : {}),
          ...(opts.disk !== undefined ? { disk: opts.disk as string } : {}),
          ...(partition !== undefined ? { partition } : {}),
        })
        const done = await followJob(client, out, job, 'download', ctx.signal)
        return out.result(done, (j) => out.line(`${j.state}: ${to}`))
      }
      const query = { path: pathValue, ...locationQuery(opts) }
      if (to.endsWith('.tar') || to.endsWith('.zip')) {
        if (!opts.overwrite && existsSync(to))
          throw new CairnError('UsageError', `Cannot write ${to}: it exists (--overwrite replaces it)`)
        const res = await client.raw('GET', `${base}/archive`, { query: { ...query, format } })
        await pipeline(Readable.fromWeb(res.body as never), createWriteStream(to))
        return out.result({ path: to, format, bytes: statSync(to).size }, (r) =>
          out.line(`wrote ${r.path} (${formatBytes(r.bytes)})`),
        )
      }
      // Into a folder: a file as it is, folders (and several paths) extracted from the service's tar.
      mkdirSync(to, { recursive: true })
      const entry =
        paths.length === 1
          ? await client.get<FileEntry>(`${base}/file`, { ...query, path: paths[0]! })
          : undefined
      if (entry?.type === 'file') {
        const target = join(to, entry.name)
        if (!opts.overwrite && existsSync(target))
          throw new CairnError('UsageError', `Cannot write ${target}: it exists (--overwrite replaces it)`)
        const res = await client.raw('GET', `${base}/file/content`, { query })
        await pipeline(
          Readable.fromWeb(res.body as never),
          createWriteStream(target, { mode: entry.mode & 0o777 }),
        )
        utimesSync(target, new Date(entry.mtime), new Date(entry.mtime))
        return out.result({ path: target, bytes: entry.size }, (r) =>
          out.line(`wrote ${r.path} (${formatBytes(r.bytes)})`),
        )
      }
      const res = await client.raw('GET', `${base}/archive`, { query: { ...query, format: 'tar' } })
      const n = await extractTar(Readable.fromWeb(res.body as never), to, opts.overwrite === true)
      out.result({ path: to, ...n }, (r) =>
        out.line(`extracted ${r.entries} entries (${formatBytes(r.bytes)}) into ${r.path}`),
      )
    },
  },
  {
    name: 'rp history',
    summary:
      'The versions of one file across every recovery point of a VM (size, mtime, SHA-256), identical ones merged',
    args: [
      { name: 'VM', help: 'a protected VM' },
      { name: 'PATH', help: 'a file inside the file system' },
    ],
    options: [...locationOpts, vaultOpt, LIMIT_OPTION],
    async run({ args, opts, client, out }) {
      const vm = args.VM!
      const vault = await itemVault(client, vm, opts)
      const items = await client.list<FileVersion>(
        `/api/v1/vaults/${enc(vault)}/protectedItems/${enc(vm)}/fileHistory`,
        { path: args.PATH!, ...locationQuery(opts) },
        { max: opts.limit as number | undefined },
      )
      out.result(items, (rows) =>
        out.table(rows, [
          { header: 'first point', value: (v) => v.points[0]!.id },
          { header: 'time', value: (v) => v.points[0]!.time },
          { header: 'points', value: (v) => v.points.length, align: 'right' },
          { header: 'size', value: (v) => v.size, align: 'right' },
          { header: 'modified', value: (v) => new Date(v.mtime).toISOString() },
          { header: 'sha256', value: (v) => v.sha256 },
        ]),
      )
    },
  },
]

/**
 * Extracts a tar stream into `dir`: files with their modes and mtimes, folders, symlinks and hard links
 * as they are; an entry whose path would leave `dir` is refused.
 */
async function extractTar(
  stream: Readable,
  dir: string,
  overwrite: boolean,
): Promise<{ entries: number; bytes: number }> {
  const root = resolve(dir)
  const inside = (name: string) => {
    const p = resolve(root, name)
    if (p !== root && !p.startsWith(`${root}${sep}`))
      throw new CairnError('InvalidRequest', `Cannot extract "${name}": it would leave ${root}`)
    return p
  }
  // Loaded here: `cairn` starts without it.
  const { extract: tarExtract } = await import('tar-stream')
  const extract = tarExtract()
  const dirs: { path: string; mtime: Date; mode: number }[] = []
  let entries = 0
  let bytes = 0
  const done = new Promise<void>((ok, fail) => {
    extract.on('entry', (h, body, next) => {
      const run = async () => {
        const p = inside(h.name)
        const mtime = h.mtime ?? new Date()
        if (!overwrite && h.type !== 'directory' && existsSync(p))
          throw new CairnError('UsageError', `Cannot write ${p}: it exists (--overwrite replaces it)`)
        if (h.type === 'directory') {
          mkdirSync(p, { recursive: true })
          dirs.push({ path: p, mtime, mode: (h.mode ?? 0o755) & 0o7777 })
        } else if (h.type === 'symlink') {
          rmSync(p, { force: true })
          symlinkSync(h.linkname ?? '', p)
          lutimesSync(p, mtime, mtime)
        } else if (h.type === 'link') {
          rmSync(p, { force: true })
          linkSync(inside(h.linkname ?? ''), p)
        } else if (h.type === 'file') {
          rmSync(p, { force: true })
          await pipeline(body, createWriteStream(p, { mode: (h.mode ?? 0o644) & 0o7777 }))
          chmodSync(p, (h.mode ?? 0o644) & 0o7777)
          utimesSync(p, mtime, mtime)
          bytes += h.size ?? 0
        }
        entries++
      }
      run().then(
        () => {
          body.resume()
          next()
        },
        (err: unknown) => fail(err),
      )
    })
    extract.on('finish', () => ok())
    extract.on('error', fail)
  })
  stream.pipe(extract)
  await done
  // Folders last, deepest first: writing their files changed their mtimes.
  for (const d of dirs.reverse()) {
    chmodSync(d.path, d.mode)
    utimesSync(d.path, d.mtime, d.mtime)
  }
  return { entries, bytes }
}
