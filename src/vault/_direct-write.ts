// Bulk writes that bypass the page cache (O_DIRECT): the packs a backup creates and the disk a restore
// writes. Neither is read back soon by this process, and copying into the page cache was the largest
// system cost measured (dd of 600 MiB: 2 s of system CPU buffered, 0.1 s with O_DIRECT; a full backup
// of 1 GiB spent 17 % of its CPU there).
//
// O_DIRECT needs the memory, the file offset and the length aligned to the device's logical block: the
// bytes are staged in page-aligned memory (`alignedBuffer`, src/util) and written
// in ALIGN-multiples; a tail shorter than ALIGN goes through an ordinary descriptor of the same file.
// A file system that refuses O_DIRECT (tmpfs, some FUSE mounts) gets ordinary writes.
import { constants } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { ALIGN, alignedBuffer, isAligned } from '../util/index.js'

export { ALIGN, alignedBuffer }

/** Bytes of one staging buffer. */
const SLOT = 1024 * 1024
/** Staging buffers kept for reuse. */
const KEEP = 8

const free: Buffer[] = []

function takeSlot(): Buffer {
  return free.pop() ?? alignedBuffer(SLOT)
}

function giveSlot(slot: Buffer): void {
  if (free.length < KEEP) free.push(slot)
}

/** A file open twice: once for direct, aligned writes and once for the rest. */
export interface DirectFile {
  /** The ordinary descriptor (also for sync, stat, truncate). */
  readonly fh: FileHandle
  /** The O_DIRECT descriptor (aligned memory, offsets and lengths only), null where refused. */
  readonly directFd: number | null
  /** Writes `parts` back to back at `offset`, directly where alignment allows. */
  write(offset: number, parts: readonly Uint8Array[]): Promise<void>
  close(): Promise<void>
}

/** Writes the first `length` bytes of `data` at `offset`, again where a write took only part. */
async function writeFully(file: FileHandle, data: Uint8Array, length: number, offset: number): Promise<void> {
  let done = 0
  while (done < length) {
    const { bytesWritten } = await file.write(data, done, length - done, offset + done)
    done += bytesWritten
  }
}

/**
 * Opens `path` with `flags` ('wx' or 'r+') for writes that bypass the page cache where they can.
 * Falls back to ordinary writes when the file system refuses O_DIRECT.
 */
export async function openDirect(path: string, flags: 'wx' | 'r+'): Promise<DirectFile> {
  const fh = await open(path, flags)
  let direct: FileHandle | null = null
  try {
    direct = await open(path, constants.O_WRONLY | constants.O_DIRECT)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EINVAL' && code !== 'EOPNOTSUPP') {
      await fh.close()
      throw err
    }
  }
  const plain = (offset: number, data: Uint8Array) => writeFully(fh, data, data.length, offset)
  return {
    fh,
    directFd: direct?.fd ?? null,
    async write(offset, parts) {
      const total = parts.reduce((n, p) => n + p.length, 0)
      if (!direct || offset % ALIGN !== 0 || total < ALIGN) {
        for (const p of parts) {
          await plain(offset, p)
          offset += p.length
        }
        return
      }
      const slot = takeSlot()
      try {
        let part = 0
        let within = 0
        let left = total
        while (left >= ALIGN) {
          // A part in aligned memory goes to the device as it is, its whole blocks at once.
          const rest = parts[part]!.subarray(within)
          if (rest.length >= ALIGN && isAligned(rest)) {
            const n = Math.floor(rest.length / ALIGN) * ALIGN
            await writeFully(direct, rest, n, offset)
            offset += n
            left -= n
            within += n
            if (within === parts[part]!.length) {
              part++
              within = 0
            }
            continue
          }
          // Fill the slot with whole blocks' worth of bytes from the parts, in order.
          const want = Math.min(SLOT, Math.floor(left / ALIGN) * ALIGN)
          let filled = 0
          while (filled < want) {
            const p = parts[part]!
            const n = Math.min(p.length - within, want - filled)
            slot.set(p.subarray(within, within + n), filled)
            filled += n
            within += n
            if (within === p.length) {
              part++
              within = 0
            }
          }
          await writeFully(direct, slot, want, offset)
          offset += want
          left -= want
        }
        for (; part < parts.length; part++, within = 0) {
          const p = parts[part]!
          await plain(offset, p.subarray(within))
          offset += p.length - within
        }
      } finally {
        giveSlot(slot)
      }
    },
    async close() {
      await direct?.close()
      await fh.close()
    },
  }
}
