import { CairnError } from '../util/index.js'
import { corrupt, notFound, wrongType } from './_errors.js'
import { joinPath, normalizePath, pathComponents } from './_path.js'
import type { DirectoryPage, FileEntry, FileSystem, ListOptions, VolumeType, WalkEntry } from './types.js'

/** A file system's own view of one file: the public entry (path filled in later) and its private handle. */
export interface Node<H> {
  entry: Omit<FileEntry, 'path'>
  handle: H
}

interface Directory<H> {
  nodes: Array<Node<H>>
  byName: Map<string, Node<H>>
  byFoldedName?: Map<string, Node<H>>
  /** The public entries of a listing, built once (for the path they were listed under) and sliced per page. */
  listed?: { path: string; entries: FileEntry[] }
}

/**
 * Runs a step of a reader, turning a RangeError (a field of a damaged structure pointing outside its
 * buffer) into FileSystemCorrupt: damaged input gives a clear error, never a crash.
 */
export async function damaged<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (err) {
    if (err instanceof RangeError) throw corrupt(`Cannot ${what}: a damaged structure (${err.message})`)
    throw err
  }
}

const NODE = Symbol('node')
type Tagged<H> = FileEntry & { [NODE]?: { fs: BaseFileSystem<H>; node: Node<H> } }

/** How many directories (by entries held) the lookup cache keeps. */
const DIR_CACHE_ENTRIES = 200_000

/**
 * What every reader shares: path resolution that never leaves the root, sorted and paged listings, a
 * cache of directories, bounded walks with loop detection, and reads by path or by entry. A reader
 * supplies the root, a directory's children, file bytes and symlink targets.
 */
export abstract class BaseFileSystem<H> implements FileSystem {
  abstract readonly type: VolumeType
  abstract readonly fsType: string
  label?: string
  /** FAT and NTFS match names case-insensitively when no exact match exists. */
  protected caseInsensitive = false
  readonly #dirs = new Map<string, Directory<H>>()
  #dirEntries = 0

  protected abstract rootNode(): Promise<Node<H>>
  /** The children of a directory node, without `.` and `..`. */
  protected abstract readDirectory(node: Node<H>, signal?: AbortSignal): Promise<Array<Node<H>>>
  /**
   * Bytes of a file node in [offset, offset + length), already clamped to its size; a reader may put
   * them in `into` (at least `length` bytes) or answer a buffer of its own.
   */
  protected abstract readData(node: Node<H>, offset: number, length: number, into?: Buffer): Promise<Buffer>
  protected abstract readTarget(node: Node<H>): Promise<string>

  async stat(path: string): Promise<FileEntry> {
    return damaged(`stat "${path}"`, async () => {
      const { node, path: p } = await this.#resolve(path)
      return this.#public(node, p)
    })
  }

  list(path: string, options: ListOptions = {}): Promise<DirectoryPage> {
    return damaged(`list "${path}"`, () => this.#list(path, options))
  }

  async #list(path: string, options: ListOptions): Promise<DirectoryPage> {
    const { node, path: p } = await this.#resolve(path)
    if (node.entry.type !== 'dir') throw wrongType(`Cannot list "${p}": it is not a directory`)
    const dir = await this.#directory(node, options.signal)
    const start = Math.max(0, options.start ?? 0)
    const end =
      options.limit === undefined ? dir.nodes.length : Math.min(dir.nodes.length, start + options.limit)
    // Later pages of a big folder slice the entries built for the first one: no per-request objects.
    // They are plain objects (no hidden node) so JSON.stringify stays on V8's fast path; a directory
    // reached under another path (a loop in a damaged image) gets its own.
    if (dir.listed?.path !== p) {
      if (dir.listed === undefined) this.#dirEntries += dir.nodes.length
      dir.listed = { path: p, entries: dir.nodes.map((n) => plainEntry(n, joinPath(p, n.entry.name))) }
    }
    const entries = dir.listed.entries.slice(start, end)
    return end < dir.nodes.length
      ? { entries, total: dir.nodes.length, next: end }
      : { entries, total: dir.nodes.length }
  }

  read(file: string | FileEntry, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return damaged(`read "${typeof file === 'string' ? file : file.path}"`, () =>
      this.#read(file, offset, length, into),
    )
  }

