import { readFileSync } from 'node:fs'

/** The version of this Cairn, from package.json. */
export const VERSION: string = (() => {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      return JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')).version as string
    } catch {}
  }
  return '0.0.0'
})()
