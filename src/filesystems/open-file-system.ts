import { damaged } from './_base-file-system.js'
import { CachedSource } from './_cached-source.js'
import { corrupt, unsupported } from './_errors.js'
import { ExtFileSystem } from './ext-file-system.js'
import { FatFileSystem } from './fat-file-system.js'
import { NtfsFileSystem } from './ntfs-file-system.js'
import type { BlockSource, FileSystem, Volume } from './types.js'

/** Options of openFileSystem. */
export interface OpenFileSystemOptions {
  /** Bytes of metadata pages kept in memory (default 32 MiB). */
  cacheBytes?: number
}

/** Opens the file system of one volume of openVolumes for browsing; refuses what it cannot read. */
export async function openFileSystem(
  src: BlockSource,
  volume: Volume,
  options: OpenFileSystemOptions = {},
): Promise<FileSystem> {
  const where = volume.partition === null ? 'the disk' : `partition ${volume.partition}`
  if (!volume.supported) {
    if (volume.start + volume.size > src.size)
      throw corrupt(`Cannot open ${where}: ${volume.reason ?? 'it lies past the disk end'}`)
    throw unsupported(`Cannot open ${where}: ${volume.fsType} — ${volume.reason ?? 'not supported'}`)
  }
  if (volume.start + volume.size > src.size)
    throw corrupt(`Cannot open ${where}: it ends past the end of the disk`)
  const cache = new CachedSource(src, volume.start, volume.size, options)
  switch (volume.type) {
    case 'ext':
      return damaged(`open ${where}`, () => ExtFileSystem.open(cache))
    case 'fat':
      return damaged(`open ${where}`, () => FatFileSystem.open(cache))
    case 'ntfs':
      return damaged(`open ${where}`, () => NtfsFileSystem.open(cache))
    default:
      throw unsupported(`Cannot open ${where}: ${volume.fsType} file systems are not supported yet`)
  }
}
