import { CairnError } from '../util/index.js'
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from './schemas.js'

// Cursor paging of the lists the API answers. A cursor is the sort key of the last item of a page,
// encoded (base64url of a JSON array of strings) so that clients treat it as opaque. The next page
// holds the items whose key sorts after it: an item added or deleted meanwhile moves no other item
// from one page to another, and no item is answered twice.

/** One page of a list: the envelope of every list route. */
export interface ListPage<T> {
  items: T[]
  nextCursor?: string
}

/** A page request: `limit` items after `cursor`. */
export interface PageRequest {
  limit?: number | undefined
  cursor?: string | undefined
}

/** Encodes a sort key as an opaque cursor. */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

/** Decodes a cursor this service gave; anything else is refused with InvalidRequest naming `what`. */
export function decodeCursor(cursor: string, what: string): string[] {
  let key: unknown
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString())
  } catch {
    key = undefined
  }
  if (!Array.isArray(key) || key.length === 0 || !key.every((k) => typeof k === 'string')) {
    throw new CairnError(
      'InvalidRequest',
      `Cannot list ${what}: the cursor "${cursor.slice(0, 100)}" is not one this service gave`,
    )
  }
  return key as string[]
}

/** The page size a request asks for, within the bounds of every list. */
export function pageLimit(q: PageRequest): number {
  return Math.min(MAX_PAGE_LIMIT, Math.max(1, q.limit ?? DEFAULT_PAGE_LIMIT))
}

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i]
    const y = b[i]
    if (x === y) continue
    if (x === undefined) return -1
    if (y === undefined) return 1
    return x < y ? -1 : 1
  }
  return 0
}

/**
 * One page of `all`, ordered by `sortKey` (which must tell items apart: end it with a unique name or
 * id); `what` names the list in the error of a bad cursor.
 */
export function paginate<T>(
  all: readonly T[],
  sortKey: (item: T) => readonly string[],
  q: PageRequest,
  what: string,
): ListPage<T> {
  const keyed = all.map((item) => ({ item, key: sortKey(item) }))
  keyed.sort((a, b) => compareKeys(a.key, b.key))
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, what)
  const rest = after === undefined ? keyed : keyed.filter((k) => compareKeys(k.key, after) > 0)
  const limit = pageLimit(q)
  const items = rest.slice(0, limit)
  const last = items[items.length - 1]
  if (rest.length > limit && last)
    return { items: items.map((k) => k.item), nextCursor: encodeCursor(last.key) }
  return { items: items.map((k) => k.item) }
}

/**
 * Cursor paging over a store listing paged by marker (the disk store's Azure-style `marker` is the
 * first name of the next page): the cursor wraps the marker.
 */
export function markerPage<T>(
  q: PageRequest,
  what: string,
  list: (marker: string | undefined, maxResults: number) => { items: T[]; nextMarker?: string },
): ListPage<T> {
  const marker = q.cursor === undefined ? undefined : decodeCursor(q.cursor, what)[0]
  const listed = list(marker, pageLimit(q))
  return listed.nextMarker === undefined
    ? { items: listed.items }
    : { items: listed.items, nextCursor: encodeCursor([listed.nextMarker]) }
}
