import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { DataFolderLock } from './data-folder-lock.js'

describe('DataFolderLock', () => {
  it('a second holder is refused while the first lives', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    try {
      // A live process other than us owns the lock.
      writeFileSync(join(dir, 'cairn.lock'), `${process.ppid}\n`)
      assert.throws(
        () => new DataFolderLock(dir).acquire(),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'DataFolderLocked')
          assert.match(e.message, /in use by another Cairn service/)
          return true
        },
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a lock left by a dead process is taken over, and released on release()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    try {
      const dead = spawnSync(process.execPath, [
        '-e',
        'process.stdout.write(String(process.pid))',
      ]).stdout.toString()
      writeFileSync(join(dir, 'cairn.lock'), `${dead}\n`)
      const lock = new DataFolderLock(dir)
      lock.acquire()
      lock.release()
      const again = new DataFolderLock(dir)
      again.acquire()
      again.release()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
