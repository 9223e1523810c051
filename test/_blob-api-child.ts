// A blob API over a disk store in its own process, for the tests that count its page faults or kill it:
// node _blob-api-child.js DIR  →  prints the port; each line read from stdin is answered with the
// process's minor page faults so far; serves until stdin closes.
import { createInterface } from 'node:readline'
import { BlobApiServer } from '../src/blobapi/index.js'
import { LogDiskStore } from '../src/diskstore/index.js'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: _blob-api-child.js DIR')
const store = await LogDiskStore.open(dir)
const server = new BlobApiServer(store, { developmentAccount: true, limits: { idleTimeoutMs: 120_000 } })
process.stdout.write(`${await server.listen(0, '127.0.0.1')}\n`)
const lines = createInterface({ input: process.stdin })
lines.on('line', () => process.stdout.write(`${process.resourceUsage().minorPageFault}\n`))
lines.on('close', async () => {
  await server.close()
  await store.close()
  process.exit(0)
})
