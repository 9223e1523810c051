// The storage a vault lives on: a flat namespace of immutable-or-replaced objects. Nothing above this
// interface may assume a folder; an Azure Blob or S3 backend implements the same six methods.

/** A byte range of one object. */
export interface ObjectRange {
  name: string
  offset: number
  length: number
}

/** One object of a backend listing. */
export interface BackendObject {
  /** Name relative to the vault root, `/`-separated, e.g. `packs/3f/3f2a…`. */
  name: string
  size: number
  /** Last modification, milliseconds since the epoch. */
  modified: number
  /** The store's version tag of the object (object stores list one; a new write changes it). */
  etag?: string
}

/** Where a vault's objects are kept. Missing objects throw CairnError `VaultObjectMissing`. */
export interface VaultBackend {
  /** A short word naming the implementation (`fs`, `azure`, `s3`). */
  readonly kind: string
  /** Where the vault is, for people (a path or a URL). */
  readonly location: string
  /** Every object whose name starts with `prefix`. */
  list(prefix: string): Promise<BackendObject[]>
  get(name: string): Promise<Buffer>
  /**
   * `length` bytes at `offset` (fewer at the object's end). With `into` (at least `length` bytes) the
   * backend may read into it and answer a view of it, sparing a buffer and a copy (object stores fill
   * it from the socket); callers use the answer either way.
   */
  getRange(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer>
  /**
   * Several ranges in one call, answered in order: a backend whose every call is a round trip (the
   * paired site's, docs/replication.md) answers them in one request. Optional.
   */
  getRanges?(ranges: readonly ObjectRange[]): Promise<Buffer[]>
  /** Writes or atomically replaces an object (given whole or in parts); durable when settled. */
  put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>
  /**
   * Writes an object only when no object has that name; false when one exists. Durable when settled.
   * `fresh`: the name was just drawn at random (a pack's), so a backend may skip probing for an object
   * there first (S3's HEAD); the write stays conditional and retried writes still recognise their own.
   */
  create(
    name: string,
    data: Uint8Array | readonly Uint8Array[],
    options?: { fresh?: boolean },
  ): Promise<boolean>
  /** Deletes an object; deleting a missing object is not an error. */
  delete(name: string): Promise<void>
  /**
   * The object's path on this machine, for readers that read it themselves (a restore's worker
   * threads); only backends on a local folder have one. Objects are immutable, so an open file stays valid.
   */
  localPath?(name: string): string
  /** Removes leftovers of writers that died (temporary files, unfinished uploads) older than `ms`. */
  sweepTemporary?(olderThanMs: number): Promise<number>
  /** Frees what the backend holds open (connections, file handles). */
  close?(): Promise<void>
}

/** True for backends on a remote object store (Azure Blob, S3): packs are bigger there and several upload at once. */
export function isObjectStore(backend: VaultBackend): boolean {
  return backend.kind === 'azure' || backend.kind === 's3'
}

/** Packs an object-store backup uploads at once. */
export const OBJECT_STORE_UPLOADS = 4
