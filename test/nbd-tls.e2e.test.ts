// NBD over TLS (NBD_OPT_STARTTLS, FORCEDTLS) against the real Debian clients: nbdinfo, nbdcopy and
// qemu-img with X.509 certificates and with pre-shared keys (tls-psk-file).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import selfsigned from 'selfsigned'
import { type DiskRef, LogDiskStore } from '../src/diskstore/index.js'
import * as P from '../src/nbd/_protocol.js'
import { RawClient } from '../src/nbd/_raw-client.js'
import { DiskStoreExports, NbdServer, PskKeys } from '../src/nbd/index.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const OS: DiskRef = { account: 'acct', container: 'vms', disk: 'os' }
const DATA: DiskRef = { account: 'acct', container: 'vms', disk: 'data' }
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

/** Runs a client; resolves with its exit status and output instead of throwing. */
async function attempt(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { env, timeout: 60_000 })
    return { code: 0, out: stdout + stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** A CA and a server certificate it signed for localhost and 127.0.0.1, as an operator would have. */
async function certificates(): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'Test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  })
  const server = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  })
  return { ca: ca.cert, cert: server.cert, key: server.private }
}

/** Reads `n` bytes from a socket. */
function readExactly(socket: Socket, n: number): Promise<Buffer> {
  if (n === 0) return Promise.resolve(Buffer.alloc(0))
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0)
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c])
      if (got.length >= n) {
        socket.off('data', onData)
        socket.pause()
        if (got.length > n) socket.unshift(got.subarray(n))
        resolve(got.subarray(0, n))
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.resume()
  })
}

/** Sends one option over `socket` and reads one reply header and body. */
async function option(
  socket: Socket,
  type: number,
  data = Buffer.alloc(0),
): Promise<{ type: number; text: string }> {
  const h = Buffer.alloc(16)
  h.writeBigUInt64BE(P.IHAVEOPT, 0)
  h.writeUInt32BE(type, 8)
  h.writeUInt32BE(data.length, 12)
  socket.write(Buffer.concat([h, data]))
  const reply = await readExactly(socket, 20)
  const body = await readExactly(socket, reply.readUInt32BE(16))
  return { type: reply.readUInt32BE(12), text: body.toString() }
}

