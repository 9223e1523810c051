import { CairnError } from '../util/index.js'

/**
 * The one way a disk of a VM is named in recovery points, restores, the API and the CLI: `os` for the
 * OS disk, `lun<N>` for the data disk at LUN N (`lun0`, `lun12`). The vault names a VM point's disks
 * the same way.
 */
export type DiskLabel = 'os' | `lun${number}`

/** The label of the OS disk (`'os'`) or of the data disk at a LUN. */
export function diskLabel(lun: number | 'os'): DiskLabel {
  return lun === 'os' ? 'os' : `lun${lun}`
}

/**
 * Reads a disk label: `os`, `lun<N>`, and (the older form, still accepted) a bare LUN number `N` or
 * `"N"`. Answers `'os'` or the LUN; throws InvalidRequest naming `what` otherwise.
 */
export function parseDiskLabel(value: unknown, what = 'disk'): number | 'os' {
  if (value === 'os') return 'os'
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 63) return value
  if (typeof value === 'string') {
    const m = /^(?:lun)?(\d{1,2})$/i.exec(value.trim())
    if (m && Number(m[1]) <= 63) return Number(m[1])
    if (value.trim().toLowerCase() === 'os') return 'os'
  }
  throw new CairnError(
    'InvalidRequest',
    `Cannot read ${what} ${JSON.stringify(value)}: name a disk "os" or "lun<N>" (LUN 0–63), e.g. lun0`,
  )
}
