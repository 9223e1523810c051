import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RestError } from '@azure/storage-blob'
import { type BlobApiHarness, startBlobApi } from './_blobapi-harness.js'

async function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    if (err instanceof RestError) return err.code
    throw err
  }
  assert.fail('expected the request to fail')
}

describe('blob API containers, with the Azure SDK', () => {
  let h: BlobApiHarness
  before(async () => {
    h = await startBlobApi()
  })
  after(async () => {
    await h.close()
  })

  it('creates a container with metadata and reads its properties', async () => {
    const c = h.service.getContainerClient('props')
    const created = await c.create({ metadata: { owner: 'ops' } })
    assert.ok(created.etag)
    const p = await c.getProperties()
    assert.deepEqual(p.metadata, { owner: 'ops' })
    assert.equal(p.leaseState, 'available')
    assert.equal(p.etag, created.etag)
  })

  it('refuses to create a container twice', async () => {
    await h.service.getContainerClient('twice').create()
    assert.equal(await errorCode(h.service.getContainerClient('twice').create()), 'ContainerAlreadyExists')
    assert.equal((await h.service.getContainerClient('twice').createIfNotExists()).succeeded, false)
  })

  it('sets container metadata', async () => {
    const c = h.service.getContainerClient('meta')
    await c.create()
    await c.setMetadata({ tier: 'gold', Region: 'west' })
    assert.deepEqual((await c.getProperties()).metadata, { tier: 'gold', region: 'west' })
  })

  it('deletes a container and answers ContainerNotFound afterwards', async () => {
    const c = h.service.getContainerClient('gone')
    await c.create()
    await c.delete()
    assert.equal(await errorCode(c.getProperties()), 'ContainerNotFound')
    assert.equal(await errorCode(c.delete()), 'ContainerNotFound')
  })

  it('lists containers by prefix, page by page with markers', async () => {
    for (const n of ['list-a', 'list-b', 'list-c', 'list-d', 'list-e'])
      await h.service.getContainerClient(n).create({ metadata: { n } })
    const names: string[] = []
    let pages = 0
    for await (const page of h.service
      .listContainers({ prefix: 'list-', includeMetadata: true })
      .byPage({ maxPageSize: 2 })) {
      pages++
      for (const c of page.containerItems) {
        names.push(c.name)
        assert.equal(c.metadata?.n, c.name)
      }
    }
    assert.deepEqual(names, ['list-a', 'list-b', 'list-c', 'list-d', 'list-e'])
    assert.equal(pages, 3)
  })

  it('lists blobs with prefix, maxresults, markers, snapshots and metadata', async () => {
    const c = h.service.getContainerClient('blobs')
    await c.create()
    for (const n of ['vm1/os', 'vm1/data', 'vm2/os', 'other'])
      await c.getPageBlobClient(n).create(4096, { metadata: { name: n.replace('/', '_') } })
    const snap = await c.getPageBlobClient('vm1/os').createSnapshot()

    const plain: string[] = []
    for await (const b of c.listBlobsFlat({ prefix: 'vm1/' })) plain.push(b.name)
    assert.deepEqual(plain, ['vm1/data', 'vm1/os'])

    const all: { name: string; snapshot?: string; meta?: string; type?: string; length?: number }[] = []
    let pages = 0
    for await (const page of c
      .listBlobsFlat({ includeSnapshots: true, includeMetadata: true })
      .byPage({ maxPageSize: 2 })) {
      pages++
      for (const b of page.segment.blobItems)
        all.push({
          name: b.name,
          ...(b.snapshot ? { snapshot: b.snapshot } : {}),
          ...(b.metadata?.name !== undefined ? { meta: b.metadata.name } : {}),
          ...(b.properties.blobType !== undefined ? { type: b.properties.blobType } : {}),
          ...(b.properties.contentLength !== undefined ? { length: b.properties.contentLength } : {}),
        })
    }
    // Four blobs, two a page: a blob's snapshots ride in its page (docs/blobapi.md, "List Blobs").
    assert.equal(pages, 2)
    assert.equal(all.length, 5)
    assert.ok(all.every((b) => b.type === 'PageBlob' && b.length === 4096))
    const snaps = all.filter((b) => b.snapshot !== undefined)
    assert.deepEqual(
      snaps.map((b) => [b.name, b.snapshot]),
      [['vm1/os', snap.snapshot]],
    )
    assert.equal(all.find((b) => b.name === 'vm2/os')?.meta, 'vm2_os')
  })

  it('lists blobs by hierarchy with a delimiter, page by page', async () => {
    const c = h.service.getContainerClient('tree')
    await c.create()
    for (const n of ['a/1', 'a/2', 'b/x/1', 'c', 'd/1', 'e']) await c.getPageBlobClient(n).create(512)
    const top: string[] = []
    for await (const page of c.listBlobsByHierarchy('/').byPage({ maxPageSize: 2 })) {
      for (const p of page.segment.blobPrefixes ?? []) top.push(`prefix ${p.name}`)
      for (const b of page.segment.blobItems) top.push(`blob ${b.name}`)
    }
    assert.deepEqual(top.sort(), ['blob c', 'blob e', 'prefix a/', 'prefix b/', 'prefix d/'])
    const inB: string[] = []
    for await (const item of c.listBlobsByHierarchy('/', { prefix: 'b/' }))
      inB.push(`${item.kind} ${item.name}`)
    assert.deepEqual(inB, ['prefix b/x/'])
    const inA: string[] = []
    for await (const item of c.listBlobsByHierarchy('/', { prefix: 'a/' }))
      inA.push(`${item.kind} ${item.name}`)
    assert.deepEqual(inA, ['blob a/1', 'blob a/2'])
  })

  it('answers Get Account Information like a StorageV2 account', async () => {
    const info = await h.service.getAccountInfo()
    assert.equal(info.accountKind, 'StorageV2')
  })
})
