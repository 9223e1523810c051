// One client thread of the blobapi benchmark: its own Azure SDK client, driving its share of the pages
// (every `threads`-th one, from `thread` on) with `inFlight` requests at a time. The main thread starts a
// phase by posting 'upload' or 'download' and gets back the bytes moved.
import { randomBytes } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'

/** What the main thread hands each client thread. */
export interface ClientThreadData {
  url: string
  account: string
  key: string
  container: string
  blob: string
  pageSize: number
  pages: number
  thread: number
  threads: number
  inFlight: number
}

const job = workerData as ClientThreadData
const port = parentPort
if (port === null) throw new Error('_blobapi-client.js runs as a worker thread of the blobapi benchmark')
const blob = new BlobServiceClient(job.url, new StorageSharedKeyCredential(job.account, job.key))
  .getContainerClient(job.container)
  .getPageBlobClient(job.blob)
const data = randomBytes(job.pageSize)
const mine: number[] = []
for (let i = job.thread; i < job.pages; i += job.threads) mine.push(i)

async function lanes(work: (page: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    for (let k = next++; k < mine.length; k = next++) await work(mine[k]!)
  }
  await Promise.all(Array.from({ length: job.inFlight }, lane))
}

port.on('message', (phase: 'upload' | 'download') => {
  let bytes = 0
  const work =
    phase === 'upload'
      ? async (i: number) => {
          await blob.uploadPages(data, i * job.pageSize, job.pageSize)
          bytes += job.pageSize
        }
      : async (i: number) => {
          const r = await blob.download(i * job.pageSize, job.pageSize)
          for await (const chunk of r.readableStreamBody!) bytes += (chunk as Buffer).length
        }
  lanes(work).then(
    () => port.postMessage({ bytes }),
    (err: unknown) => port.postMessage({ error: String(err) }),
  )
})
port.postMessage({ ready: true })
