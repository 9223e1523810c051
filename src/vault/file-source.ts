import { execFile } from 'node:child_process'
import { open } from 'node:fs/promises'
import { promisify } from 'node:util'
import { CairnError } from '../util/index.js'
import type { BackupSource, SourceChanges } from './types.js'

const run = promisify(execFile)

/** Size of a regular file or block device. */
async function sizeOf(path: string, isBlock: boolean, fileSize: number): Promise<number> {
  if (!isBlock) return fileSize
  const { stdout } = await run('blockdev', ['--getsize64', path])
  return Number(stdout.trim())
}

/**
 * A raw image file or block device as a backup source. Without `changes` everything is read (zero
 * chunks become holes); give a base recovery point to compare by checksum instead of storing again.
 */
export async function fileSource(
  path: string,
  options: { name?: string; lun?: number; changes?: SourceChanges } = {},
): Promise<BackupSource> {
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(path, 'r')
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
      return size > 0 ? [{ start: 0, end: size }] : []
    },
    fd: fh.fd,
    close: () => fh.close(),
  }
  if (options.lun !== undefined) source.lun = options.lun
  if (options.changes) source.changes = options.changes
  return source
}
