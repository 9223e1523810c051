// Worker thread body: hashes, compresses, encrypts and opens chunks off the main thread.
import { read, readSync, write } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { ChunkDamage, type ChunkKeys, type ChunkKind, chunkId, openChunk, sealChunk } from './_chunk-codec.js'
import { ALIGN, alignedBuffer } from './_direct-write.js'
import { churnYoung, release } from './_memory.js'

interface Init {
  dataKey: Uint8Array | null
  idKey: Uint8Array | null
  level: number
}

const init = workerData as Init
const keys: ChunkKeys | null =
  init.dataKey && init.idKey ? { dataKey: Buffer.from(init.dataKey), idKey: Buffer.from(init.idKey) } : null

/** A request to the worker. */
export interface ChunkRequest {
  seq: number
  op: 'seal' | 'sealMany' | 'hash' | 'open' | 'readSeal' | 'restore'
  data: Uint8Array
  /** sealMany: the chunks and their kinds (`data` is then empty). */
  items?: Uint8Array[]
  kinds?: ChunkKind[]
  kind?: ChunkKind
  id?: Uint8Array
  rehash?: boolean
  /** readSeal: the file to read and the runs to read from it, sealed together as one chunk. */
  fd?: number
  starts?: number[]
  lengths?: number[]
  /** restore: the pack file (`fd`), where chunk `id`'s blob is in it, and the target to write it to. */
  position?: number
  length?: number
  out?: { fd: number; direct: number | null }
  /** restore: the chunk's extents (disk offset `starts[i]`, `lengths[i]` bytes from `offsets[i]`). */
  offsets?: number[]
}

/** Where readSeal reads runs to, reused (grown as needed): one chunk's worth. */
let scratch = Buffer.alloc(0)

/** Reads `length` bytes at `position` into `buf` at `at`; bytes past the end of the file read as zeros. */
function readFully(fd: number, buf: Buffer, at: number, length: number, position: number): void {
  let done = 0
  while (done < length) {
    const n = readSync(fd, buf, at + done, length - done, position + done)
    if (n === 0) {
      buf.fill(0, at + done, at + length)
      return
    }
    done += n
  }
}

const ZEROS = Buffer.alloc(1024 * 1024)

function allZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - o)
    if (!b.subarray(o, o + n).equals(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n))) return false
  }
  return true
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
const own = (b: Buffer): ArrayBuffer[] =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.byteLength >= 8192
    ? [b.buffer as ArrayBuffer]
    : []

// Restore: the worker reads a chunk's blob from its pack, opens it into page-aligned memory and writes
// its extents to the target itself, so chunks never cross threads. Reads and writes go through libuv's
// thread pool (asynchronous), so while one chunk waits for the device this thread opens the next.

const PLAIN = 1024 * 1024
/** Page-aligned plaintext buffers (PLAIN bytes) and blob buffers, reused across chunks. */
const spareAligned: Buffer[] = []
const spareBlobs: Buffer[] = []

const takeAligned = (n: number) => (n <= PLAIN ? (spareAligned.pop() ?? alignedBuffer(PLAIN)) : alignedBuffer(n))
const giveAligned = (b: Buffer) => {
  if (b.length === PLAIN && spareAligned.length < 8) spareAligned.push(b)
}
const takeBlob = (n: number) => {
  const b = spareBlobs.pop()
  return b && b.length >= n ? b : Buffer.allocUnsafeSlow(Math.max(n, PLAIN + 64 * 1024))
}
const giveBlob = (b: Buffer) => {
  if (spareBlobs.length < 8) spareBlobs.push(b)
}

function readAt(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  )
}

async function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    done += await new Promise<number>((resolve, reject) =>
      write(fd, data, done, data.length - done, position + done, (err, n) =>
        err ? reject(err) : resolve(n),
      ),
    )
  }
}

