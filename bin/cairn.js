#!/usr/bin/env node
// The cairn command: runs the compiled CLI (build with `npm run build`).
import { main } from '../dist/src/cli/index.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    // main() reports every error itself; this is only reached if that reporting failed.
    process.stderr.write(`cairn: Internal: ${String(err?.message ?? err).split('\n')[0]}\n`)
    if (process.argv.includes('--debug')) process.stderr.write(`${err?.stack ?? err}\n`)
    process.exitCode = 1
  },
)
