// Crash images for tests: a kill -9 at every point where the store changes a file, without killing
// anything. `CrashImages.install` wraps the node:fs calls that change files (through
// `syncBuiltinESMExports`, so the store's own `import { writeSync } from 'node:fs'` sees the
// wrappers). While recording, just before each change to a file of the store folder, the folder is
// copied: that copy is what a SIGKILL at that instant leaves, since the page cache keeps everything
// written before and nothing after. A positioned write also gives a torn image holding the first half
// of its bytes. Background writes (`fs.writev`, the store's pwritev on the thread pool) are held until
// the next turn of the event loop and then done synchronously: images in between see later records
// land before them, as a busy thread pool allows, and no image is copied while a write runs.

import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { join, resolve } from 'node:path'

/** One crash image: a copy of the store folder and what the test knew when it was taken. */
export interface CrashImage<T> {
  dir: string
  /** The file call the crash came before, and whether the image holds half of its bytes. */
  label: string
  context: T
}

type WritevCallback = (err: NodeJS.ErrnoException | null, written: number, buffers: Uint8Array[]) => void

const original = {
  openSync: fs.openSync,
  closeSync: fs.closeSync,
  writeSync: fs.writeSync,
  writevSync: fs.writevSync,
  writev: fs.writev,
  ftruncateSync: fs.ftruncateSync,
  renameSync: fs.renameSync,
  unlinkSync: fs.unlinkSync,
}

/** Records crash images of one store folder (one instance at a time per process). */
export class CrashImages<T> {
  readonly #store: string
  readonly #out: string
  readonly #context: () => T
  /** Descriptors of files in the store folder, with their paths. */
  readonly #fds = new Map<number, string>()
  readonly #images: CrashImage<T>[] = []
  #recording = false
  #count = 0

  private constructor(store: string, out: string, context: () => T) {
    this.#store = resolve(store)
    this.#out = out
    this.#context = context
  }

  /** Wraps node:fs for `store` (before the store opens it); images go to folders under `out`. */
  static install<T>(store: string, out: string, context: () => T): CrashImages<T> {
    const images = new CrashImages(store, out, context)
    images.#patch()
    return images
  }

  /** Starts or stops taking images. */
  record(on: boolean): void {
    this.#recording = on
  }

  /** Hands over the images taken since the last call. */
  take(): CrashImage<T>[] {
    return this.#images.splice(0, this.#images.length)
  }

  /** Puts node:fs back. */
  uninstall(): void {
    Object.assign(fs, original)
    syncBuiltinESMExports()
  }

  #inStore(path: fs.PathLike): boolean {
    return typeof path === 'string' && resolve(path).startsWith(`${this.#store}/`)
  }

  /** Copies the store folder; with `torn`, also applies half of a write to the copy. */
  #image(label: string, torn?: { fd: number; bytes: Buffer; position: number }): void {
    if (!this.#recording) return
    const take = (name: string, half: boolean) => {
      const dir = join(this.#out, `image-${String(++this.#count).padStart(5, '0')}`)
      fs.mkdirSync(dir)
      for (const f of fs.readdirSync(this.#store)) fs.copyFileSync(join(this.#store, f), join(dir, f))
      if (half && torn !== undefined) {
        const path = this.#fds.get(torn.fd)!
        const fd = original.openSync(join(dir, path.slice(this.#store.length + 1)), 'r+')
        original.writeSync(fd, torn.bytes, 0, torn.bytes.length >> 1, torn.position)
        original.closeSync(fd)
      }
      this.#images.push({ dir, label: name, context: this.#context() })
    }
    take(label, false)
    if (torn !== undefined && torn.bytes.length > 1) take(`${label} (half written)`, true)
  }

  #patch(): void {
    const self = this
    const tracked = (fd: number) => self.#fds.has(fd)
    const patched = {
      openSync(path: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode | null): number {
        const creates = typeof flags === 'string' && /[wa]/.test(flags)
        if (self.#inStore(path) && creates) self.#image(`open ${path}`)
        const fd = original.openSync(path, flags ?? 'r', mode)
        if (self.#inStore(path)) self.#fds.set(fd, resolve(path as string))
        return fd
      },
      closeSync(fd: number): void {
        self.#fds.delete(fd)
        original.closeSync(fd)
      },
      writeSync(fd: number, buffer: Uint8Array, offset?: number, length?: number, position?: number) {
        if (tracked(fd)) {
          const bytes = Buffer.from(buffer.buffer, buffer.byteOffset + (offset ?? 0), length)
          self.#image(
            `write ${self.#fds.get(fd)}`,
            typeof position === 'number' ? { fd, bytes, position } : undefined,
          )
        }
        return original.writeSync(fd, buffer, offset, length, position)
      },
      writevSync(fd: number, buffers: Uint8Array[], position?: number): number {
        if (tracked(fd)) {
          self.#image(
            `writev ${self.#fds.get(fd)}`,
            typeof position === 'number' ? { fd, bytes: Buffer.concat(buffers), position } : undefined,
          )
        }
        return original.writevSync(fd, buffers, position)
      },
      writev(fd: number, buffers: Uint8Array[], position: number, callback: WritevCallback): void {
        if (!tracked(fd)) {
          original.writev(fd, buffers, position, callback)
          return
        }
        setImmediate(() => {
          let written: number
          try {
            written = patched.writevSync(fd, buffers, position)
          } catch (err) {
            callback(err as NodeJS.ErrnoException, 0, buffers)
            return
          }
          callback(null, written, buffers)
        })
      },
      ftruncateSync(fd: number, len?: number): void {
        if (tracked(fd)) self.#image(`truncate ${self.#fds.get(fd)}`)
        original.ftruncateSync(fd, len)
      },
      renameSync(from: fs.PathLike, to: fs.PathLike): void {
        if (self.#inStore(to)) self.#image(`rename ${from}`)
        original.renameSync(from, to)
      },
      unlinkSync(path: fs.PathLike): void {
        if (self.#inStore(path)) self.#image(`unlink ${path}`)
        original.unlinkSync(path)
      },
    }
    Object.assign(fs, patched)
    syncBuiltinESMExports()
  }
}
