// Checkpoints of the disk store: the whole in-memory state in one file, `checkpoint-000042.ckpt`,
// written to a temporary name, fsynced, renamed and the folder fsynced.
//
// File layout (little-endian):
//   0  u32 magic 0x43435243 ("CRCC")
//   4  u32 format version (1)
//   8  u64 body length B (as a 48-bit number in 8 bytes)
//  16  u32 crc32 of the body
//  20  u32 crc32 of bytes 0..19
//  24  body (B bytes):
//        u32 J, then J bytes of UTF-8 JSON: the namespace (accounts, containers, disks, snapshots with
//          their properties; tree roots as node numbers, -1 for an empty tree), the log position
//          replay starts from, and the counters
//        u32 W, then W write-table entries: f64 writeId, u32 piece count P, then P pieces of
//          u32 offset in the write, u32 length (0xFFFFFFFF: to the end of the write), u32 segment,
//          f64 offset in the segment
//        u32 N, then N tree nodes, children before parents, numbered from 0 in that order:
//          inner: u8 1, u8 0, u16 C, then C × (u32 child index 0..255, u32 node number)
//          leaf:  u8 2, u8 0, u16 0, u32 E, then E × 4 f64 (start, end, writeId, offset in the write)

import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { CairnError } from '../util/index.js'
import { type Inner, isLeaf, type Leaf, type Node, type Root } from './_extent-tree.js'
import { syncDir } from './_segment-log.js'
import type { WriteTable } from './_write-table.js'

const MAGIC = 0x43435243
const VERSION = 1
const HEADER = 24
const CHUNK = 1024 * 1024
/** A piece length meaning "to the end of the write". */
const TO_END = 0xffffffff

const checkpointName = (n: number) => `checkpoint-${String(n).padStart(6, '0')}.ckpt`

/** Numbers of the checkpoint files in `dir`, newest first. */
export function listCheckpoints(dir: string): number[] {
  return readdirSync(dir)
    .map((f) => /^checkpoint-(\d{6,})\.ckpt$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a)
}

/** Numbers the distinct nodes of several roots (shared nodes once) and encodes them. */
export class NodeWriter {
  readonly #ids = new Map<Node, number>()
  readonly #parts: Buffer[] = []
  #chunk = Buffer.allocUnsafe(CHUNK)
  #used = 0

  /** The node number of `root` (-1 for an empty tree), encoding it and its children if new. */
  id(root: Root): number {
    if (root === undefined) return -1
    return this.#visit(root)
  }

  /** Room for `n` more bytes in the current chunk. */
  #room(n: number): void {
    if (this.#used + n <= this.#chunk.length) return
    if (this.#used > 0) this.#parts.push(this.#chunk.subarray(0, this.#used))
    this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK, n))
    this.#used = 0
  }

  #visit(node: Node): number {
    const known = this.#ids.get(node)
    if (known !== undefined) return known
    if (isLeaf(node)) {
      this.#room(8 + node.length * 8)
      const c = this.#chunk
      let k = this.#used
      c.writeUInt32LE(2, k)
      c.writeUInt32LE(node.length / 4, k + 4)
      k += 8
      for (let j = 0; j < node.length; j++, k += 8) c.writeDoubleLE(node[j]!, k)
      this.#used = k
    } else {
      const kids: number[] = []
      for (let i = 0; i < node.kids.length; i++) {
        const child = node.kids[i]
        if (child !== undefined) kids.push(i, this.#visit(child))
      }
      this.#room(4 + kids.length * 4)
      const c = this.#chunk
      let k = this.#used
      c.writeUInt8(1, k)
      c.writeUInt8(0, k + 1)
      c.writeUInt16LE(kids.length / 2, k + 2)
      k += 4
      for (const v of kids) {
        c.writeUInt32LE(v, k)
        k += 4
      }
      this.#used = k
    }
    const id = this.#ids.size
    this.#ids.set(node, id)
    return id
  }

  get count(): number {
    return this.#ids.size
  }

  parts(): Buffer[] {
    return this.#used > 0 ? [...this.#parts, this.#chunk.subarray(0, this.#used)] : this.#parts
  }
}

function encodeWrites(writes: WriteTable): Buffer {
  let size = 4
  for (const [, pieces] of writes.entries()) size += 12 + pieces.length * 20
  const buf = Buffer.alloc(size)
  buf.writeUInt32LE(writes.size, 0)
  let k = 4
  for (const [id, pieces] of writes.entries()) {
    buf.writeDoubleLE(id, k)
    buf.writeUInt32LE(pieces.length, k + 8)
    k += 12
    for (const p of pieces) {
      buf.writeUInt32LE(p.at, k)
      buf.writeUInt32LE(p.length === Number.POSITIVE_INFINITY ? TO_END : p.length, k + 4)
      buf.writeUInt32LE(p.segment, k + 8)
      buf.writeDoubleLE(p.offset, k + 12)
      k += 20
    }
  }
  return buf
}

