// Streaming a file into a disk, a disk into a file, and page reads and writes through the API.

import { open, realpath, rm, stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Disk, DiskExportResult, DiskImportRequest, PageRanges } from '../../api/index.js'
import { CairnError, ioError } from '../../util/index.js'
import type { ApiClient } from '../api-client.js'
import type { CommandContext } from '../command.js'
import { ProgressBar } from '../output.js'
import { type DiskName, diskPath } from './_disk-names.js'

/** Bytes per request when streaming a file through the API (the largest page write). */
export const PIECE = 4 * 1024 * 1024
/** Requests in flight while streaming. */
const PARALLEL = 4

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

/**
 * PUTs `data` at `offset` of a disk. With `durable: false` the service answers once the write is
 * applied; it becomes durable with the next durable write.
 */
export async function putPages(
  client: ApiClient,
  d: DiskName,
  offset: number,
  data: Uint8Array,
  signal: AbortSignal,
  options: { leaseId?: string; durable?: boolean } = {},
) {
  const res = await client.raw('PUT', `${diskPath(d)}/pages`, {
    query: { offset, leaseId: options.leaseId, durable: options.durable === false ? 'false' : undefined },
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
    signal,
  })
  // Read the (empty) answer to its end: only then does the request let go of the signal and its socket.
  await res.arrayBuffer()
}

/** GETs bytes of a disk or snapshot. */
export async function getPages(
  client: ApiClient,
  d: DiskName,
  offset: number,
  length: number,
  signal: AbortSignal,
) {
  const res = await client.raw('GET', `${diskPath(d)}/pages`, {
    query: { offset, length, snapshot: d.snapshot },
    signal,
  })
  return Buffer.from(await res.arrayBuffer())
}

/** Reads a file in pieces: yields [offset, bytes] in order. */
export function filePieces(path: string, size: number, piece: number): AsyncGenerator<[number, Buffer]> {
  return rangePieces(path, [{ start: 0, end: size }], piece)
}

/** Reads the given ranges of a file in pieces of at most `piece` bytes: yields [offset, bytes] in order. */
export async function* rangePieces(
  path: string,
  ranges: { start: number; end: number }[],
  piece: number,
): AsyncGenerator<[number, Buffer]> {
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new CairnError('FileNotFound', `Cannot read "${path}": ${err.message}`)
  })
  try {
    for (const { start, end } of ranges) {
      for (let pos = start; pos < end; pos += piece) {
        const want = Math.min(piece, end - pos)
        const buf = Buffer.alloc(want)
        let got = 0
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, pos + got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        yield [pos, buf]
      }
    }
  } finally {
    await fh.close()
  }
}
/** The size of a regular file (FileNotFound, or UsageError for anything else). */
export async function fileSize(path: string): Promise<number> {
  try {
    const st = await stat(path)
    if (st.isFile()) return st.size
  } catch (err) {
    throw new CairnError('FileNotFound', `Cannot read "${path}": ${(err as Error).message}`)
  }
  throw new CairnError('UsageError', `Cannot stream "${path}" through the API: it is not a regular file`)
}

/** Refusals of a same-host import after which the CLI streams the file instead. */
const STREAM_INSTEAD = new Set(['PathNotAllowed', 'FileNotFound', 'HostFileMismatch', 'ServiceUnavailable'])

/** True when the service's URL names this host (a loopback address). */
function onThisHost(baseUrl: string): boolean {
  try {
    const host = new URL(baseUrl).hostname
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
  } catch {
    return false
  }
}

/** Bytes read from the image at a time (a frame of the extent stream holds at most this). */
const IMPORT_BLOCK = 4 * 1024 * 1024

/**
 * Streams a local raw image into a new disk in one request (POST …/import-stream): only the ranges of
 * a sparse file that hold data are read (SEEK_DATA/SEEK_HOLE, through `qemu-img map`; without the
 * tool the whole file), all-zero pages within them are not sent, and the next block is read while
 * the last one is on the wire. The service makes the disk appear once all of it is in, with one
 * fsync; a failure on either side (the file shrinking or unreadable, the connection cut) leaves no disk.
 */
