// What the NBD server serves: a provider names and opens exports; an export is a byte array with
// the operations of the NBD transmission phase. The server does framing, limits and errors; the
// export does storage.

/** An entry of NBD_OPT_LIST. */
export interface ExportInfo {
  name: string
  /** Shown to people by `nbdinfo --list`: size and kind. */
  description: string
}

/** A run of bytes with one allocation state (base:allocation). */
export interface BlockExtent {
  length: number
  /** Not allocated in the backing store. */
  hole: boolean
  /** Reads as zeros. */
  zero: boolean
}

/** Options of a mutation: FUA means it must be durable before the promise settles. */
export interface WriteOptions {
  fua: boolean
}

/** An open export: one connection's view of a disk or snapshot. */
export interface NbdExport {
  readonly name: string
  readonly description: string
  /** Bytes; fixed for the life of the connection. */
  readonly size: number
  readonly readOnly: boolean
  /**
   * Reads any byte range inside the export; with `into` (at least `length` bytes) the bytes may go
   * there, and the answer is then a view of it.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
  /** Writes any byte range inside the export; unaligned edges are read, merged and written back. */
  write(offset: number, data: Buffer, options: WriteOptions): Promise<void>
  /** Makes every completed write durable. */
  flush(): Promise<void>
  /** Discards a range (only whole pages inside it; the rest is left as it is). */
  trim(offset: number, length: number, options: WriteOptions): Promise<void>
  /** Zeros a range; with `mayTrim`, whole pages may become holes. */
  writeZeroes(offset: number, length: number, options: WriteOptions & { mayTrim: boolean }): Promise<void>
  /** Consecutive extents from `offset`, covering at most `length` bytes and at most `maxExtents` entries. */
  blockStatus(offset: number, length: number, maxExtents: number): BlockExtent[] | Promise<BlockExtent[]>
  close(): Promise<void>
}

/** Names and opens exports. `open` throws a CairnError (NbdExportNotFound) for an unknown name. */
export interface ExportProvider {
  /** At most `limit` exports, for NBD_OPT_LIST. */
  list(limit: number): ExportInfo[] | Promise<ExportInfo[]>
  open(name: string): Promise<NbdExport>
  /** Makes every write to every export durable (on server shutdown). */
  flush(): Promise<void>
}
