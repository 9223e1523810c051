// Overlapping group-commit rounds of SegmentLog.durable(), observed by holding its fdatasync calls.
// node:test runs each file in its own process, so replacing fs.fdatasync here touches no other test.
import assert from 'node:assert/strict'
import fs, { mkdtempSync, rmSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { alignedBuffer } from '../util/index.js'
import { RecordType, SegmentLog } from './_segment-log.js'

type SyncCallback = (err: NodeJS.ErrnoException | null) => void
const realFdatasync = fs.fdatasync

/** Replaces fdatasync: the first call waits until `release(err?)`, later ones run at once. */
function holdFirstSync() {
  const calls: number[] = []
  let release: (err?: NodeJS.ErrnoException) => void = () => {}
  const held = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    release = resolve
  })
  const patched = (fd: number, cb: SyncCallback) => {
    calls.push(fd)
    if (calls.length === 1) void held.then((err) => (err ? cb(err) : realFdatasync(fd, cb)))
    else realFdatasync(fd, cb)
  }
  ;(fs as { fdatasync: unknown }).fdatasync = patched
  syncBuiltinESMExports()
  return { calls, release: (err?: NodeJS.ErrnoException) => release(err) }
}

afterEach(() => {
  ;(fs as { fdatasync: unknown }).fdatasync = realFdatasync
  syncBuiltinESMExports()
})

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !ok(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(ok(), `timed out waiting until ${what}`)
}

/** A promise's state, tracked. */
function track(p: Promise<void>) {
  const s = { done: false, failed: undefined as unknown }
  p.then(
    () => {
      s.done = true
    },
    (err) => {
      s.failed = err
    },
  )
  return s
}

function withLog(fn: (log: SegmentLog) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-groupcommit-'))
  const log = SegmentLog.open(dir, 64 * 1024 * 1024)
  return fn(log).finally(async () => {
    await log.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })
}

const page = () => alignedBuffer(64 * 1024).fill(7)
const META = Buffer.from('meta')

/** Two rounds of one write each: the first round's fdatasync held, the second's gone out after it. */
async function twoRounds(log: SegmentLog) {
  const sync = holdFirstSync()
  log.append(RecordType.write, META, page(), { background: true, direct: true })
  const first = track(log.durable())
  await until('the first round syncs', () => sync.calls.length === 1)
  log.append(RecordType.write, META, page(), { background: true, direct: true })
  const second = track(log.durable())
  await until('the second round syncs', () => sync.calls.length === 2)
  return { sync, first, second }
}

describe('SegmentLog group commit', () => {
  it('starts the next round while one syncs, and ends it only after that one', () =>
    withLog(async (log) => {
      // The second round's fdatasync goes out while the first is still held…
      const { sync, first, second } = await twoRounds(log)
      await new Promise((r) => setTimeout(r, 50))
      // …but neither round answers before the first fdatasync has returned.
      assert.equal(first.done, false)
      assert.equal(second.done, false)
      sync.release()
      await until('both rounds end', () => first.done && second.done)
    }))

  it('fails the round after a failed fdatasync too, and serves the rounds after that again', () =>
    withLog(async (log) => {
      const { sync, first, second } = await twoRounds(log)
      sync.release(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }))
      await until('both rounds fail', () => first.failed !== undefined && second.failed !== undefined)
      assert.match(String(first.failed), /EIO/)
      assert.match(String(second.failed), /EIO/)
      log.append(RecordType.write, META, page(), { background: true, direct: true })
      await log.durable()
    }))
})
