import type { DiskInfo, DiskRef } from '../diskstore/index.js'
import { CairnError, formatBytes, isCairnError } from '../util/index.js'
import { DiskExport, type NbdDiskStore } from './_disk-export.js'
import { RangeLock } from './_range-lock.js'
import { formatExportName, parseExportName } from './export-name.js'
import type { ExportInfo, ExportProvider, NbdExport } from './export-provider.js'

export type { NbdDiskStore } from './_disk-export.js'

const NOT_FOUND = new Set([
  'AccountNotFound',
  'ContainerNotFound',
  'DiskNotFound',
  'SnapshotNotFound',
  'InvalidName',
])

/**
 * Every disk of a disk store as a read-write export `ACCOUNT/CONTAINER/DISK`, and every snapshot as
 * a read-only export `ACCOUNT/CONTAINER/DISK@SNAPSHOT`. Writes go straight to the store, so the blob
 * API sees them at once and NBD readers see blob API writes.
 */
export class DiskStoreExports implements ExportProvider {
  readonly #store: NbdDiskStore
  /** One lock per disk with open writable exports, shared by all its connections. */
  readonly #locks = new Map<string, { lock: RangeLock; users: number }>()

  constructor(store: NbdDiskStore) {
    this.#store = store
  }

  list(limit: number): ExportInfo[] {
    const out: ExportInfo[] = []
    for (const account of this.#store.listAccounts()) {
      let containerMarker: string | undefined
      do {
        const containers = this.#store.listContainers(account.name, {
          marker: containerMarker,
          maxResults: 1000,
        })
        for (const container of containers.items) {
          let diskMarker: string | undefined
          do {
            const disks = this.#store.listDisks(account.name, container.name, {
              marker: diskMarker,
              maxResults: 1000,
              includeSnapshots: true,
            })
            for (const disk of disks.items) {
              out.push({ name: formatExportName(disk.ref, disk.snapshot), description: describe(disk) })
              if (out.length >= limit) return out
            }
            diskMarker = disks.nextMarker
          } while (diskMarker !== undefined)
        }
        containerMarker = containers.nextMarker
      } while (containerMarker !== undefined)
    }
    return out
  }

  async open(name: string): Promise<NbdExport> {
    for (const reading of parseExportName(name)) {
      let info: DiskInfo
      try {
        info = this.#store.getDisk(reading.ref, reading.snapshot)
      } catch (err) {
        if (isCairnError(err) && NOT_FOUND.has(err.code)) continue
        throw err
      }
      return this.#export(name, reading.ref, info)
    }
    throw new CairnError(
      'NbdExportNotFound',
      `Cannot open NBD export "${name}": no disk or snapshot has this name (use ACCOUNT/CONTAINER/DISK or ACCOUNT/CONTAINER/DISK@SNAPSHOT)`,
    )
  }

  flush(): Promise<void> {
    return this.#store.flush()
  }

  #export(name: string, ref: DiskRef, info: DiskInfo): NbdExport {
    const key = formatExportName(ref)
    let entry = this.#locks.get(key)
    if (entry === undefined) {
      entry = { lock: new RangeLock(), users: 0 }
      this.#locks.set(key, entry)
    }
    entry.users++
    const held = entry
    const target = {
      name,
      description: describe(info),
      ref,
      size: info.size,
      snapshot: info.snapshot,
      readOnly: info.snapshot !== undefined || info.incrementalCopy === true,
    }
    return new DiskExport(this.#store, target, held.lock, () => {
      if (--held.users === 0 && this.#locks.get(key) === held) this.#locks.delete(key)
    })
  }
}

function describe(info: DiskInfo): string {
  const size = formatBytes(info.size)
  if (info.snapshot !== undefined)
    return `snapshot of ${info.ref.disk} taken ${info.snapshot}, ${size}, read-only`
  if (info.incrementalCopy === true) return `incremental copy, ${size}, read-only`
  return `disk, ${size}, read-write`
}
