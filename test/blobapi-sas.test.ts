// Shared access signatures made by the official SDK work for the page-blob operations; expired,
// not-yet-valid, tampered and insufficient ones get Azure's 403 answers.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  AccountSASPermissions,
  AnonymousCredential,
  BlobSASPermissions,
  ContainerClient,
  ContainerSASPermissions,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
  PageBlobClient,
  SASProtocol,
} from '@azure/storage-blob'
import { type BlobApiHarness, pattern, errorOf as refused, startBlobApi } from './_blobapi-harness.js'

const HOUR = 3600_000
const noRetry = { retryOptions: { maxTries: 1 } }
const anonymous = new AnonymousCredential()

/** A raw GET of a SAS URL: status, error code and body. */
async function raw(url: string, init: RequestInit = {}) {
  const res = await fetch(url, { headers: { 'x-ms-version': '2025-01-05' }, ...init })
  const text = await res.text()
  return { status: res.status, code: res.headers.get('x-ms-error-code'), text, headers: res.headers }
}

describe('blob API shared access signatures', () => {
  let h: BlobApiHarness
  let disk: PageBlobClient
  const data = pattern(8192, 7)
  before(async () => {
    h = await startBlobApi()
    await h.service.getContainerClient('sas').create()
    disk = h.service.getContainerClient('sas').getPageBlobClient('disk.vhd')
    await disk.create(65536)
    await disk.uploadPages(data, 0, data.length)
  })
  after(async () => {
    await h.close()
  })

  it('a blob SAS from generateSasUrl reads, writes and lists the pages of its blob', async () => {
    const url = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('rw'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    assert.match(url, /[?&]sr=b&/)
    const viaSas = new PageBlobClient(url, anonymous, noRetry)
    const got = await viaSas.downloadToBuffer(0, data.length)
    assert.deepEqual(got, data)
    await viaSas.uploadPages(pattern(512, 9), 8192, 512)
    const ranges = await viaSas.getPageRanges(0, 65536)
    assert.deepEqual(ranges.pageRange, [{ offset: 0, count: 8703 }])
    const props = await viaSas.getProperties()
    assert.equal(props.contentLength, 65536)
  })

  it('a blob SAS does not reach another blob of the container (the signature names its blob)', async () => {
    const other = h.service.getContainerClient('sas').getPageBlobClient('other.vhd')
    await other.create(4096)
    const url = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    const sas = new URL(url).search
    const r = await raw(`${other.url}${sas}`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    assert.match(r.text, /<AuthenticationErrorDetail>Signature did not match. String to sign used was r\n/)
  })

  it('a container SAS creates page blobs, writes and lists them; without l it cannot list', async () => {
    const container = h.service.getContainerClient('sas')
    const url = await container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('racwdl'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    const viaSas = new ContainerClient(url, anonymous, noRetry)
    const blob = viaSas.getPageBlobClient('made-by-sas.vhd')
    await blob.create(4096)
    await blob.uploadPages(pattern(1024, 3), 0, 1024)
    const names: string[] = []
    for await (const b of viaSas.listBlobsFlat()) names.push(b.name)
    assert.ok(names.includes('made-by-sas.vhd'))
    await blob.delete()

    const noList = await container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    const r = await raw(`${container.url}${new URL(noList).search}&restype=container&comp=list`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthorizationPermissionMismatch')
    assert.match(
      r.text,
      /<Code>AuthorizationPermissionMismatch<\/Code><Message>This request is not authorized/,
    )
  })

  it('a container SAS cannot create containers or list the account (resource type)', async () => {
    const url = await h.service.getContainerClient('sas').generateSasUrl({
      permissions: ContainerSASPermissions.parse('racwdl'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    const sas = new URL(url).search
    const r = await raw(`${h.accountUrl}${sas}&comp=list`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    const props = await raw(`${h.accountUrl}/sas${sas}&restype=container`)
    assert.equal(props.status, 403)
    assert.equal(props.code, 'AuthorizationResourceTypeMismatch')
  })

  it('an account SAS from generateAccountSasUrl lists containers and runs page-blob operations', async () => {
    const url = h.service.generateAccountSasUrl(
      new Date(Date.now() + HOUR),
      AccountSASPermissions.parse('rwdlac'),
      'sco',
    )
    const sas = new URL(url).search
    const { BlobServiceClient } = await import('@azure/storage-blob')
    const viaSas = new BlobServiceClient(`${h.accountUrl}${sas}`, anonymous, noRetry)
    const names: string[] = []
    for await (const c of viaSas.listContainers()) names.push(c.name)
    assert.ok(names.includes('sas'))
    const c = viaSas.getContainerClient('account-sas')
    await c.create()
    const b = c.getPageBlobClient('d')
    await b.create(8192)
    await b.uploadPages(pattern(512, 1), 512, 512)
    const snap = await b.createSnapshot()
    assert.ok(snap.snapshot)
    assert.deepEqual(await b.withSnapshot(snap.snapshot!).downloadToBuffer(512, 512), pattern(512, 1))
    await b.delete({ deleteSnapshots: 'include' })
    await c.delete()
  })

  it('an account SAS without the needed resource type or service is refused as Azure refuses it', async () => {
    const onlyService = h.service.generateAccountSasUrl(
      new Date(Date.now() + HOUR),
      AccountSASPermissions.parse('rl'),
      's',
    )
    const r = await raw(`${disk.url}${new URL(onlyService).search}`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthorizationResourceTypeMismatch')
    const queueOnly = generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + HOUR),
        permissions: AccountSASPermissions.parse('r'),
        services: 'q',
        resourceTypes: 'o',
      },
      h.credential,
    ).toString()
    const q = await raw(`${disk.url}?${queueOnly}`)
    assert.equal(q.status, 403)
    assert.equal(q.code, 'AuthorizationServiceMismatch')
  })

  it('checks the string-to-sign of each signed version: 2015-04-05, 2018-11-09, 2020-12-06 and current', async () => {
    for (const version of ['2015-04-05', '2018-11-09', '2019-12-12', '2020-12-06', '2025-01-05', undefined]) {
      const blobSas = generateBlobSASQueryParameters(
        {
          containerName: 'sas',
          blobName: 'disk.vhd',
          permissions: BlobSASPermissions.parse('r'),
          expiresOn: new Date(Date.now() + HOUR),
          ...(version === undefined ? {} : { version }),
        },
        h.credential,
      ).toString()
      const r = await raw(`${disk.url}?${blobSas}`, { headers: { range: 'bytes=0-511' } })
      assert.equal(r.status, 206, `blob SAS of version ${version}: ${r.text}`)
      const accountSas = generateAccountSASQueryParameters(
        {
          expiresOn: new Date(Date.now() + HOUR),
          permissions: AccountSASPermissions.parse('r'),
          services: 'b',
          resourceTypes: 'o',
          ...(version === undefined ? {} : { version }),
        },
        h.credential,
      ).toString()
      const a = await raw(`${disk.url}?${accountSas}`, { method: 'HEAD' })
      assert.equal(a.status, 200, `account SAS of version ${version}`)
    }
  })

  it('a snapshot SAS (sr=bs) reads that snapshot and not the base blob', async () => {
    const snap = await disk.createSnapshot()
    const sas = generateBlobSASQueryParameters(
      {
        containerName: 'sas',
        blobName: 'disk.vhd',
        snapshotTime: snap.snapshot!,
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + HOUR),
      },
      h.credential,
    ).toString()
    assert.match(sas, /sr=bs/)
    const ok = await raw(`${disk.url}?snapshot=${encodeURIComponent(snap.snapshot!)}&${sas}`, {
      method: 'HEAD',
    })
    assert.equal(ok.status, 200)
    const base = await raw(`${disk.url}?${sas}`)
    assert.equal(base.status, 403)
    assert.equal(base.code, 'AuthenticationFailed')
  })

  it('an expired or not yet valid SAS gets 403 AuthenticationFailed with the time frame', async () => {
    const expired = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      startsOn: new Date(Date.now() - 2 * HOUR),
      expiresOn: new Date(Date.now() - HOUR),
    })
    const r = await raw(expired)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    assert.match(r.text, /<Message>Server failed to authenticate the request/)
    assert.match(
      r.text,
      /<AuthenticationErrorDetail>Signature not valid in the specified time frame: Start \[[^\]]+GMT\] - Expiry \[[^\]]+GMT\] - Current \[[^\]]+GMT\]<\/AuthenticationErrorDetail>/,
    )
    const sdk = await refused(new PageBlobClient(expired, anonymous, noRetry).getProperties())
    assert.deepEqual(sdk, { status: 403, code: undefined })
    const early = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      startsOn: new Date(Date.now() + HOUR),
      expiresOn: new Date(Date.now() + 2 * HOUR),
    })
    const e = await raw(early)
    assert.equal(e.status, 403)
    assert.equal(e.code, 'AuthenticationFailed')
    assert.match(e.text, /Signature not valid in the specified time frame/)
  })

  it('a tampered SAS (permissions, expiry or signature changed) gets 403 AuthenticationFailed', async () => {
    const url = new URL(
      await disk.generateSasUrl({
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + HOUR),
      }),
    )
    const ok = await raw(url.toString(), { method: 'HEAD' })
    assert.equal(ok.status, 200)
    for (const [name, value] of [
      ['sp', 'rw'],
      ['se', new Date(Date.now() + 100 * HOUR).toISOString().replace(/\.\d+Z$/, 'Z')],
      ['sig', Buffer.alloc(32, 7).toString('base64')],
    ] as const) {
      const t = new URL(url)
      t.searchParams.set(name, value)
      const r = await raw(t.toString(), { method: 'PUT', headers: { 'x-ms-version': '2025-01-05' } })
      assert.equal(r.status, 403, name)
      assert.equal(r.code, 'AuthenticationFailed', name)
      assert.match(r.text, /Signature did not match/)
    }
    const noSp = new URL(url)
    noSp.searchParams.delete('sp')
    const m = await raw(noSp.toString())
    assert.equal(m.status, 403)
    assert.match(m.text, /sp is mandatory/)
  })

  it('a read-only SAS cannot write, delete or snapshot: AuthorizationPermissionMismatch', async () => {
    const url = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    const viaSas = new PageBlobClient(url, anonymous, noRetry)
    assert.deepEqual(await refused(viaSas.uploadPages(pattern(512, 1), 0, 512)), {
      status: 403,
      code: 'AuthorizationPermissionMismatch',
    })
    assert.deepEqual(await refused(viaSas.delete()), { status: 403, code: 'AuthorizationPermissionMismatch' })
    assert.deepEqual(await refused(viaSas.createSnapshot()), {
      status: 403,
      code: 'AuthorizationPermissionMismatch',
    })
    assert.deepEqual(await h.service.getContainerClient('sas').getPageBlobClient('disk.vhd').exists(), true)
    // Create without write cannot overwrite an existing blob.
    const createOnly = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('c'),
      expiresOn: new Date(Date.now() + HOUR),
    })
    assert.deepEqual(await refused(new PageBlobClient(createOnly, anonymous, noRetry).create(512)), {
      status: 403,
      code: 'AuthorizationPermissionMismatch',
    })
  })

  it('checks the signed IP range and protocol', async () => {
    const outside = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
      ipRange: { start: '10.0.0.1', end: '10.0.0.255' },
    })
    const r = await raw(outside)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthorizationSourceIPMismatch')
    assert.match(r.text, /<SourceIP>127.0.0.1<\/SourceIP>/)
    const inside = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
      ipRange: { start: '127.0.0.0', end: '127.0.0.255' },
      protocol: SASProtocol.HttpsAndHttp,
    })
    assert.equal((await raw(inside, { method: 'HEAD' })).status, 200)
    const httpsOnly = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
      protocol: SASProtocol.Https,
    })
    const p = await raw(httpsOnly)
    assert.equal(p.status, 403)
    assert.equal(p.code, 'AuthorizationProtocolMismatch')
  })

  it('answers with the Content-Type and Content-Disposition a service SAS names', async () => {
    const url = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + HOUR),
      contentType: 'application/x-disk',
      contentDisposition: 'attachment; filename=disk.vhd',
    })
    const r = await raw(url, { headers: { range: 'bytes=0-511', 'x-ms-version': '2025-01-05' } })
    assert.equal(r.status, 206)
    assert.equal(r.headers.get('content-type'), 'application/x-disk')
    assert.equal(r.headers.get('content-disposition'), 'attachment; filename=disk.vhd')
  })

  it('refuses what it does not serve: stored access policies and encryption scopes', async () => {
    const policy = generateBlobSASQueryParameters(
      { containerName: 'sas', blobName: 'disk.vhd', identifier: 'policy1' },
      h.credential,
    ).toString()
    const r = await raw(`${disk.url}?${policy}`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    assert.match(r.text, /stored access policy &quot;policy1&quot;/)
    const scoped = generateBlobSASQueryParameters(
      {
        containerName: 'sas',
        blobName: 'disk.vhd',
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + HOUR),
        encryptionScope: 'scope1',
      },
      h.credential,
    ).toString()
    const s = await raw(`${disk.url}?${scoped}`)
    assert.equal(s.status, 403)
    assert.match(s.text, /encryption scope &quot;scope1&quot;/)
  })

  it('a SAS signed with a regenerated key stops working at once; one signed with the other key keeps working', async () => {
    const acct = await h.store.createAccount('rotating')
    await h.store.createContainer('rotating', 'cc1')
    await h.store.createDisk({ account: 'rotating', container: 'cc1', disk: 'd' }, { size: 4096 })
    const { StorageSharedKeyCredential } = await import('@azure/storage-blob')
    const sasWith = (key: string) =>
      generateBlobSASQueryParameters(
        {
          containerName: 'cc1',
          blobName: 'd',
          permissions: BlobSASPermissions.parse('r'),
          expiresOn: new Date(Date.now() + HOUR),
        },
        new StorageSharedKeyCredential('rotating', key),
      ).toString()
    const url = `${h.url}/rotating/cc1/d`
    const one = sasWith(acct.keys[0])
    const two = sasWith(acct.keys[1])
    assert.equal((await raw(`${url}?${one}`, { method: 'HEAD' })).status, 200)
    await h.store.regenerateAccountKey('rotating', 1)
    const r = await raw(`${url}?${one}`)
    assert.equal(r.status, 403)
    assert.equal(r.code, 'AuthenticationFailed')
    assert.equal((await raw(`${url}?${two}`, { method: 'HEAD' })).status, 200)
  })
})
