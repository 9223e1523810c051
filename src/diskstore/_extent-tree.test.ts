import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type DiffKind,
  diffTrees,
  editTree,
  forEachExtent,
  mappedBytes,
  REGION_SIZE,
  type Root,
} from './_extent-tree.js'

const TiB = 1024 ** 4

function extents(root: Root, start = 0, end = 8 * TiB): number[][] {
  const out: number[][] = []
  forEachExtent(root, start, end, (s, e, w, at) => out.push([s, e, w, at]))
  return out
}

function diff(a: Root, b: Root, start = 0, end = 8 * TiB): [DiffKind, number, number][] {
  const out: [DiffKind, number, number][] = []
  diffTrees(a, b, start, end, (k, s, e) => {
    out.push([k, s, e])
    return false
  })
  return out
}

const write = (root: Root, start: number, end: number, writeId: number, owner = 1) =>
  editTree(root, { start, end, writeId, writeOffset: 0, owner })

const clear = (root: Root, start: number, end: number, owner = 1) =>
  editTree(root, { start, end, writeId: -1, writeOffset: 0, owner })

describe('extent tree', () => {
  it('maps a write and reports the mapped bytes it added', () => {
    const r = write(undefined, 4096, 8192, 7)
    assert.equal(r.delta, 4096)
    assert.deepEqual(extents(r.root), [[4096, 8192, 7, 0]])
  })

  it('splits a write across 1 MiB regions with the right offsets in the write', () => {
    const r = write(undefined, REGION_SIZE - 512, REGION_SIZE + 1024, 3)
    assert.deepEqual(extents(r.root), [
      [REGION_SIZE - 512, REGION_SIZE, 3, 0],
      [REGION_SIZE, REGION_SIZE + 1024, 3, 512],
    ])
  })

  it('an overwrite in the middle leaves the left and right pieces of the older write', () => {
    const a = write(undefined, 0, 8192, 1).root
    const b = write(a, 2048, 4096, 2)
    assert.equal(b.delta, 0)
    assert.deepEqual(extents(b.root), [
      [0, 2048, 1, 0],
      [2048, 4096, 2, 0],
      [4096, 8192, 1, 4096],
    ])
  })

  it('works at the end of an 8 TiB address space', () => {
    const end = 8 * TiB
    const r = write(undefined, end - 4096, end, 9)
    assert.deepEqual(extents(r.root, end - REGION_SIZE, end), [[end - 4096, end, 9, 0]])
    assert.equal(mappedBytes(r.root), 4096)
  })

  it('keeps an old root unchanged after an edit by another owner (a snapshot)', () => {
    const a = write(undefined, 0, 4096, 1, 1).root
    const b = write(a, 0, 2048, 2, 2).root
    assert.deepEqual(extents(a), [[0, 4096, 1, 0]])
    assert.deepEqual(extents(b), [
      [0, 2048, 2, 0],
      [2048, 4096, 1, 2048],
    ])
  })

  it('edits nodes in place for their owner', () => {
    const a = write(undefined, 0, 4096, 1, 5).root
    const b = write(a, 8192, 12288, 2, 5).root
    assert.equal(a, b)
  })

  it('prunes nodes that a clear leaves empty', () => {
    const a = write(undefined, 3 * TiB, 3 * TiB + 512, 1).root
    const r = clear(a, 0, 8 * TiB, 2)
    assert.equal(r.root, undefined)
    assert.equal(r.delta, -512)
  })

  it('diff reports changed and cleared ranges and skips the same write at the same place', () => {
    const base = write(write(undefined, 0, 8192, 1).root, TiB, TiB + 4096, 2).root
    let next = write(base, 1024, 2048, 3, 9).root
    next = clear(next, TiB, TiB + 1024, 9).root
    assert.deepEqual(diff(base, next), [
      ['changed', 1024, 2048],
      ['cleared', TiB, TiB + 1024],
    ])
    assert.deepEqual(diff(base, base), [])
    assert.deepEqual(diff(undefined, base), [
      ['changed', 0, 8192],
      ['changed', TiB, TiB + 4096],
    ])
    assert.deepEqual(diff(base, next, 0, 1536), [['changed', 1024, 1536]])
  })

  it('diff stops when asked', () => {
    let root: Root
    for (let i = 0; i < 10; i++)
      root = write(root, i * 2 * REGION_SIZE, i * 2 * REGION_SIZE + 512, i + 1).root
    let calls = 0
    diffTrees(undefined, root, 0, 8 * TiB, () => ++calls === 3)
    assert.equal(calls, 3)
  })
})
