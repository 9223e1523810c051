import { CairnError } from './cairn-error.js'

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
}

/** Parses a byte size such as `4096`, `512KiB`, `1GiB`, `8TiB` or `1.5GB` into bytes. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isSafeInteger(text) && text >= 0) return text
    throw new CairnError('InvalidSize', `Cannot read size ${text}: a size is a whole number of bytes`)
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) {
    throw new CairnError(
      'InvalidSize',
      `Cannot read size "${text}": use bytes or a unit such as 512KiB, 1GiB, 8TiB`,
    )
  }
  const bytes = Number(m[1]) * unit
  if (!Number.isSafeInteger(bytes)) {
    throw new CairnError('InvalidSize', `Cannot read size "${text}": it is not a whole number of bytes`)
  }
  return bytes
}

/** Formats bytes for people: `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = bytes
  let i = -1
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`
}

/** Formats a duration in milliseconds for people: `1.2 s`, `3 m 10 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`
  return `${Math.floor(m / 60)} h ${m % 60} m`
}
