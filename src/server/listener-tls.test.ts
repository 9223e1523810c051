import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import selfsigned from 'selfsigned'
import { silentLogger } from '../util/index.js'
import { resolveConfig } from './config.js'
import { loadListenerTls } from './listener-tls.js'

/** Runs `body` with a fresh temporary folder, removed afterwards. */
async function inFolder(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-tls-'))
  try {
    await body(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A certificate and its key written to DIR/NAME.pem and DIR/NAME.key (0600). */
async function certificate(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
  })
  const cert = join(dir, `${name}.pem`)
  const key = join(dir, `${name}.key`)
  writeFileSync(cert, pems.cert)
  writeFileSync(key, pems.private, { mode: 0o600 })
  return { cert, key }
}

const configFailure = (why: RegExp) => (err: Error & { code?: string }) =>
  err.code === 'ConfigInvalid' && why.test(err.message)

describe('listener TLS', () => {
  it('--tls self-signed makes one certificate in DATA/tls (key 0600, loopback and configured names) and reuses it', async () => {
    await inFolder(async (dir) => {
      const config = resolveConfig({
        flags: {
          data: dir,
          tls: 'self-signed',
          'blob-host': '127.0.0.9',
          'api-allowed-host': ['cairn.example'],
        },
      })
      const first = await loadListenerTls(config, silentLogger)
      assert.ok(first.api && first.blob && first.nbd)
      assert.equal(first.api.fingerprint, first.nbd.fingerprint)
      const x509 = new X509Certificate(readFileSync(join(dir, 'tls', 'cert.pem')))
      assert.equal(first.api.fingerprint, x509.fingerprint256)
      assert.equal(statSync(join(dir, 'tls', 'key.pem')).mode & 0o777, 0o600)
      for (const ip of ['127.0.0.1', '::1', '127.0.0.9']) assert.ok(x509.checkIP(ip), ip)
      for (const host of ['localhost', 'cairn.example']) assert.ok(x509.checkHost(host), host)
      assert.equal(x509.ca, true)
      // Pinned fingerprints survive restarts: the second start reads the same certificate.
      const second = await loadListenerTls(config, silentLogger)
      assert.equal(second.api?.fingerprint, first.api.fingerprint)
    })
  })

  it('a listener certificate wins over the shared one, and the others keep the shared one', async () => {
    await inFolder(async (dir) => {
      const shared = await certificate(dir, 'shared')
      const blob = await certificate(dir, 'blob')
      const config = resolveConfig({
        flags: {
          data: dir,
          'tls-cert': shared.cert,
          'tls-key': shared.key,
          'blob-tls-cert': blob.cert,
          'blob-tls-key': blob.key,
        },
      })
      const tls = await loadListenerTls(config, silentLogger)
      const fp = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256
      assert.equal(tls.api?.fingerprint, fp(shared.cert))
      assert.equal(tls.nbd?.fingerprint, fp(shared.cert))
      assert.equal(tls.blob?.fingerprint, fp(blob.cert))
      // Only the API has a certificate: the other listeners stay plain.
      const apiOnly = await loadListenerTls(
        resolveConfig({ flags: { data: dir, 'api-tls-cert': blob.cert, 'api-tls-key': blob.key } }),
        silentLogger,
      )
      assert.deepEqual(Object.keys(apiOnly), ['api'])
    })
  })

  it('refuses a key others may read, a key of another certificate, a missing file and a half pair', async () => {
    await inFolder(async (dir) => {
      const a = await certificate(dir, 'a')
      const b = await certificate(dir, 'b')
      const load = (flags: Record<string, string>) =>
        loadListenerTls(resolveConfig({ flags: { data: dir, ...flags } }), silentLogger)
      chmodSync(a.key, 0o644)
      await assert.rejects(
        load({ 'tls-cert': a.cert, 'tls-key': a.key }),
        configFailure(/others may read it \(mode 644\); chmod 600/),
      )
      chmodSync(a.key, 0o600)
      await assert.rejects(
        load({ 'tls-cert': a.cert, 'tls-key': b.key }),
        configFailure(/Cannot use the TLS certificate .*a\.pem with the key .*b\.key/),
      )
      await assert.rejects(
        load({ 'tls-cert': join(dir, 'none.pem'), 'tls-key': a.key }),
        configFailure(/Cannot read the TLS certificate .*none\.pem: no such file/),
      )
      assert.throws(
        () => resolveConfig({ flags: { data: dir, 'nbd-tls-cert': a.cert } }),
        configFailure(/--nbd-tls-cert alone/),
      )
      assert.throws(
        () =>
          resolveConfig({ flags: { data: dir, tls: 'self-signed', 'tls-cert': a.cert, 'tls-key': a.key } }),
        configFailure(/self-signed with --tls-cert/),
      )
      assert.throws(
        () => resolveConfig({ flags: { data: dir, tls: 'on' } }),
        configFailure(/use self-signed/),
      )
      // The environment and the config file name the same settings.
      const env = resolveConfig({
        env: { CAIRN_DATA: dir, CAIRN_BLOB_TLS_CERT: a.cert, CAIRN_BLOB_TLS_KEY: a.key },
      })
      assert.equal(env.blobTlsCert, a.cert)
      writeFileSync(
        join(dir, 'cairn.json'),
        JSON.stringify({ tls: 'self-signed', nbdTlsPskFile: 'keys.psk' }),
      )
      const file = resolveConfig({ flags: { data: dir } })
      assert.equal(file.tls, 'self-signed')
      assert.match(file.nbdTlsPskFile ?? '', /keys\.psk$/)
    })
  })

  it('reads the NBD PSK file, refusing one others may read', async () => {
    await inFolder(async (dir) => {
      const psk = join(dir, 'keys.psk')
      writeFileSync(psk, `alice:${'ab'.repeat(32)}\n`, { mode: 0o640 })
      chmodSync(psk, 0o640)
      const tls = await loadListenerTls(
        resolveConfig({ flags: { data: dir, 'nbd-tls-psk-file': psk } }),
        silentLogger,
      )
      assert.deepEqual(tls.nbdPsk?.identities, ['alice'])
      assert.equal(tls.nbd, undefined)
      chmodSync(psk, 0o604)
      await assert.rejects(
        loadListenerTls(resolveConfig({ flags: { data: dir, 'nbd-tls-psk-file': psk } }), silentLogger),
        configFailure(/NBD PSK file .* others may read it/),
      )
    })
  })
})