  async #read(file: string | FileEntry, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    let node =
      typeof file === 'string'
        ? undefined
        : (file as Tagged<H>)[NODE]?.fs === this
          ? (file as Tagged<H>)[NODE]!.node
          : undefined
    let p = typeof file === 'string' ? normalizePath(file) : file.path
    if (node === undefined) ({ node, path: p } = await this.#resolve(p))
    if (node.entry.type !== 'file') throw wrongType(`Cannot read "${p}": it is not a regular file`)
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot read "${p}": offset and length must be whole numbers >= 0`,
      )
    }
    if (into !== undefined && into.length < length)
      throw new CairnError(
        'InvalidRequest',
        `Cannot read "${p}": the buffer given holds fewer than ${length} bytes`,
      )
    const size = node.entry.size
    if (offset >= size || length === 0) return into?.subarray(0, 0) ?? Buffer.alloc(0)
    const n = Math.min(length, size - offset)
    const data = await this.readData(node, offset, n, into)
    if (into === undefined || (data.buffer === into.buffer && data.byteOffset === into.byteOffset))
      return data
    data.copy(into, 0, 0, n)
    return into.subarray(0, n)
  }

  readlink(path: string): Promise<string> {
    return damaged(`read the link "${path}"`, async () => {
      const { node, path: p } = await this.#resolve(path)
      if (node.entry.type !== 'symlink') throw wrongType(`Cannot read the link "${p}": it is not a symlink`)
      return this.readTarget(node)
    })
  }

  async *walk(
    path: string,
    options: { signal?: AbortSignal; maxEntries?: number; maxDepth?: number } = {},
  ): AsyncIterable<WalkEntry> {
    const maxEntries = options.maxEntries ?? 10_000_000
    const maxDepth = options.maxDepth ?? 4096
    const { node: top, path: topPath } = await this.#resolve(path)
    if (top.entry.type !== 'dir') throw wrongType(`Cannot walk "${topPath}": it is not a directory`)
    const seen = new Set<string>([top.entry.id])
    const stack: Array<{ node: Node<H>; path: string; depth: number }> = [
      { node: top, path: topPath, depth: 0 },
    ]
    let count = 0
    while (stack.length > 0) {
      options.signal?.throwIfAborted()
      const { node, path: dirPath, depth } = stack.pop()!
      const dir = await damaged(`list "${dirPath}"`, () => this.#directory(node, options.signal))
      const subdirs: Array<{ node: Node<H>; path: string; depth: number }> = []
      for (const child of dir.nodes) {
        if (++count > maxEntries) throw corrupt(`Cannot walk "${topPath}": more than ${maxEntries} entries`)
        const childPath = joinPath(dirPath, child.entry.name)
        yield { entry: this.#public(child, childPath), depth: depth + 1 }
        if (child.entry.type !== 'dir') continue
        if (seen.has(child.entry.id)) {
          throw corrupt(
            `Cannot walk "${topPath}": the directory "${childPath}" loops back to a directory met before`,
          )
        }
        seen.add(child.entry.id)
        if (depth + 1 >= maxDepth)
          throw corrupt(`Cannot walk "${topPath}": directories nest deeper than ${maxDepth}`)
        subdirs.push({ node: child, path: childPath, depth: depth + 1 })
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!)
    }
  }

  /** An entry that carries its node, hidden, so read(entry) needs no lookup (walks and stat). */
  #public(node: Node<H>, path: string): FileEntry {
    const entry: FileEntry = { ...node.entry, path }
    if (path === '/') entry.name = '/'
    // The node rides along, hidden (not enumerable, not in JSON), so read(entry) needs no lookup; a WeakMap
    // of every listed entry costs more garbage-collector time than the listing itself.
    Object.defineProperty(entry, NODE, { value: { fs: this, node }, enumerable: false })
    return entry
  }

  async #resolve(path: string): Promise<{ node: Node<H>; path: string }> {
    const parts = pathComponents(path)
    let node = await this.rootNode()
    let at = '/'
    for (const part of parts) {
      if (node.entry.type !== 'dir')
        throw wrongType(`Cannot open "${joinPath(at, part)}": "${at}" is not a directory`)
      const dir = await this.#directory(node)
      let child = dir.byName.get(part)
      if (child === undefined && this.caseInsensitive) {
        dir.byFoldedName ??= new Map(dir.nodes.map((n) => [n.entry.name.toLowerCase(), n]))
        child = dir.byFoldedName.get(part.toLowerCase())
      }
      at = joinPath(at, child?.entry.name ?? part)
      if (child === undefined) throw notFound(at)
      node = child
    }
    return { node, path: at }
  }

  async #directory(node: Node<H>, signal?: AbortSignal): Promise<Directory<H>> {
    const cached = this.#dirs.get(node.entry.id)
    if (cached !== undefined) {
      this.#dirs.delete(node.entry.id)
      this.#dirs.set(node.entry.id, cached)
      return cached
    }
    const nodes = await this.readDirectory(node, signal)
    nodes.sort((a, b) => (a.entry.name < b.entry.name ? -1 : a.entry.name > b.entry.name ? 1 : 0))
    const dir: Directory<H> = { nodes, byName: new Map(nodes.map((n) => [n.entry.name, n])) }
    this.#dirs.set(node.entry.id, dir)
    this.#dirEntries += nodes.length
    while (this.#dirEntries > DIR_CACHE_ENTRIES && this.#dirs.size > 1) {
      const [oldestId, oldest] = this.#dirs.entries().next().value as [string, Directory<H>]
      this.#dirs.delete(oldestId)
      this.#dirEntries -= oldest.nodes.length * (oldest.listed ? 2 : 1)
    }
    return dir
  }
}

/** A listing's entry: a plain object with the same property order every time (a fast V8 shape). */
function plainEntry<H>(node: Node<H>, path: string): FileEntry {
  const e = node.entry
  const out: FileEntry = {
    name: e.name,
    path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
    id: e.id,
    nlink: e.nlink,
  }
  if (e.target !== undefined) out.target = e.target
  return out
}
