// The disk store: thin page-blob disks with instant snapshots and page-range diffs.
export { crc32, crc32Implementation } from './_crc32.js'
export {
  EXTENT_HEADER_SIZE,
  extentHeader,
  type ImageExtent,
  readExtentStream,
} from './_image-stream.js'
export { dataRanges, forEachDataRun } from './_raw-file.js'
export { LogDiskStore, type LogDiskStoreOptions } from './log-disk-store.js'
export * from './types.js'
