// Where the bytes of each write live: writeId → pieces (offset in the write, length, segment, offset
// in the segment). A write starts as one piece holding all of it, kept packed in one number
// (segment × 2^32 + offset) to save memory; compaction may move parts of it, which makes a piece list.

/** One stored piece of a write; `length` is Infinity for "to the end of the write". */
export interface Piece {
  /** Offset of the piece inside its write. */
  at: number
  length: number
  segment: number
  offset: number
}

const SEGMENT_UNIT = 2 ** 32

/** The table of write locations. */
export class WriteTable {
  /** Writes stored whole in one place: segment × 2^32 + offset of their first byte. */
  readonly #whole = new Map<number, number>()
  readonly #pieces = new Map<number, Piece[]>()

  get size(): number {
    return this.#whole.size + this.#pieces.size
  }

  /** Records a new write stored contiguously at `segment`/`offset`. */
  add(writeId: number, segment: number, offset: number): void {
    this.#pieces.delete(writeId)
    this.#whole.set(writeId, segment * SEGMENT_UNIT + offset)
  }

  /** The pieces of a write, sorted by offset in the write. */
  pieces(writeId: number): readonly Piece[] | undefined {
    const packed = this.#whole.get(writeId)
    if (packed !== undefined) return [unpack(packed)]
    return this.#pieces.get(writeId)
  }

  /** Records that bytes `at..at+length` of a write now live at `segment`/`offset`. */
  relocate(writeId: number, at: number, length: number, segment: number, offset: number): void {
    const old = this.pieces(writeId) ?? []
    const end = at + length
    const out: Piece[] = []
    for (const p of old) {
      const pe = p.at + p.length
      if (pe <= at || p.at >= end) {
        out.push(p)
        continue
      }
      if (p.at < at) out.push({ at: p.at, length: at - p.at, segment: p.segment, offset: p.offset })
      if (pe > end) {
        out.push({ at: end, length: pe - end, segment: p.segment, offset: p.offset + (end - p.at) })
      }
    }
    out.push({ at, length, segment, offset })
    out.sort((a, b) => a.at - b.at)
    this.replace(writeId, out)
  }

  /** Replaces every piece of a write (compaction keeps only what is live). */
  replace(writeId: number, pieces: Piece[]): void {
    this.#whole.delete(writeId)
    this.#pieces.delete(writeId)
    const only = pieces[0]
    if (pieces.length === 1 && only!.at === 0 && only!.length === Number.POSITIVE_INFINITY) {
      this.#whole.set(writeId, only!.segment * SEGMENT_UNIT + only!.offset)
    } else if (pieces.length > 0) this.#pieces.set(writeId, pieces)
  }

  /** Forgets every write (the store reloads its state). */
  clear(): void {
    this.#whole.clear()
    this.#pieces.clear()
  }

  delete(writeId: number): void {
    this.#whole.delete(writeId)
    this.#pieces.delete(writeId)
  }

  /** Calls `visit` for the stored pieces covering bytes `at..at+length` of a write. */
  resolve(
    writeId: number,
    at: number,
    length: number,
    visit: (segment: number, offset: number, length: number, into: number) => void,
  ): boolean {
    const packed = this.#whole.get(writeId)
    if (packed !== undefined) {
      const segment = Math.floor(packed / SEGMENT_UNIT)
      visit(segment, packed - segment * SEGMENT_UNIT + at, length, 0)
      return true
    }
    const pieces = this.#pieces.get(writeId)
    if (pieces === undefined) return false
    const end = at + length
    let covered = 0
    for (const p of pieces) {
      const s = Math.max(p.at, at)
      const e = Math.min(p.at + p.length, end)
      if (s >= e) continue
      visit(p.segment, p.offset + (s - p.at), e - s, s - at)
      covered += e - s
    }
    return covered === length
  }

  /** Every write id with its pieces. */
  *entries(): IterableIterator<[number, Piece[]]> {
    for (const [id, packed] of this.#whole) yield [id, [unpack(packed)]]
    yield* this.#pieces.entries()
  }

  /** Every write id. */
  ids(): number[] {
    return [...this.#whole.keys(), ...this.#pieces.keys()]
  }
}

function unpack(packed: number): Piece {
  const segment = Math.floor(packed / SEGMENT_UNIT)
  return { at: 0, length: Number.POSITIVE_INFINITY, segment, offset: packed - segment * SEGMENT_UNIT }
}