/** Writes checkpoint `n` durably: temp file, fsync, rename, folder fsync. Returns its size. */
export function writeCheckpoint(
  dir: string,
  n: number,
  json: unknown,
  writes: WriteTable,
  nodes: NodeWriter,
): number {
  const jsonBuf = Buffer.from(JSON.stringify(json), 'utf8')
  const jsonLen = Buffer.alloc(4)
  jsonLen.writeUInt32LE(jsonBuf.length)
  const nodeCount = Buffer.alloc(4)
  nodeCount.writeUInt32LE(nodes.count)
  const body = [jsonLen, jsonBuf, encodeWrites(writes), nodeCount, ...nodes.parts()]
  let bodyLength = 0
  let crc = 0
  for (const b of body) {
    bodyLength += b.length
    crc = crc32(b, crc)
  }
  const head = Buffer.alloc(HEADER)
  head.writeUInt32LE(MAGIC, 0)
  head.writeUInt32LE(VERSION, 4)
  head.writeUIntLE(bodyLength, 8, 6)
  head.writeUInt32LE(crc, 16)
  head.writeUInt32LE(crc32(head.subarray(0, 20)), 20)
  const tmp = join(dir, `${checkpointName(n)}.tmp`)
  try {
    writeFile(tmp, [head, ...body])
  } catch (err) {
    // A full disk: the partial file goes at once (its space is what the next try needs).
    try {
      unlinkSync(tmp)
    } catch {}
    throw err
  }
  renameSync(tmp, join(dir, checkpointName(n)))
  syncDir(dir)
  return HEADER + bodyLength
}

/** Writes `all` to a new file `path` and fsyncs it. */
function writeFile(path: string, all: Buffer[]): void {
  const fd = openSync(path, 'w')
  try {
    // writev takes at most IOV_MAX buffers at a time; finish short writes piece by piece.
    for (let i = 0; i < all.length; i += 512) {
      const chunk = all.slice(i, i + 512)
      let want = 0
      for (const b of chunk) want += b.length
      let done = writevSync(fd, chunk)
      if (done < want) {
        const rest = Buffer.concat(chunk)
        while (done < want) done += writeSync(fd, rest, done, want - done)
      }
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** What a checkpoint holds. */
export interface CheckpointData {
  json: unknown
  writes: [number, { at: number; length: number; segment: number; offset: number }[]][]
  nodes: Node[]
}

/** Reads and checks checkpoint `n`; throws StoreCorrupt when it is damaged. */
export function readCheckpoint(dir: string, n: number): CheckpointData {
  const name = checkpointName(n)
  const buf = readFileSync(join(dir, name))
  const bad = (why: string) =>
    new CairnError('StoreCorrupt', `Cannot read disk store checkpoint ${name}: ${why}`)
  if (buf.length < HEADER) throw bad('it is shorter than its header')
  if (buf.readUInt32LE(0) !== MAGIC) throw bad('its magic number is wrong')
  if (buf.readUInt32LE(20) !== crc32(buf.subarray(0, 20))) throw bad('its header checksum is wrong')
  if (buf.readUInt32LE(4) !== VERSION) throw bad(`format version ${buf.readUInt32LE(4)} is unknown`)
  const bodyLength = buf.readUIntLE(8, 6)
  if (buf.length !== HEADER + bodyLength) throw bad('its length does not match its header')
  const body = buf.subarray(HEADER)
  if (crc32(body) !== buf.readUInt32LE(16)) throw bad('its body checksum is wrong')
  let k = 0
  const jsonLen = body.readUInt32LE(k)
  k += 4
  const json = JSON.parse(body.subarray(k, k + jsonLen).toString('utf8')) as unknown
  k += jsonLen
  const writeCount = body.readUInt32LE(k)
  k += 4
  const writes: CheckpointData['writes'] = []
  for (let i = 0; i < writeCount; i++) {
    const id = body.readDoubleLE(k)
    const pc = body.readUInt32LE(k + 8)
    k += 12
    const pieces = []
    for (let j = 0; j < pc; j++) {
      pieces.push({
        at: body.readUInt32LE(k),
        length: body.readUInt32LE(k + 4) === TO_END ? Number.POSITIVE_INFINITY : body.readUInt32LE(k + 4),
        segment: body.readUInt32LE(k + 8),
        offset: body.readDoubleLE(k + 12),
      })
      k += 20
    }
    writes.push([id, pieces])
  }
  const nodeCount = body.readUInt32LE(k)
  k += 4
  const nodes: Node[] = []
  for (let i = 0; i < nodeCount; i++) {
    const type = body[k]
    if (type === 2) {
      const n4 = body.readUInt32LE(k + 4) * 4
      k += 8
      if (k + n4 * 8 > body.length) throw bad(`node ${i} runs past the end`)
      const leaf: Leaf = new Float64Array(n4)
      for (let j = 0; j < n4; j++, k += 8) leaf[j] = body.readDoubleLE(k)
      nodes.push(leaf)
    } else if (type === 1) {
      const c = body.readUInt16LE(k + 2)
      k += 4
      const inner: Inner = { kids: new Array<Node | undefined>(256), count: c, owner: 0 }
      for (let j = 0; j < c; j++) {
        const idx = body.readUInt32LE(k)
        const child = nodes[body.readUInt32LE(k + 4)]
        if (child === undefined || idx > 255) throw bad(`node ${i} refers to a missing child`)
        inner.kids[idx] = child
        k += 8
      }
      nodes.push(inner)
    } else {
      throw bad(`node ${i} has unknown type ${type}`)
    }
  }
  if (k !== body.length) throw bad('it has trailing bytes')
  return { json, writes, nodes }
}

/** Removes checkpoint files older than the newest `keep` and leftover temp files. */
export function pruneCheckpoints(dir: string, keep: number): void {
  const all = listCheckpoints(dir)
  for (const n of all.slice(keep)) unlinkSync(join(dir, checkpointName(n)))
  for (const f of readdirSync(dir)) if (f.endsWith('.ckpt.tmp')) unlinkSync(join(dir, f))
}
