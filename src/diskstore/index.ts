// The disk store: thin page-blob disks with instant snapshots and page-range diffs.
export * from './types.js'
