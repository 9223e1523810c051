// OperationHost: what the operations of LogDiskStore kept outside its file (_account-operations.ts,
// _disk-operations.ts, _snapshot-operations.ts, _read-operations.ts) may see and do of the store. The
// metadata ones validate a request and commit one META record through it; the read ones only read.
// The store keeps the sequencing of appends and fsyncs.
import type { MetaOp } from './_apply-record.js'
import type { Root } from './_extent-tree.js'
import type { AccountState, ContainerState, DiskState, StoreState, Version } from './_store-state.js'
import type { DiskInfo, DiskRef, WriteConditions, WriteResult } from './types.js'

/** The store as its metadata operations see it. */
export interface OperationHost {
  readonly state: StoreState
  now(): number
  /** Throws when the store is closed or broken. */
  open(): void
  account(name: string): AccountState
  container(account: string, name: string): ContainerState
  disk(ref: DiskRef): DiskState
  version(disk: DiskState, snapshot: string | undefined): Version
  /** Throws unless the conditions hold for a mutation of `disk` (`what` completes "Cannot …"). */
  check(
    disk: DiskState | undefined,
    conditions: WriteConditions | undefined,
    what: string,
    lease?: boolean,
  ): void
  /** The etag, time and sequence number of a disk, as a write answers them. */
  result(disk: DiskState): WriteResult
  diskInfo(disk: DiskState, v: Version, snapshot?: string): DiskInfo
  getDisk(ref: DiskRef, snapshot?: string): DiskInfo
  /** Appends and applies a META record, then waits until it is durable. */
  commit(op: MetaOp): Promise<void>
  /**
   * The bytes of a range of a root, read at once; bytes written directly are read on the thread pool
   * when `later` is given (each read's promise is pushed there).
   */
  readRoot(
    root: Root,
    offset: number,
    length: number,
    what: string,
    into?: Buffer,
    later?: Promise<void>[],
  ): Buffer
}