describe('NBD over TLS with real clients', () => {
  let dir: string
  let store: LogDiskStore
  let x509: NbdServer
  let psk: NbdServer
  let x509Port: number
  let pskPort: number
  let certDir: string
  let ca: string
  /** Client key files: alice may open acct/vms/os only, bob every export; wrong has alice's name and a bad key. */
  let aliceFile: string
  let bobFile: string
  let wrongFile: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-tls-'))
    store = await LogDiskStore.open(join(dir, 'store'))
    await store.createAccount(OS.account)
    await store.createContainer(OS.account, OS.container)
    await store.createDisk(OS, { size: 16 * MiB })
    await store.createDisk(DATA, { size: 16 * MiB })
    await store.writePages(OS, 0, Buffer.alloc(MiB, 0x5a))
    const pems = await certificates()
    ca = pems.ca
    // The folder layout GnuTLS clients read (qemu's tls-creds-x509 dir=, libnbd's tls-certificates=).
    certDir = join(dir, 'client-x509')
    mkdirSync(certDir)
    writeFileSync(join(certDir, 'ca-cert.pem'), pems.ca)
    x509 = new NbdServer(new DiskStoreExports(store), { tls: { cert: pems.cert, key: pems.key } })
    x509Port = await x509.listen(0)
    const alice = randomBytes(32).toString('hex')
    const bob = randomBytes(32).toString('hex')
    const keys = PskKeys.parse(`alice:${alice} acct/vms/os\nbob:${bob}\n`, 'test')
    psk = new NbdServer(new DiskStoreExports(store), { tls: { psk: keys } })
    pskPort = await psk.listen(0)
    aliceFile = join(dir, 'alice.psk')
    bobFile = join(dir, 'bob.psk')
    wrongFile = join(dir, 'wrong.psk')
    writeFileSync(aliceFile, `alice:${alice}\n`, { mode: 0o600 })
    writeFileSync(bobFile, `bob:${bob}\n`, { mode: 0o600 })
    writeFileSync(wrongFile, `alice:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
  })
  after(async () => {
    try {
      await x509.close()
      await psk.close()
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  const x509Uri = (name: string, certs = certDir) =>
    `nbds://localhost:${x509Port}/${name}?tls-certificates=${certs}`
  const pskUri = (user: string, name: string, file: string) =>
    `nbds://${user}@localhost:${pskPort}/${name}?tls-psk-file=${file}`

  it('X.509: nbdinfo lists and describes exports with the CA, and nbdcopy copies an image in and out', async () => {
    const list = await attempt('nbdinfo', ['--list', '--json', x509Uri('')])
    assert.equal(list.code, 0, list.out)
    const names = (JSON.parse(list.out) as { exports: { 'export-name': string }[] }).exports.map(
      (e) => e['export-name'],
    )
    assert.ok(names.includes('acct/vms/os') && names.includes('acct/vms/data'), names.join())
    const input = join(dir, 'x509-in.raw')
    const output = join(dir, 'x509-out.raw')
    writeFileSync(input, randomBytes(3 * MiB))
    const copyIn = await attempt('nbdcopy', [input, x509Uri('acct/vms/data')])
    assert.equal(copyIn.code, 0, copyIn.out)
    const copyOut = await attempt('nbdcopy', [x509Uri('acct/vms/data'), output])
    assert.equal(copyOut.code, 0, copyOut.out)
    assert.equal(
      createHash('sha256')
        .update(readFileSync(output).subarray(0, 3 * MiB))
        .digest('hex'),
      sha256(input),
    )
  })

  it('X.509: qemu-img reads an export through tls-creds-x509 with the CA folder', async () => {
    const r = await attempt('qemu-img', [
      'info',
      '--output=json',
      '--object',
      `tls-creds-x509,id=tls0,endpoint=client,dir=${certDir}`,
      '--image-opts',
      `driver=nbd,host=localhost,port=${x509Port},export=acct/vms/os,tls-creds=tls0`,
    ])
    assert.equal(r.code, 0, r.out)
    assert.equal((JSON.parse(r.out) as { 'virtual-size': number })['virtual-size'], 16 * MiB)
  })

  it('X.509: a client that does not trust the certificate fails the handshake', async () => {
    const stranger = join(dir, 'stranger')
    mkdirSync(stranger)
    writeFileSync(join(stranger, 'ca-cert.pem'), (await certificates()).ca)
    const r = await attempt('nbdinfo', ['--size', x509Uri('acct/vms/os', stranger)])
    assert.notEqual(r.code, 0)
    assert.match(r.out, /certificate verification|verif/i)
  })

  it('TLS is required: plain nbdinfo and qemu-img are refused with the reason, and no option is answered in clear', async () => {
    const plain = await attempt('nbdinfo', ['--size', `nbd://localhost:${x509Port}/acct/vms/os`])
    assert.notEqual(plain.code, 0)
    const qemu = await attempt('qemu-img', ['info', `nbd://localhost:${x509Port}/acct/vms/os`])
    assert.notEqual(qemu.code, 0)
    assert.match(qemu.out, /TLS is required/)
    // Byte by byte: every option but STARTTLS gets NBD_REP_ERR_TLS_REQD, and no export is listed.
    const raw = await RawClient.handshake(x509Port)
    for (const type of [P.OPT_LIST, P.OPT_STRUCTURED_REPLY, P.OPT_INFO, P.OPT_GO]) {
      const data = type === P.OPT_INFO || type === P.OPT_GO ? Buffer.from([0, 0, 0, 0, 0, 0]) : undefined
      const replies = await raw.option(type, data)
      assert.deepEqual(
        replies.map((r) => r.type),
        [P.REP_ERR_TLS_REQD],
        `option ${type}`,
      )
    }
    // NBD_OPT_EXPORT_NAME has no error reply: the server hangs up.
    const name = Buffer.from('acct/vms/os')
    const h = Buffer.alloc(16)
    h.writeBigUInt64BE(P.IHAVEOPT, 0)
    h.writeUInt32BE(P.OPT_EXPORT_NAME, 8)
    h.writeUInt32BE(name.length, 12)
    raw.write(Buffer.concat([h, name]))
    await raw.ended
  })

  it('STARTTLS is acknowledged once; inside TLS a second one is invalid and negotiation goes on', async () => {
    const socket = netConnect(x509Port, '127.0.0.1')
    try {
      const greeting = await readExactly(socket, 18)
      assert.equal(greeting.readBigUInt64BE(0), P.NBDMAGIC)
      socket.write(Buffer.from([0, 0, 0, P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES]))
      assert.equal((await option(socket, P.OPT_STARTTLS, Buffer.from('x'))).type, P.REP_ERR_INVALID)
      assert.equal((await option(socket, P.OPT_STARTTLS)).type, P.REP_ACK)
      const secure = tlsConnect({ socket, ca, servername: 'localhost' })
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve)
        secure.once('error', reject)
      })
      assert.equal(secure.authorized, true)
      assert.equal((await option(secure, P.OPT_STARTTLS)).type, P.REP_ERR_INVALID)
      assert.equal((await option(secure, P.OPT_STRUCTURED_REPLY)).type, P.REP_ACK)
      secure.destroy()
    } finally {
      socket.destroy()
    }
  })

  it('PSK: nbdinfo, nbdcopy and qemu-img connect with their key file, and nbdcopy round-trips an image', async () => {
    const info = await attempt('nbdinfo', ['--size', pskUri('alice', 'acct/vms/os', aliceFile)])
    assert.equal(info.code, 0, info.out)
    assert.equal(info.out.trim(), String(16 * MiB))
    const input = join(dir, 'psk-in.raw')
    const output = join(dir, 'psk-out.raw')
    writeFileSync(input, randomBytes(2 * MiB))
    const copyIn = await attempt('nbdcopy', [input, pskUri('bob', 'acct/vms/data', bobFile)])
    assert.equal(copyIn.code, 0, copyIn.out)
    const copyOut = await attempt('nbdcopy', [pskUri('bob', 'acct/vms/data', bobFile), output])
    assert.equal(copyOut.code, 0, copyOut.out)
    assert.equal(
      createHash('sha256')
        .update(readFileSync(output).subarray(0, 2 * MiB))
        .digest('hex'),
      sha256(input),
    )
    // qemu reads keys.psk in the folder of its tls-creds-psk object.
    const qemuDir = join(dir, 'qemu-psk')
    mkdirSync(qemuDir)
    writeFileSync(join(qemuDir, 'keys.psk'), readFileSync(aliceFile), { mode: 0o600 })
    const qemu = await attempt('qemu-img', [
      'info',
      '--output=json',
      '--object',
      `tls-creds-psk,id=tls0,endpoint=client,username=alice,dir=${qemuDir}`,
      '--image-opts',
      `driver=nbd,host=localhost,port=${pskPort},export=acct/vms/os,tls-creds=tls0`,
    ])
    assert.equal(qemu.code, 0, qemu.out)
    assert.equal((JSON.parse(qemu.out) as { 'virtual-size': number })['virtual-size'], 16 * MiB)
  })

  it('PSK: GnuTLS clients held to TLS 1.2 connect too', async () => {
    const priorities = join(dir, 'tls12.conf')
    writeFileSync(priorities, '[overrides]\ndisabled-version = tls1.3\n')
    const r = await attempt('nbdinfo', ['--size', pskUri('alice', 'acct/vms/os', aliceFile)], {
      ...process.env,
      GNUTLS_SYSTEM_PRIORITY_FILE: priorities,
    })
    assert.equal(r.code, 0, r.out)
  })

  it('PSK: a wrong key, an unknown identity, a certificate-only client and a plain client are refused', async () => {
    const wrong = await attempt('nbdinfo', ['--size', pskUri('alice', 'acct/vms/os', wrongFile)])
    assert.notEqual(wrong.code, 0)
    assert.match(wrong.out, /TLS|handshake/i)
    const carol = join(dir, 'carol.psk')
    writeFileSync(carol, `carol:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
    const unknown = await attempt('nbdinfo', ['--size', pskUri('carol', 'acct/vms/os', carol)])
    assert.notEqual(unknown.code, 0)
    // The certificate is not offered where keys are required: a certificate alone gets nothing.
    const certOnly = await attempt('nbdinfo', [
      '--size',
      `nbds://localhost:${pskPort}/acct/vms/os?tls-certificates=${certDir}`,
    ])
    assert.notEqual(certOnly.code, 0)
    const plain = await attempt('nbdinfo', ['--size', `nbd://localhost:${pskPort}/acct/vms/os`])
    assert.notEqual(plain.code, 0)
  })

  it("PSK: an identity limited to named exports lists and opens only those; others' exports are refused", async () => {
    const list = await attempt('nbdinfo', ['--list', '--json', pskUri('alice', '', aliceFile)])
    assert.equal(list.code, 0, list.out)
    const names = (JSON.parse(list.out) as { exports: { 'export-name': string }[] }).exports.map(
      (e) => e['export-name'],
    )
    assert.deepEqual(names, ['acct/vms/os'])
    const denied = await attempt('nbdinfo', ['--size', pskUri('alice', 'acct/vms/data', aliceFile)])
    assert.notEqual(denied.code, 0)
    assert.match(denied.out, /does not open it|not permitted|denied|policy/i)
    const copy = await attempt('nbdcopy', [
      join(dir, 'psk-in.raw'),
      pskUri('alice', 'acct/vms/data', aliceFile),
    ])
    assert.notEqual(copy.code, 0)
    const bob = await attempt('nbdinfo', ['--list', '--json', pskUri('bob', '', bobFile)])
    const bobNames = (JSON.parse(bob.out) as { exports: { 'export-name': string }[] }).exports.map(
      (e) => e['export-name'],
    )
    assert.ok(bobNames.includes('acct/vms/data'), bobNames.join())
  })
})
