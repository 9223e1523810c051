// The contract every VaultBackend keeps, as one suite each implementation runs
// (vault-backend.contract.test.ts loops over BACKENDS). A new backend (S3, Azure Blob) joins BACKENDS
// and must pass unchanged.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { CairnError } from '../util/index.js'
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  S3RVER_KEY_ID,
  S3RVER_SECRET,
  sharedAzurite,
  sharedS3rver,
  storeName,
} from './_test-object-stores.js'
import { MemoryVaultBackend } from './memory-vault-backend.js'
import { type OpenVaultBackendOptions, openVaultBackend } from './open-vault-backend.js'
import type { VaultBackend } from './vault-backend.js'

/** A fresh, empty place for a backend, and the URL that opens it. */
export interface BackendPlace {
  /** The location `openVaultBackend` opens, as an operator would write it. */
  url: string
  /** What `openVaultBackend` needs besides the URL (an object store's credentials). */
  options?: OpenVaultBackendOptions
  cleanup(): Promise<void>
}

/** One backend under test. */
export interface BackendUnderTest {
  name: string
  /** Makes an empty place; opening its `url` twice gives two backends on the same objects. */
  place(): Promise<BackendPlace>
  /**
   * False for a store without conditional writes (s3rver): of concurrent creates of one name more than
   * one may succeed. Every real store Cairn supports has them.
   */
  atomicCreate?: boolean
}

/** Opens a backend on `place`. */
export function openPlace(place: BackendPlace): VaultBackend {
  return openVaultBackend(place.url, place.options)
}

/** The retry settings of object stores in tests: quick backoffs. */
const TEST_RETRY = { baseDelayMs: 20, maxDelayMs: 500, timeoutMs: 60_000 }

/** A container of the process's Azurite (credentials by account key). */
export const AZURE_BACKEND: BackendUnderTest = {
  name: 'azure (Azurite)',
  place: async () => {
    const server = await sharedAzurite()
    const endpoint = `${server.endpoint}/${AZURITE_ACCOUNT}`
    const container = storeName()
    const service = new BlobServiceClient(
      endpoint,
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    )
    await service.createContainer(container)
    return {
      url: `azblob://${AZURITE_ACCOUNT}/${container}/vault?endpoint=${encodeURIComponent(endpoint)}`,
      options: { objectStores: { azure: { accountKey: AZURITE_KEY }, retry: TEST_RETRY } },
      cleanup: async () => {
        await service.deleteContainer(container).catch(() => {})
      },
    }
  },
}

/** A bucket of the process's s3rver (path-style, its default credentials). */
export const S3_BACKEND: BackendUnderTest = {
  name: 's3 (s3rver)',
  atomicCreate: false,
  place: async () => {
    const server = await sharedS3rver()
    const bucket = storeName()
    const admin = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
    })
    await admin.send(new CreateBucketCommand({ Bucket: bucket }))
    admin.destroy()
    return {
      url: `s3://${bucket}/vault?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&path-style=true`,
      options: {
        objectStores: {
          s3: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
          retry: TEST_RETRY,
        },
      },
      // The bucket goes with the server's folder when the test process ends.
      cleanup: async () => {},
    }
  },
}

