// The shapes every reader of src/filesystems shares: where bytes come from, what a disk holds, and what a
// file system answers. Readers never write and never follow a symlink.

/**
 * Random-access reads of one disk (or one volume of it). The caller backs it by a disk-store snapshot or
 * a vault point; a read never extends past `size` (the readers check before asking).
 */
export interface BlockSource {
  readonly size: number
  /** `length` bytes from `offset`; with `into`, the bytes may land there (no copy): the answer says where they are. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
}

/** What a volume holds, as detected by its magic numbers. */
export type VolumeType =
  | 'ext'
  | 'fat'
  | 'ntfs'
  | 'lvm'
  | 'xfs'
  | 'swap'
  | 'btrfs'
  | 'luks'
  | 'bitlocker'
  | 'iso9660'
  | 'extended'
  | 'unknown'

/** One partition (or the whole disk when it carries a file system directly). */
export interface Volume {
  /** The partition number as Linux numbers it (MBR: 1-4 primary, 5+ logical; GPT: entry index + 1); null for a whole-disk file system. */
  partition: number | null
  /** Byte offset on the disk. */
  start: number
  /** Bytes. */
  size: number
  /** Partition table the volume comes from. */
  scheme: 'mbr' | 'gpt' | 'none'
  /** MBR type byte (`0x83`) or GPT type GUID, as the table says. */
  partitionType?: string
  /** GPT partition name. */
  partitionName?: string
  type: VolumeType
  /** The precise kind: `ext4`, `ext3`, `ext2`, `fat12`, `fat16`, `fat32`, `ntfs`, `LVM2_member`, `xfs`, `swap`, `btrfs`, … */
  fsType: string
  label?: string
  uuid?: string
  /** True when openFileSystem can browse it. */
  supported: boolean
  /** Why not, when not supported: "LVM2 physical volume: not supported". */
  reason?: string
}

/** One directory entry or the answer of stat. */
export interface FileEntry {
  name: string
  /** Normalized absolute path inside the file system (`/` for the root). */
  path: string
  type: 'file' | 'dir' | 'symlink' | 'other'
  /** Bytes (the length of the target for a symlink). */
  size: number
  /** POSIX mode bits with the file type (`0o100644`); FAT and NTFS get synthesized bits. */
  mode: number
  uid: number
  gid: number
  /** Modification time, ms since the epoch (UTC; FAT stores local time and is read as UTC). */
  mtime: number
  /** Symlink target (also NTFS symlinks and junctions when their reparse point says). */
  target?: string
  /** The file's identity in its file system (ext inode, NTFS MFT record, FAT entry position): equal ids are hard links of one file. */
  id: string
  /** Hard-link count where the file system keeps one. */
  nlink: number
}

/** One page of a directory listing, in name order. */
export interface DirectoryPage {
  entries: FileEntry[]
  /** All entries of the directory. */
  total: number
  /** Start of the next page, when there is one. */
  next?: number
}

/** Options of a listing. */
export interface ListOptions {
  /** First entry (0-based, in name order). */
  start?: number
  /** At most this many entries (default: all). */
  limit?: number
  signal?: AbortSignal
}

/** One step of a walk: the entry and its depth below the walk's root. */
export interface WalkEntry {
  entry: FileEntry
  depth: number
}

/** A read-only browsable file system. */
export interface FileSystem {
  readonly type: VolumeType
  readonly fsType: string
  readonly label?: string
  /** The entry at a path (the root is `/`); a symlink is not followed. */
  stat(path: string): Promise<FileEntry>
  /** The entries of a directory (without `.` and `..`), sorted by name, optionally one page. */
  list(path: string, options?: ListOptions): Promise<DirectoryPage>
  /**
   * Up to `length` bytes of a file from `offset` (fewer at its end; holes read as zeros); with `into`
   * (at least `length` bytes) they are read there and the answer is a view of it.
   */
  read(file: string | FileEntry, offset: number, length: number, into?: Buffer): Promise<Buffer>
  /** The target of a symlink. */
  readlink(path: string): Promise<string>
  /**
   * Every entry below a directory, depth first, parents before children; a directory met twice (a
   * loop) raises FileSystemCorrupt; bounded by maxEntries (default 10 million) and maxDepth (4096).
   */
  walk(
    path: string,
    options?: { signal?: AbortSignal; maxEntries?: number; maxDepth?: number },
  ): AsyncIterable<WalkEntry>
}
