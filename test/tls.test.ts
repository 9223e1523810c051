// TLS on the management and blob APIs with real clients: Node's https client, curl, the official
// Azure Blob SDK and the cairn CLI (CA file, pinned fingerprint).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { get } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import selfsigned from 'selfsigned'
import { closedWithin, rawRequest, silentSocket } from './_raw-http.js'
import { authHeaders, cairnAt, type RunningService, startService } from './_service.js'

const run = promisify(execFile)

/** GET over https with Node's own client, trusting `ca` (or the system's CAs). */
function httpsGet(url: string, ca?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ...(ca ? { ca } : {}), agent: false, headers: authHeaders(new URL(url).origin) }, (res) => {
      let text = ''
      res.on('data', (c) => {
        text += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    }).once('error', reject)
  })
}

/** curl's exit status and output (curl exits 60 when it cannot verify the certificate). */
async function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...args])
    return { code: 0, stdout }
  } catch (err) {
    const e = err as { code?: number; stdout?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '' }
  }
}

/**
 * Runs the official Azure Blob SDK in a child process that trusts `caFile` the way Node programs
 * trust a private CA (NODE_EXTRA_CA_CERTS): create a container and a page blob, write and read pages
 * over https with Shared Key, then with an https-only blob SAS from generateSasUrl and an https-only
 * account SAS. Answers what the script printed, or its error.
 */
function blobSdk(blobUrl: string, caFile: string | undefined): Promise<{ code: number; out: string }> {
  const script = `
    import { AccountSASPermissions, AnonymousCredential, BlobSASPermissions, BlobServiceClient, PageBlobClient,
      SASProtocol, StorageSharedKeyCredential } from '@azure/storage-blob'
    const key = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    const service = new BlobServiceClient(process.env.BLOB_URL + '/devstoreaccount1',
      new StorageSharedKeyCredential('devstoreaccount1', key), { retryOptions: { maxTries: 1 } })
    const container = service.getContainerClient('tls' + Date.now())
    await container.create()
    const blob = container.getPageBlobClient('disk.vhd')
    await blob.create(1024 * 1024)
    const data = Buffer.alloc(4096, 0x5a)
    await blob.uploadPages(data, 8192, data.length)
    const back = await blob.downloadToBuffer(8192, 4096)
    const expiresOn = new Date(Date.now() + 3600_000)
    const sasUrl = await blob.generateSasUrl({ permissions: BlobSASPermissions.parse('rw'), expiresOn,
      protocol: SASProtocol.Https })
    const viaSas = new PageBlobClient(sasUrl, new AnonymousCredential(), { retryOptions: { maxTries: 1 } })
    const other = Buffer.alloc(4096, 0x3c)
    await viaSas.uploadPages(other, 0, other.length)
    const sasBack = await viaSas.downloadToBuffer(0, 4096)
    const accountUrl = service.generateAccountSasUrl(expiresOn, AccountSASPermissions.parse('rl'), 'sco',
      { protocol: SASProtocol.Https })
    const viaAccountSas = new BlobServiceClient(accountUrl, new AnonymousCredential(), { retryOptions: { maxTries: 1 } })
    const names = []
    for await (const c of viaAccountSas.listContainers()) names.push(c.name)
    process.stdout.write(JSON.stringify({ url: blob.url, sasUrl, same: back.equals(data),
      sasSame: sasBack.equals(other), listed: names.includes(container.containerName) }))
  `
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, BLOB_URL: blobUrl }
    delete env.NODE_EXTRA_CA_CERTS
    if (caFile) env.NODE_EXTRA_CA_CERTS = caFile
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      out += d
    })
    child.on('close', (code) => resolve({ code: code ?? -1, out }))
  })
}