/** Reads, opens and writes one chunk; returns the bytes written. */
async function restoreChunk(m: ChunkRequest): Promise<number> {
  const length = m.length ?? 0
  const out = m.out!
  const blob = takeBlob(length)
  let slot: Buffer | undefined
  try {
    let got = 0
    while (got < length) {
      const n = await readAt(m.fd!, blob, got, length - got, m.position! + got)
      if (n === 0) break
      got += n
    }
    if (got !== length) throw new ChunkDamage(`its blob is truncated (${got} of ${length} bytes)`)
    // Reads trust an encrypted blob's GCM tag, as the main thread's reads do; verify re-hashes.
    const { plain } = openChunk(blob.subarray(0, length), asBuffer(m.id!), keys, {
      rehash: false,
      alloc: (n) => {
        slot = takeAligned(n)
        return slot.subarray(0, n)
      },
    })
    if (!slot) {
      // Stored uncompressed: the plaintext is the decrypted buffer or a view of the blob.
      slot = takeAligned(plain.length)
      plain.copy(slot)
      if (plain.buffer !== blob.buffer) release([plain])
    }
    const starts = m.starts ?? []
    const offsets = m.offsets ?? []
    const lengths = m.lengths ?? []
    let written = 0
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i]!
      const from = offsets[i]!
      const len = lengths[i]!
      // Whole aligned blocks go past the page cache; an unaligned extent or tail through the cache.
      const head = out.direct !== null && start % ALIGN === 0 && from % ALIGN === 0 ? len - (len % ALIGN) : 0
      if (head > 0) await writeAll(out.direct!, slot.subarray(from, from + head), start)
      if (head < len) await writeAll(out.fd, slot.subarray(from + head, from + len), start + head)
      written += len
    }
    return written
  } finally {
    giveBlob(blob)
    if (slot) giveAligned(slot)
  }
}

parentPort?.on('message', (m: ChunkRequest) => {
  if (m.op === 'restore') {
    restoreChunk(m).then(
      (written) => parentPort?.postMessage({ seq: m.seq, written }),
      (err: unknown) =>
        parentPort?.postMessage({
          seq: m.seq,
          error: err instanceof Error ? err.message : String(err),
          damage: err instanceof ChunkDamage,
        }),
    )
    return
  }
  try {
    const data = asBuffer(m.data)
    churnYoung(data.length)
    if (m.op === 'readSeal') {
      // Runs of the source, read here: the non-zero ones side by side in `scratch`, sealed as one chunk.
      const starts = m.starts ?? []
      const lengths = m.lengths ?? []
      const total = lengths.reduce((n, l) => n + l, 0)
      if (scratch.length < total) scratch = Buffer.allocUnsafeSlow(Math.max(total, 1024 * 1024))
      const kept: number[] = []
      let at = 0
      for (let i = 0; i < starts.length; i++) {
        const length = lengths[i]!
        readFully(m.fd!, scratch, at, length, starts[i]!)
        if (allZero(scratch.subarray(at, at + length))) continue
        kept.push(i)
        at += length
      }
      if (kept.length === 0) {
        parentPort?.postMessage({ seq: m.seq, kept })
        return
      }
      const { id, parts } = sealChunk(scratch.subarray(0, at), m.kind ?? 0, keys, init.level)
      // A part may be `scratch` itself (stored as is): it stays here, a copy goes.
      const out = parts.map((p) => (p.buffer !== scratch.buffer && own(p).length ? p : new Uint8Array(p)))
      parentPort?.postMessage(
        { seq: m.seq, id: new Uint8Array(id), parts: out, kept },
        out.flatMap((p) => own(p as Buffer)),
      )
    } else if (m.op === 'sealMany') {
      // Small chunks (changed 4 KiB runs) come in batches: one message each way for many of them.
      const items = m.items ?? []
      const sealed = items.map((d, i) => sealChunk(asBuffer(d), m.kinds?.[i] ?? 0, keys, init.level))
      const many = sealed.map(({ id, parts }) => ({
        id: new Uint8Array(id),
        parts: parts.map((p) => (own(p).length ? p : new Uint8Array(p))),
      }))
      parentPort?.postMessage(
        { seq: m.seq, many },
        many.flatMap((x) => x.parts.flatMap((p) => own(p as Buffer))),
      )
      // Inputs that did not move back out as parts are garbage now.
      release(items)
    } else if (m.op === 'hash') {
      parentPort?.postMessage({ seq: m.seq, id: new Uint8Array(chunkId(data, keys)) })
      release([data])
    } else if (m.op === 'seal') {
      const { id, parts } = sealChunk(data, m.kind ?? 0, keys, init.level)
      // Small parts may sit in Node's shared pool: send exact copies, never the pool itself.
      const out = parts.map((p) => (own(p).length ? p : new Uint8Array(p)))
      parentPort?.postMessage(
        { seq: m.seq, id: new Uint8Array(id), parts: out },
        out.flatMap((p) => own(p as Buffer)),
      )
      release([data])
    } else {
      const { plain, kind } = openChunk(data, asBuffer(m.id ?? new Uint8Array()), keys, {
        rehash: m.rehash !== false,
      })
      const out = own(plain).length ? plain : new Uint8Array(plain)
      parentPort?.postMessage({ seq: m.seq, plain: out, kind }, own(out as Buffer))
      release([data])
    }
  } catch (err) {
    parentPort?.postMessage({
      seq: m.seq,
      error: err instanceof Error ? err.message : String(err),
      damage: err instanceof ChunkDamage,
    })
  }
})