async function tempPlace(parent: string, toUrl: (dir: string) => string): Promise<BackendPlace> {
  const dir = await mkdtemp(join(parent, 'cairn-backend-'))
  return { url: toUrl(join(dir, 'vault')), cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** A local folder under the temporary directory. */
export const FS_BACKEND: BackendUnderTest = { name: 'fs', place: () => tempPlace(tmpdir(), (d) => d) }

/** This process's memory. */
export const MEMORY_BACKEND: BackendUnderTest = {
  name: 'memory',
  place: async () => {
    const name = `test-${randomUUID()}`
    return { url: `memory://${name}`, cleanup: async () => MemoryVaultBackend.drop(name) }
  },
}

/** Every backend Cairn has (the folder also by file:// URL and on tmpfs), each on a fresh place. */
export const BACKENDS: BackendUnderTest[] = [
  FS_BACKEND,
  { name: 'fs (file:// URL)', place: () => tempPlace(tmpdir(), (d) => pathToFileURL(d).href) },
  ...(existsSync('/dev/shm')
    ? [{ name: 'fs on tmpfs (no O_DIRECT)', place: () => tempPlace('/dev/shm', (d) => d) }]
    : []),
  MEMORY_BACKEND,
  AZURE_BACKEND,
  S3_BACKEND,
]

/** The backends the vault engine's own suite (vault.test.ts) runs on: one of each kind. */
export const ENGINE_BACKENDS: BackendUnderTest[] = [FS_BACKEND, MEMORY_BACKEND, AZURE_BACKEND, S3_BACKEND]

/** Runs `fn` with a backend on a fresh place (and a way to open more on it); cleans up after. */
async function withBackend(
  b: BackendUnderTest,
  fn: (backend: VaultBackend, reopen: () => VaultBackend, place: BackendPlace) => Promise<void>,
): Promise<void> {
  const place = await b.place()
  const opened: VaultBackend[] = []
  const reopen = () => {
    const backend = openPlace(place)
    opened.push(backend)
    return backend
  }
  try {
    await fn(reopen(), reopen, place)
  } finally {
    for (const backend of opened) await backend.close?.()
    await place.cleanup()
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CairnError, `${what}: ${String(err)} is not a CairnError`)
    assert.equal(err.code, code, `${what}: ${err.message}`)
    return true
  })
}

