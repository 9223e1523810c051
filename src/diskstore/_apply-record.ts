// Log records of the disk store: the binary meta of WRITE, CLEAR and RELOCATE records, the JSON of
// META records (MetaOp), and how applying each changes the StoreState. See docs/formats.md.
//
// Applying a record uses only what the record holds, so replaying the log rebuilds the same state.
//
// WRITE meta (28 bytes): u32 disk id, u48 write id, u48 disk offset, u32 length, f64 time (ms).
// CLEAR meta (24 bytes): u32 disk id, u48 disk offset, u48 length, f64 time (ms).
// RELOCATE meta (16 bytes): u48 write id, u32 offset in the write (the data follows, as for WRITE).

import { CairnError } from '../util/index.js'
import { editTree } from './_extent-tree.js'
import { type LeaseState, NO_LEASE } from './_lease.js'
import { type LogRecord, RecordType } from './_segment-log.js'
import { compareTick, parseSnapshotId } from './_snapshot-id.js'
import type { DiskState, StoreState, Version } from './_store-state.js'
import type { ContentProperties, CopyInfo } from './types.js'

const WRITE_META = 28
const CLEAR_META = 24
const RELOCATE_META = 16

/** The meta of a WRITE record. */
export function writeMeta(
  diskId: number,
  writeId: number,
  offset: number,
  length: number,
  t: number,
): Buffer {
  const meta = Buffer.alloc(WRITE_META)
  meta.writeUInt32LE(diskId, 0)
  meta.writeUIntLE(writeId, 4, 6)
  meta.writeUIntLE(offset, 10, 6)
  meta.writeUInt32LE(length, 16)
  meta.writeDoubleLE(t, 20)
  return meta
}

/** The meta of a CLEAR record. */
export function clearMeta(diskId: number, offset: number, length: number, t: number): Buffer {
  const meta = Buffer.alloc(CLEAR_META)
  meta.writeUInt32LE(diskId, 0)
  meta.writeUIntLE(offset, 4, 6)
  meta.writeUIntLE(length, 10, 6)
  meta.writeDoubleLE(t, 16)
  return meta
}

/** The meta of a RELOCATE record: `at` is the offset in the write of the bytes it carries. */
export function relocateMeta(writeId: number, at: number): Buffer {
  const meta = Buffer.alloc(RELOCATE_META)
  meta.writeUIntLE(writeId, 0, 6)
  meta.writeUInt32LE(at, 6)
  return meta
}

/** The meta of a META record. */
export function metaOpMeta(op: MetaOp): Buffer {
  return Buffer.from(JSON.stringify(op), 'utf8')
}

/** Metadata records, as stored (JSON) in META log records. */
export type MetaOp =
  | {
      op: 'createAccount'
      name: string
      region: string
      redundancy: string
      keys: [string, string]
      t: number
    }
  | { op: 'deleteAccount'; name: string; t: number }
  | { op: 'setAccountKey'; name: string; which: 1 | 2; key: string; t: number }
  | { op: 'setAccountRedundancy'; name: string; redundancy: string; t: number }
  | { op: 'createContainer'; account: string; name: string; metadata: Record<string, string>; t: number }
  | { op: 'setContainerMetadata'; account: string; name: string; metadata: Record<string, string>; t: number }
  | { op: 'deleteContainer'; account: string; name: string; t: number }
  | {
      op: 'createDisk'
      id: number
      account: string
      container: string
      name: string
      size: number
      sequenceNumber: number
      metadata: Record<string, string>
      content: ContentProperties
      incrementalCopy: boolean
      tags?: Record<string, string>
      /** An import in progress: invisible until publishDisk. */
      pending?: boolean
      t: number
    }
  | { op: 'publishDisk'; id: number; t: number }
  | {
      op: 'setDisk'
      id: number
      size?: number
      sequenceNumber?: number
      metadata?: Record<string, string>
      content?: ContentProperties
      copy?: CopyInfo
      t: number
    }
  | { op: 'deleteDisk'; id: number; snapshots: 'none' | 'include' | 'only'; t: number }
  | { op: 'lease'; id: number; lease: LeaseState; t: number }
  /** Blob index tags: not content, so the disk keeps its etag and modification time. */
  | { op: 'setTags'; id: number; tags: Record<string, string>; t: number }
  | {
      op: 'snapshot'
      ids: number[]
      snapshot: string
      metadata?: Record<string, string>
      /** Added to each disk's metadata when `metadata` is absent. */
      markers?: Record<string, string>
      t: number
    }
  | { op: 'deleteSnapshot'; id: number; snapshot: string; t: number }
  | { op: 'promote'; id: number; snapshot: string; t: number }
  | {
      op: 'copy'
      id: number
      account: string
      container: string
      name: string
      source: number
      sourceSnapshot?: string
      metadata?: Record<string, string>
      tags?: Record<string, string>
      t: number
    }

