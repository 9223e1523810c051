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

/**
 * Every entry under `root`, depth first in name order (a folder's whole subtree right after it, as tar
 * writes a tree: GNU tar then restores folder mtimes right), each with its path inside the archive
 * (`top/…`). A folder met twice (a loop in a damaged file system) is refused.
 */
async function* entriesOf(
  fs: FileSystem,
  root: FileEntry,
  signal?: AbortSignal,
): AsyncGenerator<{ entry: FileEntry; name: string }> {
  const top = root.path === '/' ? 'root' : root.name
  yield { entry: root, name: top }
  if (root.type !== 'dir') return
  const seen = new Set<string>([root.id])
  async function* below(
    dir: FileEntry,
    name: string,
    depth: number,
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
        const child = `${name}/${entry.name}`
        yield { entry, name: child }
        if (entry.type === 'dir') {
          if (seen.has(entry.id))
            throw new CairnError(
              'FileSystemCorrupt',
              `Cannot archive ${entry.path}: the folder is met twice (a loop)`,
            )
          seen.add(entry.id)
          yield* below(entry, child, depth + 1)
        }
      }
      if (page.next === undefined) break
      start = page.next
    }
  }
  yield* below(root, top, 1)
}

/** A file's bytes, piece by piece. */
async function* contentOf(fs: FileSystem, entry: FileEntry, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (let at = 0; at < entry.size; at += PIECE) {
    signal?.throwIfAborted()
    yield await fs.read(entry, at, Math.min(PIECE, entry.size - at))
  }
}

/** A tar stream of `root` (a folder, with everything below it, or one file). */
export function tarArchive(
  fs: FileSystem,
  root: FileEntry,
  options: { signal?: AbortSignal; onProgress?: (p: ArchiveProgress) => void } = {},
): Readable {
  const pack = tarPack()
  const progress: ArchiveProgress = { entries: 0, bytes: 0 }
  const run = async () => {
    const links = new Map<string, string>()
    for await (const { entry, name } of entriesOf(fs, root, options.signal)) {
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

/** A zip stream of `root` (a folder, with everything below it, or one file). */
export function zipArchive(
  fs: FileSystem,
  root: FileEntry,
  options: { signal?: AbortSignal; onProgress?: (p: ArchiveProgress) => void } = {},
): Readable {
  const zip = new yazl.ZipFile()
  const out = new PassThrough()
  zip.outputStream.pipe(out)
  zip.outputStream.on('error', (err: Error) => out.destroy(err))
  const progress: ArchiveProgress = { entries: 0, bytes: 0 }
  const run = async () => {
    for await (const { entry, name } of entriesOf(fs, root, options.signal)) {
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
        zip.addReadStream(body, name, { ...common, size: entry.size })
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
