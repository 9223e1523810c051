// Where the bytes of each write live: writeId → pieces (offset in the write, length, segment, offset
// in the segment). A write starts as one piece; compaction may move parts of it elsewhere.

/** One stored piece of a write. */
export interface Piece {
  /** Offset of the piece inside its write. */
  at: number
  length: number
  segment: number
  offset: number
}

/** The table of write locations. */
export class WriteTable {
  readonly #pieces = new Map<number, Piece[]>()

  get size(): number {
    return this.#pieces.size
  }

  /** Records a new write stored contiguously. */
  add(writeId: number, length: number, segment: number, offset: number): void {
    this.#pieces.set(writeId, [{ at: 0, length, segment, offset }])
  }

  has(writeId: number): boolean {
    return this.#pieces.has(writeId)
  }

  /** The pieces of a write, sorted by offset in the write. */
  pieces(writeId: number): readonly Piece[] | undefined {
    return this.#pieces.get(writeId)
  }

  /** Records that bytes `at..at+length` of a write now live at `segment`/`offset`. */
  relocate(writeId: number, at: number, length: number, segment: number, offset: number): void {
    const old = this.#pieces.get(writeId) ?? []
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
    this.#pieces.set(writeId, out)
  }

  /** Replaces every piece of a write (compaction keeps only what is live). */
  replace(writeId: number, pieces: Piece[]): void {
    if (pieces.length === 0) this.#pieces.delete(writeId)
    else this.#pieces.set(writeId, pieces)
  }

  delete(writeId: number): void {
    this.#pieces.delete(writeId)
  }

  /** Calls `visit` for the stored pieces covering bytes `at..at+length` of a write. */
  resolve(
    writeId: number,
    at: number,
    length: number,
    visit: (segment: number, offset: number, length: number, into: number) => void,
  ): boolean {
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

  entries(): IterableIterator<[number, Piece[]]> {
    return this.#pieces.entries()
  }
}