/** Registers the contract's tests for one backend (call inside a describe). */
export function vaultBackendContract(b: BackendUnderTest): void {
  it('put then get returns the same bytes, given whole, in parts or empty', async () => {
    await withBackend(b, async (backend) => {
      const whole = randomBytes(10_000)
      await backend.put('a/whole', whole)
      assert.ok((await backend.get('a/whole')).equals(whole))
      const parts = [randomBytes(3), randomBytes(0), randomBytes(70_001), randomBytes(1)]
      await backend.put('a/parts', parts)
      assert.ok((await backend.get('a/parts')).equals(Buffer.concat(parts)))
      await backend.put('a/empty', Buffer.alloc(0))
      assert.equal((await backend.get('a/empty')).length, 0)
    })
  })

  it('objects of several MiB in odd-sized parts round trip, whole and by range', async () => {
    await withBackend(b, async (backend) => {
      const parts = [randomBytes(1_048_573), randomBytes(2 * 1_048_576 + 7), randomBytes(4095)]
      const all = Buffer.concat(parts)
      assert.equal(await backend.create('packs/big', parts), true)
      assert.ok((await backend.get('packs/big')).equals(all))
      const at = 1_048_570
      assert.ok((await backend.getRange('packs/big', at, 100_000)).equals(all.subarray(at, at + 100_000)))
    })
  })

  it('getRange returns exactly the bytes asked for, and only the bytes that exist past the end', async () => {
    await withBackend(b, async (backend) => {
      const data = randomBytes(50_000)
      await backend.put('r', data)
      assert.ok((await backend.getRange('r', 0, 1)).equals(data.subarray(0, 1)))
      assert.ok((await backend.getRange('r', 12_345, 6789)).equals(data.subarray(12_345, 12_345 + 6789)))
      assert.ok((await backend.getRange('r', 49_999, 1)).equals(data.subarray(49_999)))
      assert.equal((await backend.getRange('r', 0, 0)).length, 0)
      // A read reaching past the end is short, never padded: the vault takes a short blob as damage.
      assert.ok((await backend.getRange('r', 49_000, 5000)).equals(data.subarray(49_000)))
      assert.equal((await backend.getRange('r', 50_000, 10)).length, 0)
    })
  })

  it('reading a missing object throws VaultObjectMissing, also after a delete', async () => {
    await withBackend(b, async (backend) => {
      await rejectsWith(backend.get('rp/none'), 'VaultObjectMissing', 'get of a name never written')
      await rejectsWith(
        backend.getRange('packs/none', 0, 10),
        'VaultObjectMissing',
        'getRange of a missing name',
      )
      await backend.put('rp/gone', Buffer.from('x'))
      await backend.getRange('rp/gone', 0, 1)
      await backend.delete('rp/gone')
      await rejectsWith(backend.get('rp/gone'), 'VaultObjectMissing', 'get after delete')
      await rejectsWith(backend.getRange('rp/gone', 0, 1), 'VaultObjectMissing', 'getRange after delete')
    })
  })

  it('delete removes an object from reads and listings, and deleting a missing object is not an error', async () => {
    await withBackend(b, async (backend) => {
      await backend.put('locks/1', Buffer.from('one'))
      await backend.put('locks/2', Buffer.from('two'))
      await backend.delete('locks/1')
      assert.deepEqual(
        (await backend.list('locks/')).map((o) => o.name),
        ['locks/2'],
      )
      await backend.delete('locks/1')
      await backend.delete('never/was')
      assert.equal(
        await backend.create('locks/1', Buffer.from('again')),
        true,
        'a deleted name can be created again',
      )
      assert.equal((await backend.get('locks/1')).toString(), 'again')
    })
  })

  it('put replaces an object atomically: concurrent readers see the old or the new bytes, never a mix', async () => {
    await withBackend(b, async (backend, reopen) => {
      const size = 200_000
      const versions = [0xaa, 0xbb, 0xcc, 0xdd].map((v) => Buffer.alloc(size, v))
      await backend.put('keys', versions[0]!)
      const reader = reopen()
      let writing = true
      const writer = (async () => {
        for (let i = 1; i < 24; i++) await backend.put('keys', versions[i % versions.length]!)
        writing = false
      })()
      let reads = 0
      while (writing) {
        const got = await reader.get('keys')
        assert.equal(got.length, size, 'a reader saw a partly written object')
        assert.ok(
          versions.some((v) => v.equals(got)),
          'a reader saw bytes of two versions in one object',
        )
        reads++
      }
      await writer
      assert.ok(reads > 0)
      assert.ok((await reader.get('keys')).equals(versions[23 % versions.length]!))
      const listed = await reader.list('keys')
      assert.deepEqual(
        listed.map((o) => [o.name, o.size]),
        [['keys', size]],
      )
    })
  })

  it('create writes only when the name is free: false and the old bytes when it exists', async () => {
    await withBackend(b, async (backend) => {
      assert.equal(await backend.create('rp/1', Buffer.from('first')), true)
      assert.equal(await backend.create('rp/1', Buffer.from('second')), false)
      assert.equal((await backend.get('rp/1')).toString(), 'first')
      // put replaces what create made
      await backend.put('rp/1', Buffer.from('third'))
      assert.equal((await backend.get('rp/1')).toString(), 'third')
    })
  })

  it('of concurrent creates of one name from several writers exactly one wins, and its bytes stay', async () => {
    await withBackend(b, async (backend, reopen) => {
      const writers = [backend, reopen(), reopen(), reopen()]
      const bodies = Array.from({ length: 16 }, () => randomBytes(30_000))
      const results = await Promise.all(
        bodies.map((body, i) => writers[i % writers.length]!.create('rp/race', body)),
      )
      const stored = await backend.get('rp/race')
      if (b.atomicCreate === false) {
        // Without conditional writes only the outcome is promised: one whole body of a winner.
        assert.ok(results.some((r) => r))
        assert.ok(bodies.some((body, i) => results[i] && body.equals(stored)))
        return
      }
      assert.equal(results.filter((r) => r).length, 1, `results: ${results.join(',')}`)
      const winner = bodies[results.indexOf(true)]!
      for (const w of writers) assert.ok((await w.get('rp/race')).equals(winner))
    })
  })

  it('concurrent writers of different objects all land, and every one lists and reads back', async () => {
    await withBackend(b, async (backend, reopen) => {
      const writers = [backend, reopen(), reopen()]
      const objects = Array.from({ length: 60 }, (_, i) => ({
        name: `packs/${(i % 7).toString(16).padStart(2, '0')}/p${i}`,
        data: randomBytes(1000 + i * 37),
      }))
      await Promise.all(
        objects.map((o, i) =>
          i % 2
            ? writers[i % 3]!.put(o.name, o.data)
            : writers[i % 3]!.create(o.name, [o.data.subarray(0, 10), o.data.subarray(10)]),
        ),
      )
      const fresh = reopen()
      const listed = await fresh.list('packs/')
      assert.deepEqual(
        listed.map((o) => [o.name, o.size]),
        objects.map((o) => [o.name, o.data.length]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
      )
      for (const o of objects) assert.ok((await fresh.get(o.name)).equals(o.data), o.name)
    })
  })

  it('list returns every object under a prefix, sorted, with sizes and times, right after the writes', async () => {
    await withBackend(b, async (backend) => {
      const before = Date.now()
      assert.deepEqual(await backend.list(''), [], 'a fresh place is empty')
      const names = ['rp/b', 'rp/a', 'packs/3f/3f01', 'packs/3f/3f02', 'packs/40/4001', 'config', 'rpx']
      for (const [i, n] of names.entries()) await backend.put(n, Buffer.alloc(i + 1))
      const all = await backend.list('')
      assert.deepEqual(
        all.map((o) => o.name),
        [...names].sort(),
      )
      for (const o of all) {
        assert.equal(o.size, names.indexOf(o.name) + 1, o.name)
        assert.ok(
          o.modified >= before - 2000 && o.modified <= Date.now() + 2000,
          `${o.name} modified ${o.modified}`,
        )
      }
      assert.deepEqual(
        (await backend.list('rp/')).map((o) => o.name),
        ['rp/a', 'rp/b'],
      )
      assert.deepEqual(
        (await backend.list('rp')).map((o) => o.name),
        ['rp/a', 'rp/b', 'rpx'],
        'a prefix need not end at a "/"',
      )
      assert.deepEqual(
        (await backend.list('packs/3')).map((o) => o.name),
        ['packs/3f/3f01', 'packs/3f/3f02'],
      )
      assert.deepEqual(await backend.list('nothing/'), [])
    })
  })

  it('objects written through one backend are there for another opened later on the same location', async () => {
    await withBackend(b, async (backend, reopen, place) => {
      const data = randomBytes(5000)
      await backend.create('config', data)
      await backend.close?.()
      const again = reopen()
      assert.ok((await again.get('config')).equals(data))
      assert.deepEqual(
        (await again.list('')).map((o) => o.name),
        ['config'],
      )
      const byLocation = () => openVaultBackend(again.location, place.options)
      assert.ok(byLocation().kind === again.kind, 'location opens the same kind of backend')
      assert.ok((await byLocation().get('config')).equals(data), 'location names the same objects')
    })
  })

  it('stored objects are copies: changing a buffer after put, or one get returned, changes nothing', async () => {
    await withBackend(b, async (backend) => {
      const data = Buffer.alloc(4096, 1)
      const part = Buffer.alloc(10, 2)
      await backend.put('a', data)
      await backend.create('b', [part, part])
      data.fill(9)
      part.fill(9)
      const got = await backend.get('a')
      assert.ok(got.equals(Buffer.alloc(4096, 1)))
      got.fill(7)
      const range = await backend.getRange('b', 0, 20)
      range.fill(7)
      assert.ok((await backend.get('a')).equals(Buffer.alloc(4096, 1)))
      assert.ok((await backend.get('b')).equals(Buffer.alloc(20, 2)))
    })
  })

  it('refuses object names that are not plain relative names', async () => {
    await withBackend(b, async (backend) => {
      for (const name of ['', '/abs', '../up', 'a/../b', 'a//b', 'a/./b', 'trailing/', 'nul\0x']) {
        await rejectsWith(backend.put(name, Buffer.from('x')), 'InvalidRequest', `put "${name}"`)
        await rejectsWith(backend.create(name, Buffer.from('x')), 'InvalidRequest', `create "${name}"`)
        await rejectsWith(backend.get(name), 'InvalidRequest', `get "${name}"`)
        await rejectsWith(backend.delete(name), 'InvalidRequest', `delete "${name}"`)
      }
      assert.deepEqual(await backend.list(''), [])
    })
  })

  it('localPath, where offered, is a file holding the object; sweepTemporary leaves objects alone', async () => {
    await withBackend(b, async (backend) => {
      const data = randomBytes(3000)
      await backend.put('packs/00/x', data)
      if (backend.localPath) assert.ok((await readFile(backend.localPath('packs/00/x'))).equals(data))
      if (backend.sweepTemporary) {
        assert.equal(await backend.sweepTemporary(0), 0)
        assert.ok((await backend.get('packs/00/x')).equals(data))
      }
      assert.deepEqual(
        (await backend.list('')).map((o) => o.name),
        ['packs/00/x'],
        'temporary files never show in a listing',
      )
    })
  })
}