/** Applies one log record to the state (replay, and the appends that go through here). */
export function applyRecord(state: StoreState, rec: LogRecord): void {
  const m = rec.meta
  switch (rec.type) {
    case RecordType.write: {
      const diskId = m.readUInt32LE(0)
      const writeId = m.readUIntLE(4, 6)
      const offset = m.readUIntLE(10, 6)
      const length = m.readUInt32LE(16)
      const t = m.readDoubleLE(20)
      applyWrite(state, diskId, writeId, offset, length, t, rec.segment, rec.dataOffset)
      return
    }
    case RecordType.clear: {
      applyClear(state, m.readUInt32LE(0), m.readUIntLE(4, 6), m.readUIntLE(10, 6), m.readDoubleLE(16))
      return
    }
    case RecordType.relocate: {
      const writeId = m.readUIntLE(0, 6)
      const at = m.readUInt32LE(6)
      state.writes.relocate(writeId, at, rec.dataLength, rec.segment, rec.dataOffset)
      // Should the write's own record ever be missing, its id must still never be handed out again.
      if (writeId >= state.nextWriteId) state.nextWriteId = writeId + 1
      return
    }
    case RecordType.meta: {
      applyMeta(state, JSON.parse(m.toString('utf8')) as MetaOp)
      return
    }
    default:
      throw new CairnError('StoreCorrupt', `Cannot open the disk store: unknown record type ${rec.type}`)
  }
}

/** Applies a WRITE: the disk's tree maps the range to the write's bytes. */
export function applyWrite(
  state: StoreState,
  diskId: number,
  writeId: number,
  offset: number,
  length: number,
  t: number,
  segment: number,
  at: number,
) {
  const disk = state.diskById(diskId)
  state.writes.add(writeId, segment, at)
  if (writeId >= state.nextWriteId) state.nextWriteId = writeId + 1
  const r = editTree(disk.root, {
    start: offset,
    end: offset + length,
    writeId,
    writeOffset: 0,
    owner: disk.owner,
  })
  disk.root = r.root
  disk.used += r.delta
  state.touch(disk, t)
}

/** Applies a CLEAR: the range reads as zeros again. */
export function applyClear(
  state: StoreState,
  diskId: number,
  offset: number,
  length: number,
  t: number,
): void {
  const disk = state.diskById(diskId)
  const r = editTree(disk.root, {
    start: offset,
    end: offset + length,
    writeId: -1,
    writeOffset: 0,
    owner: disk.owner,
  })
  disk.root = r.root
  disk.used += r.delta
  state.touch(disk, t)
}

