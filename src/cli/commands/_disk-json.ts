// The disk as the API answers it, and how the disk commands name, show and describe it.
import type { Disk } from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import type { Output } from '../output.js'

/** The help text of a disk name argument. */
export const NAME_HELP = '[[ACCOUNT/]CONTAINER/]DISK (default account devstoreaccount1, container disks)'

/** Shows one disk or snapshot as key/values. */
export const showDisk = (out: Output, d: Disk) =>
  out.keyValues([
    ['disk', `${d.ref.account}/${d.ref.container}/${d.ref.disk}`],
    ['snapshot', d.snapshot],
    ['size', `${formatBytes(d.size)} (${d.size})`],
    ['used', `${formatBytes(d.usedBytes)} (${d.usedBytes})`],
    ['sequence', d.sequenceNumber],
    ['lease', `${d.lease.state} (${d.lease.status})`],
    ['etag', d.etag],
    ['modified', d.lastModified],
    ['created', d.createdOn],
    ['metadata', Object.keys(d.metadata).length ? d.metadata : undefined],
  ])

/** The columns of a disk list. */
export const diskColumns = [
  { header: 'disk', value: (d: Disk) => d.ref.disk },
  { header: 'snapshot', value: (d: Disk) => d.snapshot },
  { header: 'size', value: (d: Disk) => formatBytes(d.size), align: 'right' as const },
  { header: 'used', value: (d: Disk) => formatBytes(d.usedBytes), align: 'right' as const },
  { header: 'lease', value: (d: Disk) => d.lease.state },
  { header: 'modified', value: (d: Disk) => d.lastModified },
]

/** Parses `k=v` options into metadata. */
export function parseMetadata(list: unknown): Record<string, string> | undefined {
  const items = (list as string[] | undefined) ?? []
  if (items.length === 0) return undefined
  const out: Record<string, string> = {}
  for (const kv of items) {
    const eq = kv.indexOf('=')
    if (eq <= 0) throw new CairnError('UsageError', `Cannot read metadata "${kv}": use KEY=VALUE`)
    out[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return out
}
