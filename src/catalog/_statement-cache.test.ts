import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { cachedStatements } from './_statement-cache.js'

describe('cached SQLite statements', () => {
  it('answers the same statement for the same SQL, and its results stay right', () => {
    const db = new Database(':memory:')
    const c = cachedStatements(db)
    c.prepare('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)').run([])
    const insert = c.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
    assert.equal(c.prepare('INSERT INTO t (k, v) VALUES (?, ?)'), insert)
    for (let k = 0; k < 5; k++) c.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run([k, `v${k}`])
    const select = 'SELECT v FROM t WHERE k >= ? ORDER BY k'
    assert.deepEqual(c.prepare(select).all([3]), [{ v: 'v3' }, { v: 'v4' }])
    assert.deepEqual(c.prepare(select).all([1]).length, 4)
    c.close()
    assert.equal(db.open, false)
  })

  it('gives a fresh statement while the kept one is still iterating', () => {
    const db = new Database(':memory:')
    const c = cachedStatements(db)
    db.exec('CREATE TABLE t (k INTEGER); INSERT INTO t VALUES (1), (2), (3)')
    const sql = 'SELECT k FROM t ORDER BY k'
    const kept = c.prepare(sql)
    const rows = kept.iterate([]) as IterableIterator<{ k: number }>
    assert.equal(rows.next().value?.k, 1)
    const other = c.prepare(sql)
    assert.notEqual(other, kept)
    assert.deepEqual(
      (other.all([]) as { k: number }[]).map((r) => r.k),
      [1, 2, 3],
    )
    assert.deepEqual(
      [...rows].map((r) => r.k),
      [2, 3],
    )
    assert.equal(c.prepare(sql), kept, 'the kept one is handed out again once done')
    db.close()
  })

  it('keeps at most the number asked, dropping the least recently used', () => {
    const db = new Database(':memory:')
    const c = cachedStatements(db, 2)
    const a = c.prepare('SELECT 1')
    const b = c.prepare('SELECT 2')
    assert.equal(c.prepare('SELECT 1'), a)
    c.prepare('SELECT 3')
    assert.equal(c.prepare('SELECT 1'), a, 'used last: kept')
    assert.notEqual(c.prepare('SELECT 2'), b, 'least recently used: dropped')
    db.close()
  })
})
