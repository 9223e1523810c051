#!/usr/bin/env node
// The cairn command: runs the compiled CLI (build with `npm run build`).
import { main } from '../dist/src/cli/index.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(err)
    process.exitCode = 1
  },
)
