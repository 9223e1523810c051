// Browsing file systems inside disk images without mounting them: partition tables (MBR with logical
// partitions, GPT, whole disk) and read-only readers of ext2/3/4, FAT12/16/32 and NTFS over a block-read
// callback (docs/filesystems.md).

export { normalizePath } from './_path.js'
export { type OpenFileSystemOptions, openFileSystem } from './open-file-system.js'
export { openVolumes } from './open-volumes.js'
export type {
  BlockSource,
  DirectoryPage,
  FileEntry,
  FileSystem,
  ListOptions,
  Volume,
  VolumeType,
  WalkEntry,
} from './types.js'