export async function importLocal(
  ctx: CommandContext,
  d: DiskName,
  path: string,
  options: { stream?: boolean } = {},
): Promise<Disk> {
  const { client, out, signal } = ctx
  const { dataRanges, extentHeader, forEachDataRun } = await import('../../diskstore/index.js')
  const bytes = await fileSize(path)
  const size = Math.ceil(bytes / 512) * 512
  const fh = await open(path, 'r').catch((err: Error) => {
    throw ioError(err, `Cannot read "${path}"`)
  })
  const bar = new ProgressBar(`import ${d.disk}`, out.interactive)
  let source: Readable | undefined
  try {
    // A service on this host may read the file itself when it lies under one of its --import-roots:
    // no bytes cross the socket. The service checks that its file is this very one (size, device,
    // inode, modification time); the CLI has opened it, so its user may read it. Else: streamed.
    if (!options.stream && onThisHost(client.baseUrl)) {
      const st = await fh.stat()
      try {
        return await client.post<Disk, DiskImportRequest>(`${diskPath(d)}/import`, {
          path: await realpath(path),
          expect: { size: st.size, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs },
        })
      } catch (err) {
        if (!(err instanceof CairnError) || !STREAM_INSTEAD.has(err.code)) throw err
      }
    }
    const ranges = (await dataRanges(path, bytes)) ?? [{ start: 0, end: size }]
    const total = ranges.reduce((n, r) => n + r.end - r.start, 0)
    let done = 0
    async function* frames(): AsyncGenerator<Buffer> {
      for (const range of ranges) {
        for (let pos = range.start; pos < range.end; pos += IMPORT_BLOCK) {
          const want = Math.min(IMPORT_BLOCK, range.end - pos)
          // A new buffer per block: the ones before it may still be queued on the socket.
          const buf = Buffer.allocUnsafe(want)
          let got = 0
          while (got < want) {
            const { bytesRead } = await fh.read(buf, got, want - got, pos + got).catch((err: Error) => {
              throw ioError(err, `Cannot read "${path}" at byte ${pos + got}`)
            })
            if (bytesRead === 0) break
            got += bytesRead
          }
          // Only the last page of a file whose size is not a multiple of 512 ends early.
          if (got < want && pos + got < bytes)
            throw new CairnError(
              'IoError',
              `Cannot import "${path}": it ended at byte ${pos + got}, but held ${bytes} bytes when the import began (it changed meanwhile)`,
            )
          buf.fill(0, got, want)
          const runs: [number, number][] = []
          forEachDataRun(buf, want, (s, e) => runs.push([s, e]))
          for (const [s, e] of runs) {
            yield extentHeader(pos + s, e - s)
            yield buf.subarray(s, e)
          }
          done += want
          bar.update(done, total)
        }
      }
      yield extentHeader(size, 0)
    }
    source = Readable.from(frames(), { highWaterMark: 4 })
    const res = await client.raw('POST', `${diskPath(d)}/import-stream`, {
      query: { size },
      body: source,
      headers: { 'content-type': 'application/octet-stream' },
      signal,
    })
    const disk = (await res.json()) as Disk
    bar.update(total, total)
    return disk
  } finally {
    source?.destroy()
    bar.done()
    await fh.close()
  }
}

/** Streams a disk or snapshot into a sparse local file: only written ranges are fetched. */
export async function exportLocal(
  ctx: CommandContext,
  d: DiskName,
  path: string,
  overwrite = false,
): Promise<DiskExportResult> {
  const { client, out, signal } = ctx
  const info = await client.get<Disk>(diskPath(d), { snapshot: d.snapshot })
  const { pageRanges } = await client.get<PageRanges>(`${diskPath(d)}/ranges`, {
    snapshot: d.snapshot,
  })
  const total = pageRanges.reduce((n, [s, e]) => n + e + 1 - s, 0)
  // Never clobber by surprise (as rp download and the server-side export): 'wx' creates FILE or fails.
  const existed =
    overwrite &&
    (await stat(path).then(
      () => true,
      () => false,
    ))
  const fh = await open(path, overwrite ? 'w' : 'wx').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST')
      throw new CairnError('UsageError', `Cannot write ${path}: it exists (--overwrite replaces it)`)
    throw new CairnError('FileNotFound', `Cannot write "${path}": ${err.message}`)
  })
  const bar = new ProgressBar(`export ${d.disk}`, out.interactive)
  let done = 0
  let ok = false
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
    ok = true
  } finally {
    bar.done()
    await fh.close()
    // A half-written export is no export: remove the file this command made (not one it replaced).
    if (!ok && !existed) await rm(path, { force: true })
  }
  return { path, size: info.size }
}
