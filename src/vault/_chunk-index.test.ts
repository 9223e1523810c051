import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { ChunkKind } from './_chunk-codec.js'
import { ChunkIndex } from './_chunk-index.js'
import { newPackName, PACK_HEADER, packHeader, packTrailer } from './_pack.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'

/** A pack of two chunks, whole, and the ids it holds. */
function pack(): { bytes: Buffer; ids: Buffer[] } {
  const blobs = [randomBytes(3000), randomBytes(5000)]
  const ids = blobs.map(() => randomBytes(32))
  let offset = PACK_HEADER
  const entries = blobs.map((b, i) => {
    const e = { id: ids[i]!, offset, length: b.length, rawLength: b.length, kind: ChunkKind.data }
    offset += b.length
    return e
  })
  return { bytes: Buffer.concat([packHeader(), ...blobs, packTrailer(entries, offset)]), ids }
}

/** A memory backend that counts the ranged reads of packs. */
class CountingBackend extends MemoryVaultBackend {
  reads = 0
  override async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    this.reads++
    return super.getRange(name, offset, length)
  }
}

describe('ChunkIndex', () => {
  it('reads a pack again once it is listed whole, after it was listed while still being uploaded (its index failed)', async () => {
    // s3rver writes an upload in place: a listing meanwhile shows the part written so far. Another
    // worker's refresh then failed that pack's footer and, before, never read the pack again: every
    // chunk of it stayed "missing from the source vault" in that process (the 3-worker fleet test's copy).
    const store = `chunk-index-${randomUUID()}`
    const backend = new CountingBackend(store)
    try {
      const index = new ChunkIndex(backend)
      const { bytes, ids } = pack()
      const name = newPackName()
      await backend.put(name, bytes.subarray(0, 4000))
      await index.refresh()
      assert.deepEqual([...index.damaged.keys()], [name], 'the partial pack fails')
      assert.equal(index.get(ids[0]!), undefined)

      await backend.put(name, bytes)
      await index.refresh()
      assert.equal(index.damaged.size, 0, 'the whole pack is read')
      assert.equal(index.get(ids[0]!)?.pack, name)
      assert.equal(index.get(ids[1]!)?.length, 5000)
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })

  it('does not read a damaged pack again while the store lists it as it was', async () => {
    const store = `chunk-index-${randomUUID()}`
    const backend = new CountingBackend(store)
    try {
      const index = new ChunkIndex(backend)
      const { bytes } = pack()
      const name = newPackName()
      const damaged = Buffer.from(bytes)
      damaged[damaged.length - 1]! ^= 0xff
      await backend.put(name, damaged)
      await index.refresh()
      assert.match(index.damaged.get(name) ?? '', /footer magic/)
      const reads = backend.reads
      await index.refresh()
      await index.refresh()
      assert.equal(backend.reads, reads, 'no read of the same damaged version')
      assert.match(index.damaged.get(name) ?? '', /footer magic/)

      await backend.delete(name)
      await index.refresh()
      assert.equal(index.damaged.size, 0, 'a pack that is gone is not damaged')
    } finally {
      MemoryVaultBackend.drop(store)
    }
  })
})
