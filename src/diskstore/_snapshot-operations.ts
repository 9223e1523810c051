// SnapshotOperations: LogDiskStore's snapshots (one disk or a consistency group in one record, list,
// delete, promote) and copies of a disk or snapshot to another disk (which share its extent tree).
// Each validates, then commits one META record through the host.

import { CairnError } from '../util/index.js'
import type { MetaOp } from './_apply-record.js'
import { checkDiskName, refText } from './_names.js'
import type { OperationHost } from './_operation-host.js'
import { newSnapshotId, parseSnapshotId } from './_snapshot-id.js'
import { checkWritable } from './_write-conditions.js'
import type { DiskInfo, DiskRef, WriteConditions, WriteResult } from './types.js'

/** Options of LogDiskStore.copyDisk: the DiskStore ones, and conditions on an existing target. */
export interface CopyDiskOptions {
  metadata?: Record<string, string>
  overwrite?: boolean
  tags?: Record<string, string>
  conditions?: WriteConditions
}

/** The snapshot and copy methods of the disk store. */
export class SnapshotOperations {
  readonly #host: OperationHost

  constructor(host: OperationHost) {
    this.#host = host
  }

  async snapshot(
    ref: DiskRef,
    options: { metadata?: Record<string, string>; conditions?: WriteConditions; id?: string } = {},
  ): Promise<DiskInfo> {
    const d = this.#host.disk(ref)
    this.#host.check(
      d,
      options.conditions,
      `snapshot disk "${refText(ref)}"`,
      options.conditions?.leaseId !== undefined,
    )
    const t = this.#host.now()
    if (
      options.id !== undefined &&
      (parseSnapshotId(options.id) === undefined || d.snapshots.some((s) => s.id === options.id))
    )
      throw new CairnError(
        'InvalidRequest',
        `Cannot snapshot disk "${refText(ref)}" as ${options.id}: not a snapshot id, or the disk has a snapshot of that id`,
      )
    const id = options.id ?? newSnapshotId(this.#host.state.lastSnapshot, t)
    const op: MetaOp = { op: 'snapshot', ids: [d.id], snapshot: id, t }
    if (options.metadata !== undefined) op.metadata = { ...options.metadata }
    await this.#host.commit(op)
    return this.#host.getDisk(ref, id)
  }

  async snapshotGroup(
    refs: DiskRef[],
    options: { markers?: Record<string, string> } = {},
  ): Promise<DiskInfo[]> {
    const disks = refs.map((r) => this.#host.disk(r))
    if (new Set(disks).size !== disks.length) {
      throw new CairnError('InvalidRequest', 'Cannot snapshot a consistency group: a disk is named twice')
    }
    const t = this.#host.now()
    const id = newSnapshotId(this.#host.state.lastSnapshot, t)
    const op: MetaOp = { op: 'snapshot', ids: disks.map((d) => d.id), snapshot: id, t }
    if (options.markers !== undefined) op.markers = { ...options.markers }
    await this.#host.commit(op)
    return refs.map((r) => this.#host.getDisk(r, id))
  }

  listSnapshots(ref: DiskRef): DiskInfo[] {
    const d = this.#host.disk(ref)
    return d.snapshots.map((s) => this.#host.diskInfo(d, s, s.id))
  }

  async deleteSnapshot(ref: DiskRef, snapshot: string): Promise<void> {
    const d = this.#host.disk(ref)
    this.#host.version(d, snapshot)
    await this.#host.commit({ op: 'deleteSnapshot', id: d.id, snapshot, t: this.#host.now() })
  }

  async promote(ref: DiskRef, snapshot: string, conditions?: WriteConditions): Promise<WriteResult> {
    const d = this.#host.disk(ref)
    this.#host.version(d, snapshot)
    const what = `promote snapshot ${snapshot} of disk "${refText(ref)}"`
    checkWritable(d, what)
    this.#host.check(d, conditions, what)
    await this.#host.commit({ op: 'promote', id: d.id, snapshot, t: this.#host.now() })
    return this.#host.result(d)
  }

  async copyDisk(
    source: { ref: DiskRef; snapshot?: string },
    target: DiskRef,
    options: CopyDiskOptions = {},
  ): Promise<DiskInfo> {
    const src = this.#host.disk(source.ref)
    this.#host.version(src, source.snapshot)
    const c = this.#host.container(target.account, target.container)
    checkDiskName(target.disk)
    const what = `copy "${refText(source.ref)}"${source.snapshot ? `@${source.snapshot}` : ''} to "${refText(target)}"`
    const old = c.disks.get(target.disk)
    if (old !== undefined && !options.overwrite)
      throw new CairnError('DiskAlreadyExists', `Cannot ${what}: the target exists`)
    if (old === src && source.snapshot === undefined) {
      throw new CairnError('InvalidRequest', `Cannot ${what}: a disk cannot be copied onto itself`)
    }
    if (old !== undefined) {
      checkWritable(old, what)
      this.#host.check(old, options.conditions, what)
    }
    const op: MetaOp = {
      op: 'copy',
      id: old?.id ?? this.#host.state.nextDiskId++,
      account: target.account,
      container: target.container,
      name: target.disk,
      source: src.id,
      t: this.#host.now(),
    }
    if (source.snapshot !== undefined) op.sourceSnapshot = source.snapshot
    if (options.metadata !== undefined) op.metadata = { ...options.metadata }
    if (options.tags !== undefined) op.tags = { ...options.tags }
    await this.#host.commit(op)
    return this.#host.getDisk(target)
  }
}
