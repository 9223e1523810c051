import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { MAX_WRITE_SIZE, PAGE_SIZE } from '../diskstore/index.js'
import type {
  BackupSource,
  RestoreSink,
  SourceChanges,
  Consistency as VaultConsistency,
  VaultRegistry,
} from '../vault/index.js'
import type { Consistency } from './agent-client.js'
import type { VaultTransfer } from './protection-service.js'

const CONSISTENCY: Record<Consistency, VaultConsistency> = {
  AppConsistent: 'application-consistent',
  FileSystemConsistent: 'file-system-consistent',
  CrashConsistent: 'crash-consistent',
}

/**
 * The vault side of VM backups over the service's vault registry: disk-store snapshots become vault
 * sources; with a base, only the page ranges the disk store's diff reports are read.
 */
export class RegistryVaultTransfer implements VaultTransfer {
  readonly #registry: VaultRegistry
  readonly #disks: DiskStore

  constructor(registry: VaultRegistry, disks: DiskStore) {
    this.#registry = registry
    this.#disks = disks
  }

  async backupPoint(
    request: Parameters<VaultTransfer['backupPoint']>[0],
    options: Parameters<VaultTransfer['backupPoint']>[1],
  ): Promise<{ id: string; bytesAdded: number }> {
    const vault = await this.#registry.open(request.vault)
    const sources: BackupSource[] = request.disks.map((d) => {
      const source: BackupSource = {
        name: d.name,
        size: d.size,
        snapshot: d.snapshot,
        read: (offset, length) => this.#disks.read(d.disk, offset, length, { snapshot: d.snapshot }),
        ranges: async () => this.#disks.pageRanges(d.disk, { snapshot: d.snapshot }),
      }
      if (d.lun !== undefined) source.lun = d.lun
      if (d.baseSnapshot && request.base) source.changes = this.#changes(d.disk, d.baseSnapshot, d.snapshot)
      return source
    })
    const rp = await vault.backup({
      sources,
      item: request.item,
      consistency: CONSISTENCY[request.consistency],
      ...(request.base ? { base: request.base } : {}),
      ...(request.expiresAt ? { expiresAt: new Date(request.expiresAt) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
    })
    return { id: rp.id, bytesAdded: rp.bytesAdded }
  }

  async restoreDisk(
    request: Parameters<VaultTransfer['restoreDisk']>[0],
    options: Parameters<VaultTransfer['restoreDisk']>[1],
  ): Promise<void> {
    const vault = await this.#registry.open(request.vault)
    await this.#disks.createDisk(request.target, { size: request.size })
    await vault.restore(request.point, request.disk, diskSink(this.#disks, request.target, request.size), {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
    })
  }

  async deletePoint(vault: string, point: string): Promise<void> {
    await (await this.#registry.open(vault)).deleteRecoveryPoint(point)
  }

  /** Every changed and cleared range between two snapshots, all diff pages read. */
  #changes(ref: DiskRef, from: string, to: string): SourceChanges {
    const changes: SourceChanges = { changed: [], cleared: [] }
    let marker: string | undefined
    do {
      const page = this.#disks.diff(ref, { from, to, ...(marker ? { marker } : {}) })
      changes.changed.push(...page.pageRanges)
      changes.cleared.push(...page.clearRanges)
      marker = page.nextMarker
    } while (marker)
    return changes
  }
}

/** A restore sink writing into a fresh (all-holes) disk-store disk, in page writes of at most 4 MiB. */
function diskSink(disks: DiskStore, ref: DiskRef, size: number): RestoreSink {
  return {
    size,
    async write(offset, data) {
      for (let o = 0; o < data.length; o += MAX_WRITE_SIZE) {
        const piece = data.subarray(o, Math.min(data.length, o + MAX_WRITE_SIZE))
        if (piece.length % PAGE_SIZE === 0 && (offset + o) % PAGE_SIZE === 0) {
          await disks.writePages(ref, offset + o, piece, { durable: false })
        } else {
          // Unaligned edges: read-modify-write the covering pages.
          const start = Math.floor((offset + o) / PAGE_SIZE) * PAGE_SIZE
          const end = Math.ceil((offset + o + piece.length) / PAGE_SIZE) * PAGE_SIZE
          const buf = await disks.read(ref, start, end - start)
          piece.copy(buf, offset + o - start)
          await disks.writePages(ref, start, buf, { durable: false })
        }
      }
    },
    // A fresh disk already reads zeros.
    async zero() {},
    async close() {
      await disks.flush()
    },
  }
}
