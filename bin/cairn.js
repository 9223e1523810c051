#!/usr/bin/env node
// The cairn command: runs the compiled CLI (build with `npm run build`).
let cli
try {
  cli = await import('../dist/src/cli/index.js')
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/src/cli/index.js'))
    throw err
  process.stderr.write(
    'cairn: NotBuilt: the CLI is not compiled yet: run `npm run build` (or `npm start`) first\n',
  )
  process.exit(1)
}

cli.main(process.argv.slice(2)).then(
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
