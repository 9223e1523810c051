import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import { LogDiskStore } from './log-disk-store.js'
import type { DiskRef } from './types.js'

const REF: DiskRef = { account: 'acct', container: 'vms', disk: 'os' }

/** Runs `fn` on a fresh store holding one 1 MiB disk, REF. */
async function withDisk(fn: (store: LogDiskStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-read-into-'))
  try {
    const store = await LogDiskStore.open(dir)
    try {
      await store.createAccount(REF.account)
      await store.createContainer(REF.account, REF.container)
      await store.createDisk(REF, { size: 1024 * 1024 })
      await fn(store)
    } finally {
      await store.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('LogDiskStore reads into a given buffer', () => {
  it('fills the buffer, zeroes only what the disk holds as holes and answers a view of it', async () => {
    await withDisk(async (store) => {
      const data = Buffer.alloc(8192, 0xab)
      await store.writePages(REF, 4096, data, { durable: false })
      // Old bytes in the buffer must not show through the holes around the data.
      const into = Buffer.alloc(64 * 1024, 0xee)
      const out = await store.read(REF, 0, 16384, { into })
      assert.equal(out.buffer, into.buffer)
      assert.equal(out.length, 16384)
      assert.ok(out.subarray(0, 4096).equals(Buffer.alloc(4096)))
      assert.ok(out.subarray(4096, 12288).equals(data))
      assert.ok(out.subarray(12288).equals(Buffer.alloc(4096)))
      assert.equal(into[16384], 0xee, 'bytes past the length are left alone')
      assert.ok(store.readSync(REF, 0, 16384).equals(out))
      // A hole-only read still clears the whole range.
      into.fill(0x55)
      assert.ok((await store.read(REF, 65536, 4096, { into })).equals(Buffer.alloc(4096)))
    })
  })

  it('refuses a buffer shorter than the read', async () => {
    await withDisk(async (store) => {
      await assert.rejects(
        store.read(REF, 0, 8192, { into: Buffer.alloc(4096) }),
        (err) => isCairnError(err) && err.code === 'InvalidRequest',
      )
    })
  })
})
