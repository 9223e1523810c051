import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { promisify } from 'node:util'
import { CairnError } from '../util/index.js'
import type { BackupSource, ByteRange, SourceChanges } from './types.js'

const run = promisify(execFile)

/** Size of a regular file or block device. */
async function sizeOf(path: string, isBlock: boolean, fileSize: number): Promise<number> {
  if (!isBlock) return fileSize
  const { stdout } = await run('blockdev', ['--getsize64', path])
  return Number(stdout.trim())
}

/**
 * The ranges of a sparse regular file that may hold data, rounded out to 4 KiB, from `qemu-img map`
 * (SEEK_DATA / SEEK_HOLE, which Node does not expose); undefined when the tool is missing or fails, and
 * everything is read. A full backup of the benchmark's image (2 GiB, half holes) read and compared
 * 1 GiB of zeros without this. Extents the file system reports as zero (unwritten) are holes too.
 */
async function dataRanges(path: string, size: number): Promise<ByteRange[] | undefined> {
  let stdout: string
  try {
    ;({ stdout } = await run('qemu-img', ['map', '--output=json', '-f', 'raw', path], {
      timeout: 30_000,
      maxBuffer: 64 * 1024 * 1024,
    }))
  } catch {
    return undefined
  }
  try {
    const entries = JSON.parse(stdout) as { start: number; length: number; data: boolean; zero?: boolean }[]
    const out: ByteRange[] = []
    for (const e of entries) {
      if (!e.data || e.zero) continue
      const start = Math.floor(e.start / 4096) * 4096
      const end = Math.min(size, Math.ceil((e.start + e.length) / 4096) * 4096)
      const last = out[out.length - 1]
      if (last !== undefined && last.end >= start) last.end = Math.max(last.end, end)
      else if (end > start) out.push({ start, end })
    }
    return out
  } catch {
    return undefined
  }
}

/**
 * A raw image file or block device as a backup source. Without `changes` everything but a sparse
 * file's holes is read (zero chunks become holes); give a base recovery point to compare by checksum
 * instead of storing again.
 */
export async function fileSource(
  path: string,
  options: { name?: string; lun?: number; changes?: SourceChanges } = {},
): Promise<BackupSource> {
  let fh: Awaited<ReturnType<typeof open>>
  try {
    // Never through a link in the last component, never waiting on a FIFO (docs/security.md).
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CairnError('FileNotFound', `Cannot back up ${path}: it does not exist`)
    }
    throw err
  }
  const st = await fh.stat()
  const size = await sizeOf(path, st.isBlockDevice(), st.size)
  const source: BackupSource = {
    name: options.name ?? path.split('/').pop() ?? 'disk',
    size,
    async read(offset, length) {
      const buf = Buffer.allocUnsafeSlow(length)
      let done = 0
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done)
        if (bytesRead === 0) {
          buf.fill(0, done)
          break
        }
        done += bytesRead
      }
      return buf
    },
    async ranges() {
      if (size === 0) return []
      if (st.isFile() && st.blocks * 512 < size)
        return (await dataRanges(path, size)) ?? [{ start: 0, end: size }]
      return [{ start: 0, end: size }]
    },
    fd: fh.fd,
    close: () => fh.close(),
  }
  if (options.lun !== undefined) source.lun = options.lun
  if (options.changes) source.changes = options.changes
  return source
}
