import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { adjustExternalMemory } from '../util/index.js'
import { ChunkKind } from './_chunk-codec.js'
import { ChunkIndex } from './_chunk-index.js'
import { newPackName } from './_pack.js'
import { PackWriter } from './_pack-writer.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'

/** A memory backend that records the order of pack creations against the names listed so far. */
class WatchedBackend extends MemoryVaultBackend {
  /** Names listed (the lock), in order. */
  readonly listed: string[] = []
  /** Each pack created, with whether its name was listed when its creation began. */
  readonly created: { name: string; listedBefore: boolean }[] = []
  override async create(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<boolean> {
    this.created.push({ name, listedBefore: this.listed.includes(name) })
    return super.create(name, data)
  }
}

/** Adds `count` chunks of 1,000 bytes to a writer (packs closing at 4,000 bytes hold a few each). */
async function fill(writer: PackWriter, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await writer.add(randomBytes(32), randomBytes(1000), 1000, ChunkKind.data)
  await writer.flush()
}

describe('PackWriter', () => {
  it('lists each pack name before the pack is created, several at a time, in the order the packs are written', async () => {
    const store = `pack-writer-${randomUUID()}`
    const backend = new WatchedBackend(store)
    try {
      let lockWrites = 0
      const writer = new PackWriter(backend, new ChunkIndex(backend), {
        target: 4000,
        inFlight: 3,
        listAhead: 4,
        beforeWrite: async (names) => {
          lockWrites++
          // A slow lock write: packs whose names are not listed yet must wait for it.
          await new Promise((r) => setTimeout(r, 5))
          backend.listed.push(...names)
        },
      })
      await fill(writer, 30)
      const packs = writer.packs.length
      assert.ok(packs >= 6, `${packs} packs`)
      assert.ok(
        backend.created.every((c) => c.listedBefore),
        'no pack is created before its name is listed',
      )
      assert.equal(lockWrites, Math.ceil(packs / 4), 'one lock write per four packs')
      assert.deepEqual(
        backend.listed.slice(0, writer.packs.length),
        writer.packs,
        'packs take the names in order',
      )
      assert.equal(backend.listed.length, lockWrites * 4, 'names listed and never written are harmless')
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })

  it('uses names listed before it started without a lock write, then lists more', async () => {
    const store = `pack-writer-${randomUUID()}`
    const backend = new WatchedBackend(store)
    try {
      const first = [newPackName(), newPackName()]
      backend.listed.push(...first)
      const writes: string[][] = []
      const writer = new PackWriter(backend, new ChunkIndex(backend), {
        target: 4000,
        listAhead: 2,
        listed: first,
        beforeWrite: async (names) => {
          writes.push(names)
          backend.listed.push(...names)
        },
      })
      await fill(writer, 9)
      assert.deepEqual(writer.packs.slice(0, 2), first, 'the first packs take the names listed already')
      assert.equal(writes.length, 1, 'the third pack needed the one lock write')
      assert.equal(writer.packs[2], writes[0]![0])
      assert.ok(backend.created.every((c) => c.listedBefore))
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })

  it('fails the packs of a listing that failed, and writes none of them', async () => {
    const store = `pack-writer-${randomUUID()}`
    const backend = new WatchedBackend(store)
    try {
      const writer = new PackWriter(backend, new ChunkIndex(backend), {
        target: 4000,
        inFlight: 2,
        listAhead: 4,
        beforeWrite: async () => {
          throw new Error('the lock could not be written')
        },
      })
      await assert.rejects(fill(writer, 12), /the lock could not be written/)
      await writer.settle()
      assert.deepEqual(backend.created, [], 'no pack without its listing')
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })

  it('holds its parts out of V8’s count of external memory until it frees them', async () => {
    const store = `pack-writer-${randomUUID()}`
    const backend = new WatchedBackend(store)
    const counted = () => adjustExternalMemory(0) ?? assert.fail('the native heap addon is not built')
    try {
      const writer = new PackWriter(backend, new ChunkIndex(backend), { target: 64 * 1024 * 1024 })
      // As the chunk workers' parts come: each the sole view of its own memory.
      const parts = Array.from({ length: 8 }, () => Buffer.allocUnsafeSlow(1024 * 1024).fill(1))
      const made = counted()
      for (const p of parts) await writer.add(randomBytes(32), p, p.length, ChunkKind.data)
      // (Within 256 KiB: the ids, and whatever else the process makes meanwhile, are small buffers.)
      const held = counted() - (made - 8 * 1024 * 1024)
      assert.ok(Math.abs(held) < 256 * 1024, `held: out of the count (${held} bytes off)`)
      await writer.flush()
      assert.ok(
        parts.every((p) => p.length === 0),
        'freed once written',
      )
      // The store keeps its own copy (counted); the parts went back in and out as they were freed.
      const [pack] = await backend.list('packs/')
      assert.ok(pack && pack.size > 8 * 1024 * 1024)
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })
})
