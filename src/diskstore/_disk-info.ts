// The public views of the store's state (DiskInfo, AccountInfo, ContainerInfo) and paged listings.

import { leaseInfo } from './_lease.js'
import type { AccountState, ContainerState, DiskState, Version } from './_store-state.js'
import type { AccountInfo, ContainerInfo, DiskInfo, Listing, ListOptions } from './types.js'

/** A time as ISO 8601 text. */
export const iso = (ms: number) => new Date(ms).toISOString()

/** Orders names by code unit, as Azure lists them. */
export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** The public view of a disk's live version or of a snapshot (`now` decides a lease's state). */
export function diskInfo(
  disk: DiskState,
  v: Version,
  snapshot: string | undefined,
  now: () => number,
): DiskInfo {
  const info: DiskInfo = {
    ref: { account: disk.account, container: disk.container, disk: disk.name },
    size: v.size,
    sequenceNumber: v.sequenceNumber,
    metadata: { ...v.metadata },
    content: { ...v.content },
    etag: v.etag,
    lastModified: iso(v.lastModified),
    createdOn: iso(v.createdOn),
    lease: snapshot === undefined ? leaseInfo(disk.lease, now()) : { state: 'available', status: 'unlocked' },
    usedBytes: v.used,
  }
  if (snapshot !== undefined) info.snapshot = snapshot
  if (snapshot === undefined && disk.copy !== undefined) info.copy = { ...disk.copy }
  if (snapshot === undefined && disk.incrementalCopy) info.incrementalCopy = true
  if (v.tags !== undefined) info.tags = { ...v.tags }
  return info
}

/** The public view of an account (with its keys). */
export function accountInfo(a: AccountState): AccountInfo {
  return {
    name: a.name,
    region: a.region,
    redundancy: a.redundancy,
    keys: [a.keys[0], a.keys[1]],
    createdOn: iso(a.createdOn),
  }
}

/** The public view of a container. */
export function containerInfo(c: ContainerState): ContainerInfo {
  return {
    account: c.account,
    name: c.name,
    metadata: { ...c.metadata },
    etag: c.etag,
    lastModified: iso(c.lastModified),
    createdOn: iso(c.createdOn),
  }
}

/** One page of a sorted listing by name, with the name of the next item as marker. */
export function listPage<T, U>(
  all: T[],
  key: (t: T) => string,
  options: ListOptions,
  map: (t: T) => U,
): Listing<U> {
  let items = all
  if (options.prefix !== undefined) items = items.filter((t) => key(t).startsWith(options.prefix!))
  if (options.marker !== undefined) items = items.filter((t) => key(t) >= options.marker!)
  const max = options.maxResults ?? 5000
  if (items.length > max) {
    return { items: items.slice(0, max).map(map), nextMarker: key(items[max]!) }
  }
  return { items: items.map(map) }
}
