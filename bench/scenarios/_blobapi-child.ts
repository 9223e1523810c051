// A Cairn blob API in its own process for the blobapi benchmark (as Azurite runs in its own):
// node _blobapi-child.js DIR  →  prints the port, serves until stdin closes.
import { BlobApiServer } from '../../src/blobapi/index.js'
import { LogDiskStore } from '../../src/diskstore/index.js'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: _blobapi-child.js DIR')
const store = await LogDiskStore.open(dir)
const server = new BlobApiServer(store, { developmentAccount: true })
const port = await server.listen(0, '127.0.0.1')
process.stdout.write(`${port}\n`)
process.stdin.resume()
process.stdin.on('end', async () => {
  await server.close()
  await store.close()
  process.exit(0)
})
