import assert from 'node:assert/strict'
import { cairn } from './_service.js'

/** Runs `cairn ARGS --url URL`; `json()` parses its stdout. */
export function runner(url: string) {
  const run = (...args: string[]) => {
    const r = cairn([...args, '--url', url])
    return { ...r, json: () => JSON.parse(r.stdout) }
  }
  const ok = (...args: string[]) => {
    const r = run(...args)
    assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
    return r
  }
  return { run, ok }
}
