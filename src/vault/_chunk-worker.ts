// Worker thread body: hashes, compresses, encrypts and opens chunks off the main thread.
import { read, readSync, write } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { hugeHeap } from '../util/index.js'
import { ChunkDamage, type ChunkKeys, type ChunkKind, chunkId, openChunk, sealChunk } from './_chunk-codec.js'
import { ALIGN, alignedBuffer } from './_direct-write.js'
import { churnYoung, release } from './_memory.js'
import { pageDigests } from './_page-digests.js'

/** The pool's keys, zstd level and huge-page heap (workerData). */
export interface ChunkWorkerInit {
  dataKey: Uint8Array | null
  idKey: Uint8Array | null
  level: number
  /** Bytes of this thread's heap to back with huge pages (0: none; the process keeps no freed heap). */
  hugeHeap: number
}

const init = workerData as ChunkWorkerInit
// This thread's buffers (sealed blobs, opened chunks) come from its own heap, fresh memory at first.
if (init.hugeHeap > 0) hugeHeap(init.hugeHeap)
const keys: ChunkKeys | null =
  init.dataKey && init.idKey ? { dataKey: Buffer.from(init.dataKey), idKey: Buffer.from(init.idKey) } : null

/** A request to the worker. */
export interface ChunkRequest {
  seq: number
  op: 'seal' | 'sealMany' | 'hash' | 'open' | 'readSeal' | 'restoreLeaf' | 'checkMany'
  data: Uint8Array
  /** sealMany: the chunks and their kinds (`data` is then empty). */
  items?: Uint8Array[]
  kinds?: ChunkKind[]
  kind?: ChunkKind
  id?: Uint8Array
  /** checkMany: the ids of the blobs at `starts`/`lengths` of `data`. */
  ids?: Uint8Array[]
  rehash?: boolean
  /** readSeal: the file to read and the runs to read from it, sealed together as one chunk. */
  fd?: number
  starts?: number[]
  lengths?: number[]
  /**
   * restoreLeaf: the leaf's chunks (where each blob is: open pack file, offset, length; or the blob
   * itself, fetched by the main thread from an object store), the target.
   */
  chunks?: { id: Uint8Array; fd: number; position: number; length: number; blob?: Uint8Array }[]
  out?: { fd: number; direct: number | null }
  /**
   * restoreLeaf: the extents, sorted: `lengths[i]` bytes at disk offset `starts[i]` are bytes
   * `offsets[i]…` of chunk `which[i]`.
   */
  which?: number[]
  offsets?: number[]
  /** restoreLeaf: the given blobs share memory the caller wants back (moved back in the answer). */
  giveBack?: boolean
  /** hash, seal: the digest key; answer the digests of the data's 4 KiB pages under it too (see _page-digests.ts). */
  pagesKey?: Uint8Array
  /** hash: the data was moved here; move it back with the answer. */
  back?: boolean
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
  b.byteOffset === 0 &&
  b.byteLength === b.buffer.byteLength &&
  b.byteLength >= 8192 &&
  !(b.buffer instanceof SharedArrayBuffer)
    ? [b.buffer as ArrayBuffer]
    : []

// Restore: a worker restores a whole leaf (16 MiB of disk): it reads the leaf's chunks from their packs,
// opens them into page-aligned memory, puts the disk's bytes together one window (1 MiB of disk) at a
// time and writes each window's covered runs to the target itself. Chunks never cross threads, and a
// window whose bytes come from several chunks (a full backup's chunk with an incremental's pages in it)
// is one write, not one per piece: each write into a sparse file waits for the device on its own.
// Reads and writes go through libuv's thread pool, so this thread opens chunks while they wait.

/** Bytes of disk put together and written at once. */
const WINDOW = 1024 * 1024
/** Window writes in flight per leaf. */
const WRITES_AHEAD = 3
/** Page-aligned buffers of WINDOW bytes, reused. */
const spareAligned: Buffer[] = []

const takeAligned = (n: number) =>
  n <= WINDOW ? (spareAligned.pop() ?? alignedBuffer(WINDOW)) : alignedBuffer(n)
const giveAligned = (b: Buffer) => {
  if (b.length === WINDOW && spareAligned.length < 16) spareAligned.push(b)
}

/** Blob buffers, reused: fresh memory for every chunk cost a page fault per page. */
const spareBlobs: Buffer[] = []
const takeBlob = (n: number) => {
  const b = spareBlobs.pop()
  if (b && b.length >= n) return b
  if (b) release([b])
  return Buffer.allocUnsafeSlow(Math.max(n, WINDOW + 64 * 1024))
}
const giveBlob = (b: Buffer) => {
  if (spareBlobs.length < 8) spareBlobs.push(b)
  else release([b])
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

/**
 * Runs shorter than this are written through the page cache: a direct write into a hole of a sparse file
 * waits for the device while holding the file's lock (so they take turns), and an incremental's pages
 * that landed in the base's holes are thousands of isolated 4 KiB runs (measured: 2,600 of them cost
 * ~0.6 s of a 2 GiB restore direct; through the cache, the writeback merges them).
 */
const SMALL_RUN = 64 * 1024

/** Writes `data` at disk offset `start`: whole aligned blocks directly, unaligned edges and short runs through the cache. */
async function writeRun(out: { fd: number; direct: number | null }, data: Buffer, start: number) {
  const head =
    out.direct === null || data.length < SMALL_RUN
      ? data.length
      : Math.min(data.length, (ALIGN - (start % ALIGN)) % ALIGN)
  const body = out.direct === null ? 0 : Math.floor((data.length - head) / ALIGN) * ALIGN
  if (head > 0) await writeAll(out.fd, data.subarray(0, head), start)
  if (body > 0) await writeAll(out.direct!, data.subarray(head, head + body), start + head)
  if (head + body < data.length) await writeAll(out.fd, data.subarray(head + body), start + head + body)
}

/** Reads and opens chunk `i` of a leaf request into aligned memory. */
async function readOpen(m: ChunkRequest, i: number): Promise<Buffer> {
  const c = m.chunks![i]!
  const given = c.blob ? asBuffer(c.blob) : undefined
  const blob = given ?? takeBlob(c.length)
  let slot: Buffer | undefined
  try {
    let got = given ? given.length : 0
    while (!given && got < c.length) {
      const n = await readAt(c.fd, blob, got, c.length - got, c.position + got)
      if (n === 0) break
      got += n
    }
    if (got !== c.length) throw new ChunkDamage(`its blob is truncated (${got} of ${c.length} bytes)`)
    // Reads trust an encrypted blob's GCM tag, as the main thread's reads do; verify re-hashes.
    const { plain } = openChunk(blob.subarray(0, c.length), asBuffer(c.id), keys, {
      rehash: false,
      alloc: (n) => {
        slot = takeAligned(n)
        return slot.subarray(0, n)
      },
    })
    if (slot) return slot
    // Stored uncompressed: the plaintext is the decrypted buffer or the blob itself.
    const aligned = takeAligned(plain.length)
    plain.copy(aligned)
    if (plain.buffer !== blob.buffer) release([plain])
    return aligned
  } catch (err) {
    if (slot) giveAligned(slot)
    if (err instanceof ChunkDamage) err.chunk = i
    throw err
  } finally {
    if (!given) giveBlob(blob)
    else if (!m.giveBack) release([given])
  }
}

/** Restores one leaf; returns the bytes written. */
async function restoreLeaf(m: ChunkRequest): Promise<number> {
  const out = m.out!
  const starts = m.starts ?? []
  const lengths = m.lengths ?? []
  const offsets = m.offsets ?? []
  const which = m.which ?? []
  // The extents cut at window boundaries, grouped by window.
  const windows: { at: number; pieces: { start: number; length: number; from: number; chunk: number }[] }[] =
    []
  for (let i = 0; i < starts.length; i++) {
    let start = starts[i]!
    let from = offsets[i]!
    const end = start + lengths[i]!
    while (start < end) {
      const at = start - (start % WINDOW)
      const n = Math.min(end, at + WINDOW) - start
      let w = windows[windows.length - 1]
      if (!w || w.at !== at) {
        w = { at, pieces: [] }
        windows.push(w)
      }
      w.pieces.push({ start, length: n, from, chunk: which[i]! })
      start += n
      from += n
    }
  }
  const lastUse = new Map<number, number>()
  windows.forEach((w, k) => {
    for (const p of w.pieces) lastUse.set(p.chunk, k)
  })
  const opened = new Map<number, Promise<Buffer>>()
  const plainOf = (i: number) => {
    let p = opened.get(i)
    if (!p) {
      p = readOpen(m, i)
      p.catch(() => {})
      opened.set(i, p)
    }
    return p
  }
  const writes: Promise<void>[] = []
  let written = 0
  try {
    for (let k = 0; k < windows.length; k++) {
      const w = windows[k]!
      // The next window's chunks are read while this one is put together.
      for (const p of windows[k + 1]?.pieces ?? []) plainOf(p.chunk)
      const buf = takeAligned(WINDOW)
      let runStart = -1
      let runEnd = -1
      const runs: { start: number; end: number }[] = []
      for (const p of w.pieces) {
        const plain = await plainOf(p.chunk)
        plain.copy(buf, p.start - w.at, p.from, p.from + p.length)
        if (p.start === runEnd) runEnd += p.length
        else {
          if (runStart >= 0) runs.push({ start: runStart, end: runEnd })
          runStart = p.start
          runEnd = p.start + p.length
        }
        written += p.length
      }
      if (runStart >= 0) runs.push({ start: runStart, end: runEnd })
      for (const p of w.pieces) {
        if (lastUse.get(p.chunk) === k && opened.has(p.chunk)) {
          giveAligned(await opened.get(p.chunk)!)
          opened.delete(p.chunk)
        }
      }
      const done = (async () => {
        try {
          for (const r of runs) await writeRun(out, buf.subarray(r.start - w.at, r.end - w.at), r.start)
        } finally {
          giveAligned(buf)
        }
      })()
      done.catch(() => {})
      writes.push(done)
      if (writes.length >= WRITES_AHEAD) await writes.shift()
    }
    await Promise.all(writes)
    return written
  } finally {
    await Promise.allSettled(writes)
    for (const p of opened.values()) p.then(giveAligned, () => {})
  }
}

parentPort?.on('message', (m: ChunkRequest) => {
  if (m.op === 'restoreLeaf') {
    restoreLeaf(m).then(
      (written) => {
        // The blobs' memory goes back to the caller, which reads the next packs into it.
        const spent = m.giveBack
          ? [...new Set((m.chunks ?? []).flatMap((c) => (c.blob ? [c.blob.buffer as ArrayBuffer] : [])))]
          : []
        parentPort?.postMessage({ seq: m.seq, written, ...(m.giveBack ? { spent } : {}) }, spent)
      },
      (err: unknown) =>
        parentPort?.postMessage({
          seq: m.seq,
          error: err instanceof Error ? err.message : String(err),
          damage: err instanceof ChunkDamage,
          ...(err instanceof ChunkDamage && err.chunk !== undefined ? { chunk: err.chunk } : {}),
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
    } else if (m.op === 'checkMany') {
      // Blobs side by side in one buffer (a replication batch): each opened and re-hashed, the
      // plaintext dropped; the buffer goes back as it came.
      const starts = m.starts ?? []
      const lengths = m.lengths ?? []
      for (let i = 0; i < starts.length; i++) {
        try {
          const blob = data.subarray(starts[i]!, starts[i]! + lengths[i]!)
          const { plain } = openChunk(blob, asBuffer(m.ids?.[i] ?? new Uint8Array()), keys, { rehash: true })
          if (plain.buffer !== data.buffer) release([plain])
        } catch (err) {
          if (err instanceof ChunkDamage) err.chunk = i
          throw err
        }
      }
      parentPort?.postMessage({ seq: m.seq, plain: m.data }, own(data))
    } else if (m.op === 'hash') {
      const pages = m.pagesKey ? new Uint8Array(pageDigests(data, m.pagesKey)) : undefined
      const id = new Uint8Array(chunkId(data, keys))
      if (m.back) parentPort?.postMessage({ seq: m.seq, id, pages, data }, [data.buffer as ArrayBuffer])
      else {
        parentPort?.postMessage({ seq: m.seq, id, pages })
        release([data])
      }
    } else if (m.op === 'seal') {
      const pages = m.pagesKey ? new Uint8Array(pageDigests(data, m.pagesKey)) : undefined
      const { id, parts } = sealChunk(data, m.kind ?? 0, keys, init.level)
      // Small parts may sit in Node's shared pool: send exact copies, never the pool itself.
      const out = parts.map((p) => (own(p).length ? p : new Uint8Array(p)))
      parentPort?.postMessage(
        { seq: m.seq, id: new Uint8Array(id), parts: out, pages },
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
      ...(err instanceof ChunkDamage && err.chunk !== undefined ? { chunk: err.chunk } : {}),
    })
  }
})
