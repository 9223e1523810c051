// StoreState: the in-memory state of the disk store (accounts, containers, disks and their versions,
// where each write's bytes are) and its checkpoint form. Only replayed records change it.

import { CairnError } from '../util/index.js'
import type { CheckpointData, NodeWriter } from './_checkpoint.js'
import type { Root } from './_extent-tree.js'
import type { LeaseState } from './_lease.js'
import type { LogPosition } from './_segment-log.js'
import type { SnapshotTick } from './_snapshot-id.js'
import { WriteTable } from './_write-table.js'
import type { ContentProperties, CopyInfo } from './types.js'

/** A storage account and its containers. */
export interface AccountState {
  name: string
  region: string
  redundancy: string
  keys: [string, string]
  createdOn: number
  containers: Map<string, ContainerState>
}

/** A container and its (published) disks by name. */
export interface ContainerState {
  account: string
  name: string
  metadata: Record<string, string>
  etag: string
  lastModified: number
  createdOn: number
  disks: Map<string, DiskState>
}

/** What a disk and each of its snapshots hold. */
export interface Version {
  root: Root
  used: number
  size: number
  sequenceNumber: number
  metadata: Record<string, string>
  content: ContentProperties
  /** Blob index tags; absent in records and checkpoints written before tags existed. */
  tags?: Record<string, string>
  etag: string
  lastModified: number
  createdOn: number
  /**
   * The id of the disk this content began in: a new disk starts its own lineage; a copy (Copy Blob,
   * incremental copy, a restore from a snapshot) and a promote take their source's, a snapshot its disk's.
   * Diffs across disks are served only within one lineage (DiskStore.diff `fromDisk`).
   */
  lineage: number
}

/** A snapshot of a disk: a frozen version with its id. */
export interface SnapshotState extends Version {
  id: string
}

/** A disk: its live version, lease, snapshots and copy state. */
export interface DiskState extends Version {
  id: number
  account: string
  container: string
  name: string
  /** Token of the tree nodes this disk may change in place. */
  owner: number
  lease: LeaseState
  snapshots: SnapshotState[]
  copy?: CopyInfo
  incrementalCopy: boolean
  /** Being imported: not yet in its container. */
  pending?: boolean
}

/** The JSON part of a checkpoint. */
interface CheckpointJson {
  log: LogPosition
  nextWriteId: number
  nextDiskId: number
  changes: number
  lastSnapshot: SnapshotTick
  /** Disks being imported, with their account and container. */
  // `lineage` is absent from checkpoints written before lineages were kept.
  pending: (Omit<DiskState, 'root' | 'owner' | 'snapshots' | 'lineage'> & {
    root: number
    lineage?: number
  })[]
  accounts: (Omit<AccountState, 'containers'> & {
    containers: (Omit<ContainerState, 'disks' | 'account'> & {
      disks: (Omit<DiskState, 'root' | 'owner' | 'account' | 'container' | 'snapshots' | 'lineage'> & {
        root: number
        lineage?: number
        snapshots: (Omit<SnapshotState, 'root' | 'lineage'> & { root: number; lineage?: number })[]
      })[]
    })[]
  })[]
}

const ETAG_PREFIX = '"0x8DE'

/** The in-memory state of the disk store; the façade changes it only by applying log records. */
export class StoreState {
  readonly accounts = new Map<string, AccountState>()
  /** Every disk by id, published or pending. */
  readonly disks = new Map<number, DiskState>()
  readonly writes = new WriteTable()
  nextWriteId = 1
  nextDiskId = 1
  nextOwner = 1
  changes = 0
  lastSnapshot: SnapshotTick = { ms: 0, sub: 0 }

  /** Forgets everything before a reload from the checkpoint and the log (owner tokens keep counting). */
  clear(): void {
    this.accounts.clear()
    this.disks.clear()
    this.writes.clear()
    this.nextWriteId = 1
    this.nextDiskId = 1
    this.changes = 0
    this.lastSnapshot = { ms: 0, sub: 0 }
  }

