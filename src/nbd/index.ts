// The NBD server: disks and snapshots of the disk store as NBD exports for qemu, nbdcopy, nbdinfo, nbdfuse.

export type { NbdObserver } from './_nbd-connection.js'
export { DiskStoreExports, type NbdDiskStore } from './disk-store-exports.js'
export { formatExportName, nbdUri, parseExportName } from './export-name.js'
export type { BlockExtent, ExportInfo, ExportProvider, NbdExport, WriteOptions } from './export-provider.js'
export { NBD_DEFAULT_PORT, NbdServer, type NbdServerOptions, type NbdTlsOptions } from './nbd-server.js'
export { type PskKeyring, PskKeys } from './psk-keys.js'
export { ReaderExports, type ReaderSource, type ReadOnlyDisk } from './reader-exports.js'
