// Naming rules of accounts, containers and disks, after the reference.
import { CairnError } from '../util/index.js'
import type { DiskRef } from './types.js'

/** Throws InvalidName unless `name` is 3–24 lowercase letters and digits. */
export function checkAccountName(name: string): void {
  if (!/^[a-z0-9]{3,24}$/.test(name)) {
    throw new CairnError(
      'InvalidName',
      `Cannot use account name "${name}": use 3 to 24 lowercase letters and digits`,
    )
  }
}

/** Throws InvalidName unless `name` is 3–63 lowercase letters, digits and single inner hyphens. */
export function checkContainerName(name: string): void {
  if (!/^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/.test(name)) {
    throw new CairnError(
      'InvalidName',
      `Cannot use container name "${name}": use 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit`,
    )
  }
}

/** Throws InvalidName unless `name` is 1–1024 characters without control characters. */
export function checkDiskName(name: string): void {
  if (name.length === 0 || name.length > 1024 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new CairnError(
      'InvalidName',
      `Cannot use disk name "${name}": use 1 to 1024 characters without control characters`,
    )
  }
}

/** `account/container/disk`, for messages. */
export const refText = (ref: DiskRef) => `${ref.account}/${ref.container}/${ref.disk}`
