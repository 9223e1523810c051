// Folders of a recovery point's file system as streaming archives: tar (POSIX ustar/pax by tar-stream:
// modes, owners, mtimes, symlinks and hard links as they are) and zip (yazl: modes, mtimes, symlinks as
// Info-ZIP stores them; a hard link becomes a second copy, zip has none).
import { PassThrough, Readable, type Writable } from 'node:stream'
import { pack as tarPack } from 'tar-stream'
import yazl from 'yazl'
import type { FileEntry, FileSystem } from '../filesystems/index.js'
import { CairnError } from '../util/index.js'

/** Bytes read from a file at a time while archiving. */
const PIECE = 1024 * 1024

/** What an archive holds so far (for a job's progress). */
export interface ArchiveProgress {
  entries: number
  bytes: number
}

/** Deepest folder nesting an archive follows (a deeper tree is damaged or hostile). */
const MAX_DEPTH = 4096

/** Most paths one archive takes (more: archive a folder that holds them). */
export const MAX_ARCHIVE_PATHS = 256

/** One path of an archive: its entry and the name it has at the archive's top. */
export interface ArchiveRoot {
  entry: FileEntry
  name: string
}

/**
 * The tops of an archive of several paths: each under its own name (the root folder as `root`); a path
 * given twice, or inside a folder also given, is stored once, inside that folder; a name already
 * taken by another path (`/etc/app` and `/srv/app`) gets ` (2)`, ` (3)`… before its extension.
 */
export function archiveRoots(entries: FileEntry[]): ArchiveRoot[] {
  const inside = (path: string, dir: FileEntry) =>
    dir.type === 'dir' && path !== dir.path && (dir.path === '/' || path.startsWith(`${dir.path}/`))
  const kept = entries.filter(
    (e, i) => entries.findIndex((o) => o.path === e.path) === i && !entries.some((d) => inside(e.path, d)),
  )
  const taken = new Set<string>()
  return kept.map((entry) => {
    const base = entry.path === '/' ? 'root' : entry.name
    let name = base
    for (let n = 2; taken.has(name.toLowerCase()); n++) {
      const dot = entry.type === 'file' ? base.lastIndexOf('.') : -1
      name = dot > 0 ? `${base.slice(0, dot)} (${n})${base.slice(dot)}` : `${base} (${n})`
    }
    // Case-insensitive: a zip is often opened on Windows, where `App` and `app` are one name.
    taken.add(name.toLowerCase())
    return { entry, name }
  })
}

/**
 * Every entry under each root, depth first in name order (a folder's whole subtree right after it, as
 * tar writes a tree: GNU tar then restores folder mtimes right), each with its path inside the archive
 * (`top/…`). A folder met twice (a loop in a damaged file system) is refused, and so is a name that
 * would climb out of its folder in the archive (`..`, or a `/` inside a name of a damaged one).
 */
async function* entriesOf(
  fs: FileSystem,
  roots: ArchiveRoot[],
  signal?: AbortSignal,
): AsyncGenerator<{ entry: FileEntry; name: string }> {
  for (const root of roots) {
    yield root
    if (root.entry.type === 'dir') yield* below(fs, root.entry, root.name, new Set([root.entry.id]), signal)
  }
}

async function* below(
  fs: FileSystem,
  dir: FileEntry,
  name: string,
  seen: Set<string>,
  signal: AbortSignal | undefined,
  depth = 1,
): AsyncGenerator<{ entry: FileEntry; name: string }> {
  if (depth > MAX_DEPTH)
    throw new CairnError(
      'FileSystemCorrupt',
      `Cannot archive ${dir.path}: folders nest deeper than ${MAX_DEPTH}`,
    )
  for (let start = 0; ; ) {
    signal?.throwIfAborted()
    const page = await fs.list(dir.path, { start, limit: 1000 })
    for (const entry of page.entries) {
      if (entry.name === '' || entry.name === '.' || entry.name === '..' || entry.name.includes('/'))
        throw new CairnError(
          'FileSystemCorrupt',
          `Cannot archive ${dir.path}: it holds an entry named ${JSON.stringify(entry.name)}`,
        )
      const child = `${name}/${entry.name}`
      yield { entry, name: child }
      if (entry.type === 'dir') {
        if (seen.has(entry.id))
          throw new CairnError(
            'FileSystemCorrupt',
            `Cannot archive ${entry.path}: the folder is met twice (a loop)`,
          )
        seen.add(entry.id)
        yield* below(fs, entry, child, seen, signal, depth + 1)
      }
    }
    if (page.next === undefined) break
    start = page.next
  }
}

