// Blob index tags on page blobs with the official SDK and raw requests: Set/Get Blob Tags, x-ms-tags on
// create and copy, x-ms-if-tags conditions, x-ms-tag-count, Find Blobs by Tags, and tags across a restart.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { AccountSASPermissions, type ContainerClient, ContainerSASPermissions } from '@azure/storage-blob'
import {
  type BlobApiHarness,
  pattern,
  rawRequest,
  errorOf as refused,
  startBlobApi,
} from './_blobapi-harness.js'

describe('blob API index tags', () => {
  let h: BlobApiHarness
  let disks: ContainerClient
  before(async () => {
    h = await startBlobApi()
    disks = h.service.getContainerClient('tagged')
    await disks.create()
    await h.service.getContainerClient('other').create()
  })
  after(async () => {
    await h.close()
  })

  it('sets tags at creation and with Set Blob Tags; Get Blob Tags, properties and listings show them', async () => {
    const b = disks.getPageBlobClient('os.vhd')
    await b.create(65536, { tags: { vm: 'web1', role: 'os disk' } })
    assert.deepEqual((await b.getTags()).tags, { vm: 'web1', role: 'os disk' })
    const props = await b.getProperties()
    assert.equal(props.tagCount, 2)
    const etag = props.etag
    await b.setTags({ vm: 'web1', role: 'os', 'backup/tier': 'gold' })
    assert.deepEqual((await b.getTags()).tags, { vm: 'web1', role: 'os', 'backup/tier': 'gold' })
    const after = await b.getProperties()
    assert.equal(after.tagCount, 3)
    assert.equal(after.etag, etag, 'tags are not content: the ETag stays')
    const listed = []
    for await (const item of disks.listBlobsFlat({ includeTags: true })) listed.push(item)
    const entry = listed.find((x) => x.name === 'os.vhd')!
    assert.deepEqual(entry.tags, { vm: 'web1', role: 'os', 'backup/tier': 'gold' })
    assert.equal(entry.properties.tagCount, 3)
  })

  it('answers Set and Get Blob Tags raw as Azure does: 204, then the XML tag set', async () => {
    await disks.getPageBlobClient('raw.vhd').create(4096)
    const body = Buffer.from(
      '<?xml version="1.0" encoding="utf-8"?>\n<Tags>\n <TagSet><Tag><Key>a</Key><Value>1 2</Value></Tag><Tag><Key>empty</Key><Value></Value></Tag></TagSet></Tags>',
    )
    const put = await rawRequest(h, 'PUT', '/tagged/raw.vhd?comp=tags', {
      headers: { 'content-type': 'application/xml' },
      body,
    })
    assert.equal(put.status, 204, put.text)
    assert.equal(put.text, '')
    const got = await rawRequest(h, 'GET', '/tagged/raw.vhd?comp=tags')
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('content-type'), 'application/xml')
    assert.equal(
      got.text,
      '<?xml version="1.0" encoding="utf-8"?><Tags><TagSet><Tag><Key>a</Key><Value>1 2</Value></Tag><Tag><Key>empty</Key><Value /></Tag></TagSet></Tags>',
    )
    const head = await rawRequest(h, 'HEAD', '/tagged/raw.vhd')
    assert.equal(head.headers.get('x-ms-tag-count'), '2')
    const bad = await rawRequest(h, 'PUT', '/tagged/raw.vhd?comp=tags', { body: Buffer.from('<Tags><Tag>') })
    assert.equal(bad.status, 400)
    assert.equal(bad.code, 'InvalidXmlDocument')
  })

  it('refuses tag sets Azure refuses: more than 10, bad characters, over-long keys or values', async () => {
    const b = disks.getPageBlobClient('limits.vhd')
    await b.create(4096)
    const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']))
    assert.deepEqual(await refused(b.setTags(eleven)), { status: 400, code: 'InvalidTag' })
    assert.deepEqual(await refused(b.setTags({ 'bad!': 'v' })), { status: 400, code: 'InvalidTag' })
    assert.deepEqual(await refused(b.setTags({ k: 'x'.repeat(257) })), { status: 400, code: 'InvalidTag' })
    assert.deepEqual(await refused(b.setTags({ ['k'.repeat(129)]: 'v' })), {
      status: 400,
      code: 'InvalidTag',
    })
    assert.deepEqual(await refused(disks.getPageBlobClient('x.vhd').create(512, { tags: { 'a#': '1' } })), {
      status: 400,
      code: 'InvalidTag',
    })
    assert.equal((await b.getTags()).tags && Object.keys((await b.getTags()).tags).length, 0)
  })

  it('checks x-ms-if-tags on reads, writes, leases, snapshots, deletes and tag operations', async () => {
    const b = disks.getPageBlobClient('cond.vhd')
    await b.create(8192, { tags: { env: 'prod', n: '5' } })
    const yes = { tagConditions: `"env" = 'prod' AND "n" >= '3'` }
    const no = { tagConditions: `"env" = 'dev' OR "n" < '3'` }
    await b.uploadPages(pattern(512, 1), 0, 512, { conditions: yes })
    assert.deepEqual(await refused(b.uploadPages(pattern(512, 2), 0, 512, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await b.downloadToBuffer(0, 512, { conditions: yes }), pattern(512, 1))
    assert.deepEqual(await refused(b.download(0, 512, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.getProperties({ conditions: no })), { status: 412, code: undefined })
    assert.deepEqual(await refused(b.setMetadata({ a: '1' }, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.createSnapshot({ conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.getBlobLeaseClient().acquireLease(-1, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.getPageRanges(0, 8192, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.getTags({ conditions: no })), { status: 412, code: 'ConditionNotMet' })
    assert.deepEqual(await refused(b.setTags({}, { conditions: no })), {
      status: 412,
      code: 'ConditionNotMet',
    })
    assert.deepEqual(await refused(b.delete({ conditions: no })), { status: 412, code: 'ConditionNotMet' })
    assert.ok(await b.exists())
    const paren = await rawRequest(h, 'HEAD', '/tagged/cond.vhd', {
      headers: { 'x-ms-if-tags': `("env" <> 'dev' AND "n" = '5') OR "missing" = 'x'` },
    })
    assert.equal(paren.status, 200)
    const bad = await rawRequest(h, 'GET', '/tagged/cond.vhd?comp=tags', {
      headers: { 'x-ms-if-tags': `env = prod` },
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.code, 'InvalidHeaderValue')
    assert.match(bad.text, /<HeaderName>x-ms-if-tags<\/HeaderName>/)
    await b.delete({ conditions: yes })
  })

  it('finds blobs by tags in a container and across the account, with @container, ranges and paging', async () => {
    const put = async (container: string, name: string, tags: Record<string, string>) =>
      h.service.getContainerClient(container).getPageBlobClient(name).create(512, { tags })
    await put('tagged', 'f1', { project: 'cairn', week: '2026-49' })
    await put('tagged', 'f2', { project: 'cairn', week: '2026-50' })
    await put('tagged', 'f3', { project: 'other', week: '2026-50' })
    await put('other', 'f4', { project: 'cairn', week: '2026-51' })
    const names = async (it: AsyncIterable<{ name: string; containerName: string }>) => {
      const out: string[] = []
      for await (const x of it) out.push(`${x.containerName}/${x.name}`)
      return out.sort()
    }
    assert.deepEqual(await names(h.service.findBlobsByTags(`"project" = 'cairn'`)), [
      'other/f4',
      'tagged/f1',
      'tagged/f2',
    ])
    assert.deepEqual(await names(disks.findBlobsByTags(`"project" = 'cairn'`)), ['tagged/f1', 'tagged/f2'])
    assert.deepEqual(await names(h.service.findBlobsByTags(`@container = 'other' AND "project" = 'cairn'`)), [
      'other/f4',
    ])
    assert.deepEqual(await names(h.service.findBlobsByTags(`"week" >= '2026-50' AND "week" < '2026-51'`)), [
      'tagged/f2',
      'tagged/f3',
    ])
    const first = await h.service.findBlobsByTags(`"project" = 'cairn'`).byPage({ maxPageSize: 2 }).next()
    assert.equal(first.value.blobs.length, 2)
    assert.ok(first.value.continuationToken)
    const rest = await h.service
      .findBlobsByTags(`"project" = 'cairn'`)
      .byPage({ maxPageSize: 2, continuationToken: first.value.continuationToken })
      .next()
    assert.equal(rest.value.blobs.length, 1)
    const found = first.value.blobs[0]!
    assert.deepEqual(found.tags, { project: 'cairn' }, 'answers the tags the expression names')
    const raw = await rawRequest(h, 'GET', `?comp=blobs&where=${encodeURIComponent(`"project"='other'`)}`)
    assert.equal(raw.status, 200)
    assert.match(
      raw.text,
      /<EnumerationResults ServiceEndpoint="[^"]+\/devstoreaccount1\/"><Where>&quot;project&quot;=&apos;other&apos;<\/Where><Blobs><Blob><Name>f3<\/Name><ContainerName>tagged<\/ContainerName><Tags><TagSet><Tag><Key>project<\/Key><Value>other<\/Value><\/Tag><\/TagSet><\/Tags><\/Blob><\/Blobs><NextMarker \/><\/EnumerationResults>/,
    )
    const or = await rawRequest(h, 'GET', `?comp=blobs&where=${encodeURIComponent(`"a"='1' OR "b"='2'`)}`)
    assert.equal(or.status, 400)
    assert.equal(or.code, 'InvalidQueryParameterValue')
    const inContainer = await rawRequest(
      h,
      'GET',
      `/tagged?restype=container&comp=blobs&where=${encodeURIComponent(`@container='tagged'`)}`,
    )
    assert.equal(inContainer.status, 400)
    const missing = await rawRequest(h, 'GET', '?comp=blobs')
    assert.equal(missing.status, 400)
    assert.equal(missing.code, 'MissingRequiredQueryParameter')
  })

  it('copies set the tags of x-ms-tags and do not take the source tags', async () => {
    const src = disks.getPageBlobClient('src.vhd')
    await src.create(4096, { tags: { from: 'source' } })
    const plain = disks.getPageBlobClient('copy-plain.vhd')
    await (await plain.beginCopyFromURL(src.url)).pollUntilDone()
    assert.deepEqual((await plain.getTags()).tags, {})
    assert.equal((await plain.getProperties()).tagCount, undefined)
    const tagged = disks.getPageBlobClient('copy-tagged.vhd')
    await (await tagged.beginCopyFromURL(src.url, { tags: { copy: 'yes' } })).pollUntilDone()
    assert.deepEqual((await tagged.getTags()).tags, { copy: 'yes' })
  })

  it('a SAS needs t to read or set tags and f to find blobs by them', async () => {
    const b = disks.getPageBlobClient('sas-tags.vhd')
    await b.create(512, { tags: { sas: 'yes' } })
    const sasOf = async (permissions: string) =>
      new URL(
        await disks.generateSasUrl({
          permissions: ContainerSASPermissions.parse(permissions),
          expiresOn: new Date(Date.now() + 3600_000),
        }),
      ).search
    const readOnly = await fetch(`${b.url}${await sasOf('r')}&comp=tags`)
    assert.equal(readOnly.status, 403)
    assert.equal(readOnly.headers.get('x-ms-error-code'), 'AuthorizationPermissionMismatch')
    const tagged = await fetch(`${b.url}${await sasOf('t')}&comp=tags`)
    assert.equal(tagged.status, 200)
    assert.match(await tagged.text(), /<Key>sas<\/Key><Value>yes<\/Value>/)
    const where = encodeURIComponent(`"sas"='yes'`)
    const noFilter = await fetch(
      `${disks.url}${await sasOf('rl')}&restype=container&comp=blobs&where=${where}`,
    )
    assert.equal(noFilter.status, 403)
    const filter = await fetch(`${disks.url}${await sasOf('f')}&restype=container&comp=blobs&where=${where}`)
    assert.equal(filter.status, 200)
    assert.match(await filter.text(), /<Name>sas-tags.vhd<\/Name>/)
    const account = h.service.generateAccountSasUrl(
      new Date(Date.now() + 3600_000),
      AccountSASPermissions.parse('f'),
      's',
    )
    const found = await fetch(`${h.accountUrl}${new URL(account).search}&comp=blobs&where=${where}`)
    assert.equal(found.status, 200)
    assert.match(await found.text(), /<ContainerName>tagged<\/ContainerName>/)
  })

  it('a snapshot keeps the tags of its time', async () => {
    const b = disks.getPageBlobClient('snap.vhd')
    await b.create(4096, { tags: { state: 'before' } })
    const snap = await b.createSnapshot()
    await b.setTags({ state: 'after' })
    assert.deepEqual((await b.withSnapshot(snap.snapshot!).getTags()).tags, { state: 'before' })
    assert.deepEqual((await b.getTags()).tags, { state: 'after' })
    const r = await rawRequest(
      h,
      'PUT',
      `/tagged/snap.vhd?comp=tags&snapshot=${encodeURIComponent(snap.snapshot!)}`,
      {
        body: Buffer.from('<Tags><TagSet></TagSet></Tags>'),
      },
    )
    assert.equal(r.status, 400)
    assert.equal(r.code, 'InvalidQueryParameterValue')
  })
})
