import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { decodeCursor, encodeCursor, markerPage, paginate } from './_page.js'

const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `n${String(i).padStart(3, '0')}` }))

/** Every page of `all` by `limit`, following the cursors. */
function walk<T>(all: T[], key: (t: T) => string[], limit: number): T[][] {
  const pages: T[][] = []
  let cursor: string | undefined
  do {
    const page = paginate(all, key, { limit, cursor }, 'things')
    pages.push(page.items)
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return pages
}

describe('paginate', () => {
  it('pages a list by limit in sort-key order and ends without a cursor', () => {
    const all = names(7).reverse()
    const pages = walk(all, (t) => [t.name], 3)
    assert.deepEqual(
      pages.map((p) => p.length),
      [3, 3, 1],
    )
    assert.deepEqual(
      pages.flat().map((t) => t.name),
      names(7).map((t) => t.name),
    )
  })

  it('answers 100 items by default and at most 1000', () => {
    const all = names(1200)
    assert.equal(paginate(all, (t) => [t.name], {}, 'things').items.length, 100)
    assert.equal(paginate(all, (t) => [t.name], { limit: 5000 }, 'things').items.length, 1000)
  })

  it('continues after the cursor even when the item it names is gone, and breaks ties by the later keys', () => {
    const points = [
      { at: '2026-01-01', id: 'b' },
      { at: '2026-01-01', id: 'a' },
      { at: '2026-01-02', id: 'a' },
    ]
    const first = paginate(points, (p) => [p.at, p.id], { limit: 1 }, 'points')
    assert.deepEqual(first.items, [{ at: '2026-01-01', id: 'a' }])
    const rest = paginate(
      points.slice(0, 1).concat(points.slice(2)),
      (p) => [p.at, p.id],
      {
        limit: 5,
        cursor: first.nextCursor,
      },
      'points',
    )
    assert.deepEqual(rest.items, [
      { at: '2026-01-01', id: 'b' },
      { at: '2026-01-02', id: 'a' },
    ])
  })

  it('refuses a cursor it did not give with InvalidRequest naming the list', () => {
    for (const bad of [
      '',
      'abc',
      encodeCursor([]),
      Buffer.from('{"a":1}').toString('base64url'),
      Buffer.from('[1]').toString('base64url'),
    ]) {
      assert.throws(
        () => paginate(names(3), (t) => [t.name], { cursor: bad }, 'things'),
        (e: unknown) =>
          e instanceof CairnError && e.code === 'InvalidRequest' && /Cannot list things/.test(e.message),
        JSON.stringify(bad),
      )
    }
    assert.deepEqual(decodeCursor(encodeCursor(['x', 'y']), 'things'), ['x', 'y'])
  })

  it('wraps a store marker as an opaque cursor and unwraps it for the next page', () => {
    const seen: (string | undefined)[] = []
    const list = (marker: string | undefined, max: number) => {
      seen.push(marker)
      return marker === undefined ? { items: [1, 2].slice(0, max), nextMarker: 'm3' } : { items: [3] }
    }
    const first = markerPage({ limit: 2 }, 'disks', list)
    assert.ok(first.nextCursor && first.nextCursor !== 'm3', 'the marker is not shown as is')
    const second = markerPage({ cursor: first.nextCursor }, 'disks', list)
    assert.deepEqual(second, { items: [3] })
    assert.deepEqual(seen, [undefined, 'm3'])
  })
})