/** Applies a META record. */
export function applyMeta(state: StoreState, op: MetaOp): void {
  switch (op.op) {
    case 'createAccount':
      state.accounts.set(op.name, {
        name: op.name,
        region: op.region,
        redundancy: op.redundancy,
        keys: op.keys,
        createdOn: op.t,
        containers: new Map(),
      })
      return
    case 'deleteAccount': {
      const acc = state.accounts.get(op.name)
      if (acc === undefined) return
      for (const c of acc.containers.values()) for (const d of c.disks.values()) state.disks.delete(d.id)
      state.accounts.delete(op.name)
      return
    }
    case 'setAccountKey': {
      const acc = state.accounts.get(op.name)
      if (acc !== undefined) acc.keys[op.which - 1] = op.key
      return
    }
    case 'setAccountRedundancy': {
      const acc = state.accounts.get(op.name)
      if (acc !== undefined) acc.redundancy = op.redundancy
      return
    }
    case 'createContainer': {
      const acc = state.accounts.get(op.account)
      if (acc === undefined) return
      acc.containers.set(op.name, {
        account: op.account,
        name: op.name,
        metadata: op.metadata,
        etag: state.etag(),
        lastModified: op.t,
        createdOn: op.t,
        disks: new Map(),
      })
      return
    }
    case 'setContainerMetadata': {
      const c = state.accounts.get(op.account)?.containers.get(op.name)
      if (c === undefined) return
      c.metadata = op.metadata
      state.touch(c, op.t)
      return
    }
    case 'deleteContainer': {
      const acc = state.accounts.get(op.account)
      const c = acc?.containers.get(op.name)
      if (acc === undefined || c === undefined) return
      for (const d of c.disks.values()) state.disks.delete(d.id)
      acc.containers.delete(op.name)
      return
    }
    case 'createDisk': {
      const c = state.accounts.get(op.account)?.containers.get(op.container)
      if (c === undefined)
        throw new CairnError('StoreCorrupt', `Cannot apply createDisk: no container ${op.container}`)
      const old = op.pending ? undefined : c.disks.get(op.name)
      const disk: DiskState = {
        id: op.id,
        account: op.account,
        container: op.container,
        name: op.name,
        root: undefined,
        used: 0,
        size: op.size,
        sequenceNumber: op.sequenceNumber,
        metadata: op.metadata,
        content: op.content,
        etag: state.etag(),
        lastModified: op.t,
        createdOn: old?.createdOn ?? op.t,
        owner: state.nextOwner++,
        lease: old?.lease ?? NO_LEASE,
        snapshots: old?.snapshots ?? [],
        incrementalCopy: op.incrementalCopy,
        lineage: op.id,
      }
      if (op.tags !== undefined && Object.keys(op.tags).length > 0) disk.tags = op.tags
      if (old !== undefined && old.id !== op.id) state.disks.delete(old.id)
      if (op.pending) disk.pending = true
      else c.disks.set(op.name, disk)
      state.disks.set(op.id, disk)
      if (op.id >= state.nextDiskId) state.nextDiskId = op.id + 1
      return
    }
    case 'publishDisk': {
      const d = state.diskById(op.id)
      const c = state.accounts.get(d.account)?.containers.get(d.container)
      if (c === undefined)
        throw new CairnError('StoreCorrupt', `Cannot apply publishDisk: no container ${d.container}`)
      delete d.pending
      c.disks.set(d.name, d)
      state.touch(d, op.t)
      return
    }
    case 'setDisk': {
      const d = state.diskById(op.id)
      if (op.size !== undefined) {
        if (op.size < d.size) {
          const r = editTree(d.root, {
            start: op.size,
            end: d.size,
            writeId: -1,
            writeOffset: 0,
            owner: d.owner,
          })
          d.root = r.root
          d.used += r.delta
        }
        d.size = op.size
      }
      if (op.sequenceNumber !== undefined) d.sequenceNumber = op.sequenceNumber
      if (op.metadata !== undefined) d.metadata = op.metadata
      if (op.content !== undefined) d.content = op.content
      if (op.copy !== undefined) d.copy = op.copy
      state.touch(d, op.t)
      return
    }
    case 'deleteDisk': {
      const d = state.diskById(op.id)
      if (op.snapshots === 'only') {
        d.snapshots = []
        return
      }
      const c = state.accounts.get(d.account)?.containers.get(d.container)
      if (c?.disks.get(d.name) === d) c.disks.delete(d.name)
      state.disks.delete(d.id)
      return
    }
    case 'lease': {
      const d = state.diskById(op.id)
      d.lease = op.lease
      return
    }
    case 'setTags': {
      const d = state.diskById(op.id)
      if (Object.keys(op.tags).length > 0) d.tags = op.tags
      else delete d.tags
      return
    }
    case 'snapshot': {
      const parsed = parseSnapshotId(op.snapshot)
      if (parsed !== undefined && compareTick(parsed, state.lastSnapshot) > 0) state.lastSnapshot = parsed
      for (const id of op.ids) {
        const d = state.diskById(id)
        d.snapshots.push({
          id: op.snapshot,
          root: d.root,
          used: d.used,
          size: d.size,
          sequenceNumber: d.sequenceNumber,
          metadata: op.metadata ?? { ...d.metadata, ...op.markers },
          content: { ...d.content },
          ...(d.tags !== undefined ? { tags: { ...d.tags } } : {}),
          etag: d.etag,
          lastModified: d.lastModified,
          createdOn: op.t,
          lineage: d.lineage,
        })
        d.owner = state.nextOwner++
      }
      return
    }
    case 'deleteSnapshot': {
      const d = state.diskById(op.id)
      d.snapshots = d.snapshots.filter((s) => s.id !== op.snapshot)
      return
    }
    case 'promote': {
      const d = state.diskById(op.id)
      const s = d.snapshots.find((x) => x.id === op.snapshot)
      if (s === undefined)
        throw new CairnError('StoreCorrupt', `Cannot apply promote: no snapshot ${op.snapshot}`)
      d.root = s.root
      d.used = s.used
      d.size = s.size
      d.metadata = { ...s.metadata }
      d.lineage = s.lineage
      d.owner = state.nextOwner++
      state.touch(d, op.t)
      return
    }
    case 'copy': {
      const src = state.diskById(op.source)
      const from: Version =
        op.sourceSnapshot === undefined
          ? src
          : (src.snapshots.find((x) => x.id === op.sourceSnapshot) ??
            (() => {
              throw new CairnError('StoreCorrupt', `Cannot apply copy: no snapshot ${op.sourceSnapshot}`)
            })())
      if (op.sourceSnapshot === undefined) src.owner = state.nextOwner++
      const c = state.accounts.get(op.account)?.containers.get(op.container)
      if (c === undefined)
        throw new CairnError('StoreCorrupt', `Cannot apply copy: no container ${op.container}`)
      const old = c.disks.get(op.name)
      const disk: DiskState = {
        id: op.id,
        account: op.account,
        container: op.container,
        name: op.name,
        root: from.root,
        used: from.used,
        size: from.size,
        sequenceNumber: from.sequenceNumber,
        metadata: op.metadata ?? { ...from.metadata },
        content: { ...from.content },
        etag: state.etag(),
        lastModified: op.t,
        createdOn: old?.createdOn ?? op.t,
        owner: state.nextOwner++,
        lease: old?.lease ?? NO_LEASE,
        snapshots: old?.snapshots ?? [],
        incrementalCopy: false,
        lineage: from.lineage,
      }
      if (op.tags !== undefined && Object.keys(op.tags).length > 0) disk.tags = op.tags
      if (old !== undefined && old.id !== op.id) state.disks.delete(old.id)
      c.disks.set(op.name, disk)
      state.disks.set(op.id, disk)
      if (op.id >= state.nextDiskId) state.nextDiskId = op.id + 1
      return
    }
  }
}
