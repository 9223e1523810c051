import { stat } from 'node:fs/promises'
import type { Job } from '../catalog/index.js'
import type { DiskInfo, DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, type HostPaths } from '../util/index.js'
import { removeTemporaryFile } from './_job-steps.js'
import type { JobService } from './job-service.js'
import { type RunToEnd, runJobToEnd } from './run-job-to-end.js'

/** A file as stat describes it: which file it is, and which version. */
export interface FileIdentity {
  size: number
  dev: number
  ino: number
  mtimeMs: number
}

/** What a DiskService works with. */
export interface DiskServiceOptions {
  diskStore: DiskStore
  /** Absent: the work just runs, without a job. */
  jobs?: JobService
  /** The gate of host paths (absent: imports and exports of host files are refused). */
  hostPaths?: HostPaths
}

/**
 * The disk-store use cases that read or write files on the service's machine — import a raw image into
 * a new disk, export a disk or snapshot to a sparse raw file — each as a job its caller waits for.
 */
export class DiskService {
  readonly #o: DiskServiceOptions

  constructor(options: DiskServiceOptions) {
    this.#o = options
  }

  /**
   * Imports a raw image file under an import root into a new disk (zero blocks stay holes). With
   * `expect`, the file must be the one the client describes (HostFileMismatch otherwise): a CLI on the
   * same host lets the service read the file it names only if it is that very file.
   */
  async importFile(ref: DiskRef, path: string, run: RunToEnd = {}, expect?: FileIdentity): Promise<DiskInfo> {
    const file = await this.#hostPaths().checkImport(path)
    if (expect !== undefined) {
      const st = await stat(file)
      if (
        st.size !== expect.size ||
        st.dev !== expect.dev ||
        st.ino !== expect.ino ||
        st.mtimeMs !== expect.mtimeMs
      )
        throw new CairnError(
          'HostFileMismatch',
          `Cannot import "${path}": the service's file there is not the one described (size ${st.size}, not ${expect.size}, or another device, inode or modification time)`,
        )
    }
    return runJobToEnd(
      this.#o.jobs,
      { kind: 'import', resource: resourceOf(ref) },
      (signal, job) =>
        this.#o.diskStore.importFile(file, ref, {
          signal,
          ...(job ? { onProgress: (p) => job.progress({ ...p, phase: 'import' }) } : {}),
        }),
      run,
    )
  }

  /**
   * Imports an image streamed by a client (its data extents, `cairn disk import`) into a new disk, as a
   * job its caller waits for; a stream that fails or is cut short leaves no disk.
   */
  importImage(
    ref: DiskRef,
    image: { size: number; extents: AsyncIterable<{ offset: number; data: Uint8Array }> },
    run: RunToEnd = {},
  ): Promise<DiskInfo> {
    return runJobToEnd(
      this.#o.jobs,
      { kind: 'import', resource: resourceOf(ref) },
      (signal, job) =>
        this.#o.diskStore.importImage(ref, image, {
          signal,
          ...(job ? { onProgress: (p) => job.progress({ ...p, phase: 'import' }) } : {}),
        }),
      run,
    )
  }

  /** Exports a disk (or a snapshot) to a sparse raw file under an export root; answers its size. */
  async exportFile(
    ref: DiskRef,
    request: { path: string; snapshot?: string; overwrite?: boolean },
    run: RunToEnd = {},
  ): Promise<{ path: string; size: number }> {
    const store = this.#o.diskStore
    const size = store.getDisk(ref, request.snapshot).size
    const paths = this.#hostPaths()
    const overwrite = request.overwrite ? { overwrite: true } : {}
    // The rules are checked before the job starts, so a refusal is the answer, not a failed job.
    await paths.checkExport(request.path, overwrite)
    return runJobToEnd(
      this.#o.jobs,
      { kind: 'export', resource: resourceOf(ref) },
      async (signal, job) => {
        await paths.export(request.path, overwrite, async (temporary) => {
          // Named in the job first: if the service dies, the next start removes the half-written file.
          if (job) {
            job.details.temporaryFile = temporary
            await job.save()
          }
          await store.exportFile(ref, temporary, {
            signal,
            ...(request.snapshot !== undefined ? { snapshot: request.snapshot } : {}),
            ...(job ? { onProgress: (p) => job.progress({ ...p, phase: 'export' }) } : {}),
          })
        })
        return { path: request.path, size }
      },
      run,
    )
  }

  /**
   * Removes what an import or export that ended Interrupted left: an export's temporary file (an
   * import's disk is invisible until complete, and the disk store drops it when cut short).
   */
  async cleanInterrupted(job: Job): Promise<string[]> {
    return job.kind === 'export' ? removeTemporaryFile(job) : []
  }

  #hostPaths(): HostPaths {
    if (!this.#o.hostPaths)
      throw new CairnError('PathNotAllowed', 'Cannot use a host path: this service has no host-path roots')
    return this.#o.hostPaths
  }
}

const resourceOf = (r: DiskRef) => `accounts/${r.account}/containers/${r.container}/disks/${r.disk}`
