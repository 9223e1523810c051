// The worker thread of crc64Of (_crc64-offload.ts): CRC64s of bodies in shared memory, read in place.
import { parentPort } from 'node:worker_threads'
import { crc64 } from './_crc64.js'

interface Job {
  seq: number
  memory: SharedArrayBuffer
  offset: number
  length: number
}

parentPort?.on('message', (job: Job) => {
  const crc = crc64(new Uint8Array(job.memory, job.offset, job.length))
  parentPort?.postMessage({ seq: job.seq, crc: crc.toString('base64') })
})
