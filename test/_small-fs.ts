import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A small tmpfs mounted for a test: fill it to the brim, free it, unmount it in `finally`. */
export interface SmallFs {
  dir: string
  /** Free bytes now. */
  free(): number
  /** Fills the file system to the last byte with `name` (removed by `unfill`); returns the bytes written. */
  fill(name?: string): number
  /** Removes a filler file. */
  unfill(name?: string): void
  dispose(): void
}

/** Why a small file system cannot be mounted here (not root, no mount), or undefined when it can. */
export function smallFsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs (run the tests as root)'
  return undefined
}

/** Mounts a tmpfs of `mib` MiB under the temporary folder. */
export function mountSmallFs(mib: number): SmallFs {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-smallfs-'))
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`cannot mount a tmpfs at ${dir}: ${r.stderr || r.error}`)
  }
  const free = () => {
    const s = statfsSync(dir)
    return s.bavail * s.bsize
  }
  return {
    dir,
    free,
    fill(name = 'filler') {
      const fd = openSync(join(dir, name), 'a')
      let written = 0
      try {
        for (const size of [1024 * 1024, 4096]) {
          const chunk = Buffer.alloc(size, 0x5a)
          for (;;) {
            try {
              written += writeSync(fd, chunk)
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
              break
            }
          }
        }
      } finally {
        closeSync(fd)
      }
      return written
    },
    unfill(name = 'filler') {
      try {
        unlinkSync(join(dir, name))
      } catch {}
    },
    dispose() {
      spawnSync('umount', ['-l', dir])
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