describe('TLS on the management and blob APIs', () => {
  let svc: RunningService
  let caFile: string
  let ca: string
  let fingerprint: string

  before(async () => {
    svc = await startService(['--tls', 'self-signed'])
    caFile = join(svc.data, 'tls', 'cert.pem')
    ca = readFileSync(caFile, 'utf8')
    fingerprint = new X509Certificate(ca).fingerprint256
  })
  after(async () => {
    await svc.dispose()
  })

  it('--tls self-signed serves every listener with TLS, prints the fingerprint and keeps the key 0600', () => {
    assert.match(svc.listeners.api!, /^https:\/\/127\.0\.0\.1:\d+$/)
    assert.match(svc.listeners.blob!, /^https:\/\//)
    assert.match(svc.listeners.nbd!, /^nbds:\/\//)
    assert.equal(statSync(join(svc.data, 'tls', 'key.pem')).mode & 0o777, 0o600)
    const line = svc.logs.find((l) => l.includes('TLS certificate SHA-256 fingerprint'))
    assert.ok(line?.includes(fingerprint), `the start log names ${fingerprint}`)
  })

  it('NBD clients trust the self-signed certificate as their CA (nbdinfo, qemu-img), and plain NBD is refused', async () => {
    const certs = mkdtempSync(join(tmpdir(), 'cairn-nbd-ca-'))
    try {
      writeFileSync(join(certs, 'ca-cert.pem'), ca)
      const port = new URL(svc.listeners.nbd!.replace('nbds:', 'http:')).port
      const info = await run('nbdinfo', [
        '--size',
        `nbds://localhost:${port}/devstoreaccount1/disks/tlsnbd?tls-certificates=${certs}`,
      ]).catch((err: { stderr?: string }) => ({ stdout: '', stderr: err.stderr ?? String(err) }))
      // No such disk yet: the answer comes from inside TLS, after the certificate was checked.
      assert.match(info.stderr, /no export named|No such file or directory/)
      const created = await cairnAt(svc.url, ['disk', 'create', 'tlsnbd', '--size', '1MiB'], {
        env: { CAIRN_CA: caFile },
      })
      assert.equal(created.code, 0, created.stderr)
      const size = await run('nbdinfo', [
        '--size',
        `nbds://localhost:${port}/devstoreaccount1/disks/tlsnbd?tls-certificates=${certs}`,
      ])
      assert.equal(size.stdout.trim(), String(1024 * 1024))
      const qemu = await run('qemu-img', [
        'info',
        '--output=json',
        '--object',
        `tls-creds-x509,id=tls0,endpoint=client,dir=${certs}`,
        '--image-opts',
        `driver=nbd,host=localhost,port=${port},export=devstoreaccount1/disks/tlsnbd,tls-creds=tls0`,
      ])
      assert.equal((JSON.parse(qemu.stdout) as { 'virtual-size': number })['virtual-size'], 1024 * 1024)
      await assert.rejects(
        run('qemu-img', ['info', `nbd://localhost:${port}/devstoreaccount1/disks/tlsnbd`]),
        /TLS is required/,
      )
    } finally {
      rmSync(certs, { recursive: true, force: true })
    }
  })

  it("Node's https client and curl get the status with the CA and its fingerprints, and refuse without it", async () => {
    const ok = await httpsGet(`${svc.url}/api/v1/status`, ca)
    assert.equal(ok.status, 200)
    const status = JSON.parse(ok.text) as {
      tls: Record<string, { fingerprint?: string; selfSigned?: boolean }>
    }
    for (const listener of ['api', 'blob', 'nbd']) {
      assert.equal(status.tls[listener]?.fingerprint, fingerprint, listener)
      assert.equal(status.tls[listener]?.selfSigned, true)
    }
    await assert.rejects(httpsGet(`${svc.url}/api/v1/status`), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })
    // The certificate names localhost as well as 127.0.0.1.
    const byName = await curl([
      '-H',
      `authorization: Bearer ${svc.token}`,
      '--cacert',
      caFile,
      `${svc.url.replace('127.0.0.1', 'localhost')}/api/v1/status`,
    ])
    assert.equal(byName.code, 0)
    assert.equal((JSON.parse(byName.stdout) as { status: string }).status, 'ok')
    assert.equal((await curl([`${svc.url}/api/v1/status`])).code, 60)
  })

  it('plain HTTP to an HTTPS port is answered HttpsRequired (API) or AccountRequiresHttps (blob), never served', async () => {
    const api = await rawRequest(`${svc.url.replace('https:', 'http:')}/api/v1/status`)
    assert.equal(api.status, 400)
    assert.equal(api.code, 'HttpsRequired')
    const blob = await rawRequest(
      `${svc.listeners.blob!.replace('https:', 'http:')}/devstoreaccount1?comp=list`,
    )
    assert.equal(blob.status, 400)
    assert.match(blob.text, /<Code>AccountRequiresHttps<\/Code>/)
    assert.doesNotMatch(blob.text, /EnumerationResults/)
    const cli = await cairnAt(svc.url.replace('https:', 'http:'), ['status'], { json: false })
    assert.equal(cli.code, 2)
    assert.match(cli.stderr, /^cairn: HttpsRequired: .*https:\/\//)
  })

  it('the official blob SDK works over https with Shared Key and with https-only SAS when it trusts the CA, and refuses without', async () => {
    const trusted = await blobSdk(svc.listeners.blob!, caFile)
    assert.equal(trusted.code, 0, trusted.out)
    const answer = JSON.parse(trusted.out) as {
      url: string
      sasUrl: string
      same: boolean
      sasSame: boolean
      listed: boolean
    }
    assert.match(answer.url, /^https:\/\//)
    assert.equal(answer.same, true)
    // SAS: the https-only blob SAS wrote and read its blob; the account SAS listed the containers.
    assert.match(answer.sasUrl, /[?&]spr=https(&|$)/)
    assert.equal(answer.sasSame, true)
    assert.equal(answer.listed, true)
    const untrusted = await blobSdk(svc.listeners.blob!, undefined)
    assert.notEqual(untrusted.code, 0)
    assert.match(untrusted.out, /self[- ]signed certificate/)
  })

  it('the CLI trusts the service with --ca, CAIRN_CA or the fingerprint, and refuses none or a wrong one', async () => {
    const status = (extra: string[], env: NodeJS.ProcessEnv = {}) =>
      cairnAt(svc.url, ['status', ...extra], { env: { CAIRN_CA: '', CAIRN_FINGERPRINT: '', ...env } })
    for (const [how, r] of [
      ['--ca', await status(['--ca', caFile])],
      ['CAIRN_CA', await status([], { CAIRN_CA: caFile })],
      ['--fingerprint', await status(['--fingerprint', fingerprint])],
      [
        'lower case without colons',
        await status(['--fingerprint', fingerprint.replace(/:/g, '').toLowerCase()]),
      ],
      ['CAIRN_FINGERPRINT', await status([], { CAIRN_FINGERPRINT: fingerprint })],
    ] as const) {
      assert.equal(r.code, 0, `${how}: ${r.stderr}`)
      assert.equal(
        (JSON.parse(r.stdout) as { tls: { api: { fingerprint: string } } }).tls.api.fingerprint,
        fingerprint,
      )
    }
    const none = await status([])
    assert.equal(none.code, 7)
    assert.equal((JSON.parse(none.stderr) as { error: { code: string } }).error.code, 'TlsUntrusted')
    const wrong = `00${fingerprint.slice(2)}`
    const pinned = await cairnAt(svc.url, ['status', '--fingerprint', wrong], { json: false })
    assert.equal(pinned.code, 7)
    assert.match(pinned.stderr, /^cairn: TlsUntrusted: .*fingerprint is [0-9A-F:]+, not the pinned 00:/)
    const other = mkdtempSync(join(tmpdir(), 'cairn-ca-'))
    try {
      const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], {
        keyType: 'ec',
      })
      writeFileSync(join(other, 'ca.pem'), stranger.cert)
      const wrongCa = await status(['--ca', join(other, 'ca.pem')])
      assert.equal(wrongCa.code, 7)
      assert.match(wrongCa.stderr, /TlsUntrusted/)
      writeFileSync(join(other, 'empty.pem'), 'not a certificate\n')
      const badCa = await status(['--ca', join(other, 'empty.pem')])
      assert.equal(badCa.code, 2)
      assert.match(badCa.stderr, /holds no PEM certificate/)
    } finally {
      rmSync(other, { recursive: true, force: true })
    }
  })

  it('the CLI works through a whole disk round trip over https (JSON, raw page upload and download)', async () => {
    const env = { CAIRN_CA: caFile }
    const dir = mkdtempSync(join(tmpdir(), 'cairn-tls-disk-'))
    try {
      const image = join(dir, 'in.raw')
      const data = Buffer.alloc(4 * 1024 * 1024)
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i)
      writeFileSync(image, data)
      const imported = await cairnAt(svc.url, ['disk', 'import', 'tlsdisk', image], { env })
      assert.equal(imported.code, 0, imported.stderr)
      const exported = await cairnAt(svc.url, ['disk', 'export', 'tlsdisk', join(dir, 'out.raw')], { env })
      assert.equal(exported.code, 0, exported.stderr)
      assert.ok(readFileSync(join(dir, 'out.raw')).equals(data))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('NBD pre-shared keys in the service', () => {
  it('--nbd-tls-psk-file makes NBD take keys (status says psk), keeps HTTP plain, and a readable key file stops the start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-psk-'))
    try {
      const key = 'c0ffee'.repeat(10).slice(0, 64)
      const serverFile = join(dir, 'server.psk')
      writeFileSync(serverFile, `alice:${key} devstoreaccount1/disks/pskdisk\n`, { mode: 0o600 })
      writeFileSync(join(dir, 'alice.psk'), `alice:${key}\n`, { mode: 0o600 })
      const svc = await startService(['--nbd-tls-psk-file', serverFile])
      try {
        assert.match(svc.url, /^http:\/\//)
        assert.match(svc.listeners.nbd!, /^nbds:\/\//)
        const status = await cairnAt(svc.url, ['status'])
        assert.deepEqual((JSON.parse(status.stdout) as { tls: unknown }).tls, { nbd: { psk: true } })
        assert.equal((await cairnAt(svc.url, ['disk', 'create', 'pskdisk', '--size', '2MiB'])).code, 0)
        const port = new URL(svc.listeners.nbd!.replace('nbds:', 'http:')).port
        const uri = `nbds://alice@127.0.0.1:${port}/devstoreaccount1/disks/pskdisk?tls-psk-file=${join(dir, 'alice.psk')}`
        assert.equal((await run('nbdinfo', ['--size', uri])).stdout.trim(), String(2 * 1024 * 1024))
        await assert.rejects(
          run('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/devstoreaccount1/disks/pskdisk`]),
        )
      } finally {
        await svc.dispose()
      }
      writeFileSync(join(dir, 'open.psk'), `alice:${key}\n`)
      chmodSync(join(dir, 'open.psk'), 0o644)
      await assert.rejects(
        startService(['--nbd-tls-psk-file', join(dir, 'open.psk')], { data: join(dir, 'refused') }),
        /ConfigInvalid|others may read it/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('TLS listeners under slow clients', () => {
  it('a silent socket and a stalled TLS handshake are dropped after the header timeout, and do not hold the stop', async () => {
    const svc = await startService(['--tls', 'self-signed', '--http-header-timeout', '1'])
    try {
      for (const url of [svc.url, svc.listeners.blob!]) {
        const port = Number(new URL(url).port)
        const silent = await silentSocket('127.0.0.1', port)
        await closedWithin(silent, 5000)
        // A TLS record header and nothing after it: the handshake never completes.
        const stalled = await silentSocket('127.0.0.1', port)
        stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))
        await closedWithin(stalled, 5000)
      }
      // With the default deadline (20 s) a silent socket still lets the service stop at once.
      const slow = await startService(['--tls', 'self-signed'])
      try {
        const held = await silentSocket('127.0.0.1', Number(new URL(slow.url).port))
        const heldBlob = await silentSocket('127.0.0.1', Number(new URL(slow.listeners.blob!).port))
        const started = Date.now()
        assert.equal(await slow.stop(), 0)
        // Well before the 20 s deadline (a loose bound: a loaded machine stops a process slowly too).
        assert.ok(Date.now() - started < 15_000, `stopped in ${Date.now() - started} ms`)
        held.destroy()
        heldBlob.destroy()
      } finally {
        await slow.dispose()
      }
    } finally {
      await svc.dispose()
    }
  })
})

describe('TLS off', () => {
  it('the default service speaks plain http, and an https:// URL to it fails clearly', async () => {
    const svc = await startService()
    try {
      assert.match(svc.url, /^http:\/\//)
      assert.match(svc.listeners.nbd!, /^nbd:\/\//)
      const r = await cairnAt(svc.url.replace('http:', 'https:'), ['status'], { json: false })
      assert.equal(r.code, 5)
      assert.match(r.stderr, /^cairn: ServiceUnreachable: .*does not speak TLS \(use an http:\/\/ URL\)/)
      const status = await cairnAt(svc.url, ['status'])
      assert.deepEqual((JSON.parse(status.stdout) as { tls: unknown }).tls, {})
    } finally {
      await svc.dispose()
    }
  })
})
