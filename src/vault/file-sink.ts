import { CairnError, ioError } from '../util/index.js'
import { type DirectFile, openDirect } from './_direct-write.js'
import type { RestoreSink } from './types.js'

const ZEROS = Buffer.alloc(1024 * 1024)
const FLUSH_EVERY = 64 * 1024 * 1024

/**
 * A raw file (sparse: holes stay holes) or block device as a restore target. A regular file is made
 * (or, with `overwrite`, emptied) and sized to `size`; a block device gets zeros written where the disk
 * has none.
 */
export async function fileSink(
  path: string,
  options: { size: number; overwrite?: boolean },
): Promise<RestoreSink> {
  let file: DirectFile
  try {
    // Disk data bypasses the page cache where it is aligned (see _direct-write.ts).
    file = await openDirect(path, options.overwrite ? 'r+' : 'wx')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST')
      throw new CairnError(
        'InvalidRequest',
        `Cannot restore into ${path}: it exists; set overwrite (--overwrite) to replace it`,
      )
    if (code === 'ENOENT' && options.overwrite) return fileSink(path, { size: options.size })
    throw ioError(err, `Cannot restore into ${path}`)
  }
  const fh = file.fh
  const st = await fh.stat()
  const block = st.isBlockDevice()
  if (!block) {
    await fh.truncate(0)
    await fh.truncate(options.size)
  }
  // Data is flushed in the background every FLUSH_EVERY bytes, so the final fsync finds little left
  // and the disk writes overlap the restore instead of following it.
  let unflushed = 0
  let flushing: Promise<void> = Promise.resolve()
  const write = async (offset: number, data: Buffer) => {
    await file.write(offset, [data])
    unflushed += data.length
    if (unflushed >= FLUSH_EVERY) {
      unflushed = 0
      flushing = flushing.then(() => fh.datasync())
      // A failed flush is reported by close(); until then it must not count as unhandled.
      flushing.catch(() => {})
    }
  }
  return {
    size: block ? Number.MAX_SAFE_INTEGER : options.size,
    write,
    releasesData: true,
    // A restore's workers write here directly; close() syncs what they wrote.
    descriptors: { fd: fh.fd, direct: file.directFd },
    async zero(offset, length) {
      if (!block) return
      for (let o = 0; o < length; o += ZEROS.length) {
        await write(offset + o, ZEROS.subarray(0, Math.min(ZEROS.length, length - o)))
      }
    },
    async close() {
      await flushing
      await fh.sync()
      await file.close()
    },
  }
}
