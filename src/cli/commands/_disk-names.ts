// How the CLI names disks: `ACCOUNT/CONTAINER/DISK`, `CONTAINER/DISK` (in devstoreaccount1) or just
// `DISK` (in devstoreaccount1/disks, which `cairn serve` creates on first start), optionally followed
// by `@SNAPSHOT`.
import { CairnError } from '../../util/index.js'

/** The account a disk name without one is in. */
export const DEFAULT_ACCOUNT = 'devstoreaccount1'
/** The container a disk name without one is in. */
export const DEFAULT_CONTAINER = 'disks'

/** A disk as the CLI names it. */
export interface DiskName {
  account: string
  container: string
  disk: string
  snapshot?: string
}

/** Parses `[[ACCOUNT/]CONTAINER/]DISK[@SNAPSHOT]`. */
export function parseDiskName(text: string, options: { snapshot?: boolean } = {}): DiskName {
  const at = text.lastIndexOf('@')
  const name = at === -1 ? text : text.slice(0, at)
  const snapshot = at === -1 ? undefined : text.slice(at + 1)
  if (snapshot !== undefined && !options.snapshot) {
    throw new CairnError('UsageError', `Cannot use "${text}" here: name a disk, not a snapshot`)
  }
  const parts = name.split('/')
  if (parts.some((p) => p === '') || (snapshot !== undefined && snapshot === '')) {
    throw new CairnError(
      'UsageError',
      `Cannot read disk name "${text}": use [[ACCOUNT/]CONTAINER/]DISK[@SNAPSHOT]`,
    )
  }
  let out: DiskName
  if (parts.length === 1) out = { account: DEFAULT_ACCOUNT, container: DEFAULT_CONTAINER, disk: parts[0]! }
  else if (parts.length === 2) out = { account: DEFAULT_ACCOUNT, container: parts[0]!, disk: parts[1]! }
  else out = { account: parts[0]!, container: parts[1]!, disk: parts.slice(2).join('/') }
  if (snapshot !== undefined) out.snapshot = snapshot
  return out
}

/** `account/container/disk[@snapshot]` for messages. */
export const diskText = (d: DiskName) =>
  `${d.account}/${d.container}/${d.disk}${d.snapshot ? `@${d.snapshot}` : ''}`

/** Parses `ACCOUNT/CONTAINER` (or `CONTAINER` in devstoreaccount1). */
export function splitContainer(text: string): { account: string; container: string } {
  const parts = text.split('/')
  if (parts.length === 1 && parts[0]) return { account: DEFAULT_ACCOUNT, container: parts[0] }
  if (parts.length === 2 && parts[0] && parts[1]) return { account: parts[0], container: parts[1] }
  throw new CairnError('UsageError', `Cannot read container name "${text}": use ACCOUNT/CONTAINER`)
}

const enc = encodeURIComponent

/** API path of an account. */
export const accountPath = (account: string) => `/api/v1/accounts/${enc(account)}`
/** API path of a container. */
export const containerPath = (account: string, container: string) =>
  `${accountPath(account)}/containers/${enc(container)}`
/** API path of a disk. */
export const diskPath = (d: { account: string; container: string; disk: string }) =>
  `${containerPath(d.account, d.container)}/disks/${enc(d.disk)}`
