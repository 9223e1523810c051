// How chunk blobs are read from packs: the chunks a restore or a backup needs together are grouped by
// pack and read with as few ranged reads as possible. On an object store each read is a request (a
// round trip, and a charge), so one ranged GET bringing a run of a pack's chunks replaces one per chunk.
import type { ChunkLocation } from './_chunk-index.js'

/** Bytes of unneeded blobs between two needed ones that a merged read still spans (read and dropped). */
export const READ_GAP = 512 * 1024
/** Longest merged read: bounds the memory one read holds (a restore has a few in flight). */
export const READ_SPAN = 32 * 1024 * 1024

/** One ranged read of a pack and the chunks it brings (indexes into the caller's list, offsets in the read). */
export interface PackRead {
  pack: string
  offset: number
  length: number
  chunks: { at: number; offset: number; length: number }[]
}

/**
 * Plans the reads of the blobs at `locs` (duplicates read once): per pack, blobs sorted by offset, a run
 * merged while the gap to the next blob is at most `gap` and the read stays within `span` bytes. Reads
 * come out in the order of their first chunk in `locs`, so a sequential restore reads ahead in order.
 */
export function planPackReads(
  locs: readonly ChunkLocation[],
  options: { gap?: number; span?: number } = {},
): PackRead[] {
  const gap = options.gap ?? READ_GAP
  const span = options.span ?? READ_SPAN
  const byPack = new Map<string, { at: number; loc: ChunkLocation }[]>()
  locs.forEach((loc, at) => {
    const list = byPack.get(loc.pack)
    if (list) list.push({ at, loc })
    else byPack.set(loc.pack, [{ at, loc }])
  })
  const reads: { first: number; read: PackRead }[] = []
  for (const [pack, list] of byPack) {
    list.sort((a, b) => a.loc.offset - b.loc.offset || a.at - b.at)
    let read: PackRead | undefined
    for (const { at, loc } of list) {
      const end = loc.offset + loc.length
      const fits =
        read !== undefined &&
        loc.offset <= read.offset + read.length + gap &&
        Math.max(end, read.offset + read.length) - read.offset <= span
      if (!read || !fits) {
        read = { pack, offset: loc.offset, length: loc.length, chunks: [] }
        reads.push({ first: at, read })
      }
      read.length = Math.max(read.length, end - read.offset)
      read.chunks.push({ at, offset: loc.offset - read.offset, length: loc.length })
      const entry = reads[reads.length - 1]!
      entry.first = Math.min(entry.first, at)
    }
  }
  return reads.sort((a, b) => a.first - b.first).map((r) => r.read)
}