/** A file's bytes, piece by piece. */
async function* contentOf(fs: FileSystem, entry: FileEntry, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (let at = 0; at < entry.size; at += PIECE) {
    signal?.throwIfAborted()
    yield await fs.read(entry, at, Math.min(PIECE, entry.size - at))
  }
}

/** A tar stream of the roots (folders, with everything below them, and files). */
export function tarArchive(
  fs: FileSystem,
  roots: ArchiveRoot[],
  options: { signal?: AbortSignal; onProgress?: (p: ArchiveProgress) => void } = {},
): Readable {
  const pack = tarPack()
  const progress: ArchiveProgress = { entries: 0, bytes: 0 }
  const run = async () => {
    const links = new Map<string, string>()
    for await (const { entry, name } of entriesOf(fs, roots, options.signal)) {
      const header = {
        name,
        mode: entry.mode & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
        mtime: new Date(entry.mtime),
      }
      if (entry.type === 'dir') await addEntry(pack, { ...header, type: 'directory' })
      else if (entry.type === 'symlink')
        await addEntry(pack, {
          ...header,
          type: 'symlink',
          linkname: entry.target ?? (await fs.readlink(entry.path)),
        })
      else if (entry.type === 'file') {
        const first = entry.nlink > 1 ? links.get(entry.id) : undefined
        if (first !== undefined) {
          await addEntry(pack, { ...header, type: 'link', linkname: first })
        } else {
          if (entry.nlink > 1) links.set(entry.id, name)
          const sink = pack.entry({ ...header, type: 'file', size: entry.size }) as unknown as Writable
          const done = new Promise<void>((resolve, reject) => {
            sink.once('finish', resolve)
            sink.once('error', reject)
          })
          for await (const piece of contentOf(fs, entry, options.signal)) {
            if (!sink.write(piece)) await new Promise((r) => sink.once('drain', r))
            progress.bytes += piece.length
          }
          sink.end()
          await done
        }
      } else continue
      progress.entries++
      options.onProgress?.({ ...progress })
    }
    pack.finalize()
  }
  run().catch((err: unknown) => pack.destroy(err as Error))
  // tar-stream's streams are streamx streams: a Node Readable over it for pipelines and Readable.toWeb.
  return Readable.from(pack as unknown as AsyncIterable<Buffer>)
}

function addEntry(
  pack: ReturnType<typeof tarPack>,
  header: Parameters<ReturnType<typeof tarPack>['entry']>[0],
) {
  return new Promise<void>((resolve, reject) => {
    pack.entry(header, (err) => (err ? reject(err) : resolve()))
  })
}

/** A zip stream of the roots (folders, with everything below them, and files). */
export function zipArchive(
  fs: FileSystem,
  roots: ArchiveRoot[],
  options: { signal?: AbortSignal; onProgress?: (p: ArchiveProgress) => void } = {},
): Readable {
  const zip = new yazl.ZipFile()
  const out = new PassThrough()
  zip.outputStream.pipe(out)
  zip.outputStream.on('error', (err: Error) => out.destroy(err))
  const progress: ArchiveProgress = { entries: 0, bytes: 0 }
  const run = async () => {
    for await (const { entry, name } of entriesOf(fs, roots, options.signal)) {
      const common = { mtime: new Date(entry.mtime), mode: entry.mode }
      if (entry.type === 'dir') zip.addEmptyDirectory(name, common)
      else if (entry.type === 'symlink') {
        const target = entry.target ?? (await fs.readlink(entry.path))
        zip.addBuffer(Buffer.from(target), name, { ...common, compress: false })
      } else if (entry.type === 'file') {
        // One file at a time: the next is queued only when this one is written (memory stays bounded).
        const body = Readable.from(contentOf(fs, entry, options.signal))
        const written = new Promise<void>((resolve, reject) => {
          body.once('end', resolve)
          body.once('error', reject)
        })
        body.on('data', (piece: Buffer) => {
          progress.bytes += piece.length
        })
        body.pause()
        // Deflate's fastest level: most of the saving at several times zlib's default speed (the
        // download streams as it is made, so its speed is the archive's speed).
        zip.addReadStream(body, name, { ...common, size: entry.size, compressionLevel: 1 })
        await written
      } else continue
      progress.entries++
      options.onProgress?.({ ...progress })
    }
    zip.end()
  }
  run().catch((err: unknown) => out.destroy(err as Error))
  return out
}
