import type { DiskRef } from '../diskstore/index.js'

/** The NBD export name of a disk (`ACCOUNT/CONTAINER/DISK`) or of one of its snapshots (`…/DISK@SNAPSHOT`). */
export function formatExportName(ref: DiskRef, snapshot?: string): string {
  const base = `${ref.account}/${ref.container}/${ref.disk}`
  return snapshot === undefined ? base : `${base}@${snapshot}`
}

/**
 * The readings of an export name, most literal first: the whole rest as a disk name, then (when it
 * holds an `@`) the part before the last `@` as the disk and the part after it as the snapshot.
 * Disk names may contain `/` and `@`, so the provider tries each reading in turn.
 */
export function parseExportName(name: string): { ref: DiskRef; snapshot?: string }[] {
  const first = name.indexOf('/')
  const second = first < 0 ? -1 : name.indexOf('/', first + 1)
  if (first <= 0 || second <= first + 1 || second === name.length - 1) return []
  const account = name.slice(0, first)
  const container = name.slice(first + 1, second)
  const rest = name.slice(second + 1)
  const readings: { ref: DiskRef; snapshot?: string }[] = [{ ref: { account, container, disk: rest } }]
  const at = rest.lastIndexOf('@')
  if (at > 0 && at < rest.length - 1) {
    readings.push({ ref: { account, container, disk: rest.slice(0, at) }, snapshot: rest.slice(at + 1) })
  }
  return readings
}

/** An `nbd://` URI for an export, as qemu-img, nbdcopy and nbdinfo take it. */
export function nbdUri(host: string, port: number, exportName: string): string {
  const h = host.includes(':') ? `[${host}]` : host
  return `nbd://${h}:${port}/${exportName.split('/').map(encodeURIComponent).join('/')}`
}