  /** A new etag: the change counter, in Azure's form. */
  etag(): string {
    this.changes++
    return `${ETAG_PREFIX}${this.changes.toString(16).toUpperCase().padStart(12, '0')}"`
  }

  /** Gives a changed item a new etag and modification time. */
  touch(v: { etag: string; lastModified: number }, t: number): void {
    v.etag = this.etag()
    v.lastModified = t
  }

  /** The disk with this id; a record naming an unknown one means the store is damaged. */
  diskById(id: number): DiskState {
    const d = this.disks.get(id)
    if (d === undefined)
      throw new CairnError('StoreCorrupt', `Cannot apply a disk store record: disk #${id} is unknown`)
    return d
  }

  /** The JSON of a checkpoint of this state, with tree roots numbered by `nodes`. */
  toCheckpointJson(log: LogPosition, nodes: NodeWriter): object {
    const json: CheckpointJson = {
      log,
      nextWriteId: this.nextWriteId,
      nextDiskId: this.nextDiskId,
      changes: this.changes,
      lastSnapshot: this.lastSnapshot,
      pending: [...this.disks.values()]
        .filter((d) => d.pending)
        .map((d) => {
          const { root, owner: _owner, snapshots: _s, ...rest } = d
          return { ...rest, root: nodes.id(root) }
        }),
      accounts: [...this.accounts.values()].map((a) => ({
        name: a.name,
        region: a.region,
        redundancy: a.redundancy,
        keys: a.keys,
        createdOn: a.createdOn,
        containers: [...a.containers.values()].map((c) => ({
          name: c.name,
          metadata: c.metadata,
          etag: c.etag,
          lastModified: c.lastModified,
          createdOn: c.createdOn,
          disks: [...c.disks.values()].map((d) => {
            const { root, owner: _owner, account: _a, container: _c, snapshots, ...rest } = d
            return {
              ...rest,
              root: nodes.id(root),
              snapshots: snapshots.map((sn) => ({ ...sn, root: nodes.id(sn.root) })),
            }
          }),
        })),
      })),
    }
    return json
  }

  /** The log position a checkpoint's replay starts from. */
  static checkpointStart(data: CheckpointData): LogPosition {
    return (data.json as CheckpointJson).log
  }

  /** Loads a checkpoint into this (empty) state. */
  restore(data: CheckpointData): void {
    const j = data.json as CheckpointJson
    const root = (id: number): Root => {
      if (id === -1) return undefined
      const node = data.nodes[id]
      if (node === undefined || node instanceof Float64Array) {
        throw new CairnError(
          'StoreCorrupt',
          `Cannot open the disk store: checkpoint root ${id} is not an inner node`,
        )
      }
      return node
    }
    this.nextWriteId = j.nextWriteId
    this.nextDiskId = j.nextDiskId
    this.changes = j.changes
    this.lastSnapshot = j.lastSnapshot
    for (const [id, pieces] of data.writes) this.writes.replace(id, pieces)
    for (const d of j.pending) {
      this.disks.set(d.id, {
        ...d,
        lineage: d.lineage ?? d.id,
        root: root(d.root),
        owner: this.nextOwner++,
        snapshots: [],
      })
    }
    for (const a of j.accounts) {
      const acc: AccountState = { ...a, containers: new Map() }
      this.accounts.set(a.name, acc)
      for (const c of a.containers) {
        const cont: ContainerState = { ...c, account: a.name, disks: new Map() }
        acc.containers.set(c.name, cont)
        for (const d of c.disks) {
          // Checkpoints written before lineages were kept: each disk and its snapshots are their own.
          const disk: DiskState = {
            ...d,
            lineage: d.lineage ?? d.id,
            account: a.name,
            container: c.name,
            root: root(d.root),
            owner: this.nextOwner++,
            snapshots: d.snapshots.map((sn) => ({
              ...sn,
              lineage: sn.lineage ?? d.lineage ?? d.id,
              root: root(sn.root),
            })),
          }
          cont.disks.set(d.name, disk)
          this.disks.set(d.id, disk)
        }
      }
    }
  }
}
