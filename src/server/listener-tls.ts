import { X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import type selfsigned from 'selfsigned'
import { PskKeys } from '../nbd/index.js'
import { CairnError, type Logger, lazyRequire } from '../util/index.js'

/** The certificate maker, loaded when a listener first needs a self-signed certificate. */
const certificates = lazyRequire<typeof selfsigned>('selfsigned')

import type { ServiceConfig } from './config.js'

/** A certificate a listener serves, with its private key. */
export interface TlsIdentity {
  /** Certificate chain and private key (PEM). */
  cert: string
  key: string
  /** SHA-256 fingerprint of the (first) certificate, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string
  /** Subject and validity end, for the status. */
  subject: string
  notAfter: string
  /** The certificate file, or `self-signed` for the one made in DATA/tls. */
  source: string
}

/** The TLS of each listener; a listener without an entry speaks plain text. */
export interface ListenerTls {
  api?: TlsIdentity
  blob?: TlsIdentity
  nbd?: TlsIdentity
  /** NBD pre-shared keys: NBD clients must authenticate with one. */
  nbdPsk?: PskKeys
}

/** Days a self-signed certificate is valid. */
const SELF_SIGNED_DAYS = 825

/**
 * Loads every certificate, key and PSK file the configuration names, making the self-signed
 * certificate in DATA/tls at first start (or when it has expired). ConfigInvalid names the file.
 */
export async function loadListenerTls(config: ServiceConfig, log: Logger): Promise<ListenerTls> {
  let shared: TlsIdentity | undefined
  if (config.tlsCert !== undefined && config.tlsKey !== undefined)
    shared = readIdentity(config.tlsCert, config.tlsKey)
  else if (config.tls === 'self-signed') shared = await selfSigned(config, log)
  const own = (cert: string | undefined, key: string | undefined) =>
    cert !== undefined && key !== undefined ? readIdentity(cert, key) : shared
  const out: ListenerTls = {}
  const api = own(config.apiTlsCert, config.apiTlsKey)
  const blob = own(config.blobTlsCert, config.blobTlsKey)
  const nbd = own(config.nbdTlsCert, config.nbdTlsKey)
  if (api) out.api = api
  if (blob) out.blob = blob
  if (nbd) out.nbd = nbd
  if (config.nbdTlsPskFile !== undefined)
    out.nbdPsk = PskKeys.parse(readSecret(config.nbdTlsPskFile, 'NBD PSK file'), config.nbdTlsPskFile)
  return out
}

/** Reads a certificate and its key and checks that they belong together. */
function readIdentity(certFile: string, keyFile: string): TlsIdentity {
  let cert: string
  try {
    cert = readFileSync(certFile, 'utf8')
  } catch (err) {
    throw new CairnError('ConfigInvalid', `Cannot read the TLS certificate ${certFile}: ${why(err)}`)
  }
  const key = readSecret(keyFile, 'TLS key')
  const identity = describe(cert, key, certFile)
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    throw new CairnError(
      'ConfigInvalid',
      `Cannot use the TLS certificate ${certFile} with the key ${keyFile}: ${(err as Error).message}`,
    )
  }
  return identity
}

/** Reads a secret file, refusing one that others may read. */
function readSecret(file: string, what: string): string {
  try {
    const st = statSync(file)
    if (!st.isFile())
      throw new CairnError('ConfigInvalid', `Cannot use the ${what} ${file}: it is not a file`)
    if ((st.mode & 0o007) !== 0)
      throw new CairnError(
        'ConfigInvalid',
        `Cannot use the ${what} ${file}: others may read it (mode ${(st.mode & 0o777).toString(8)}); chmod 600 ${file}`,
      )
    return readFileSync(file, 'utf8')
  } catch (err) {
    if (err instanceof CairnError) throw err
    throw new CairnError('ConfigInvalid', `Cannot read the ${what} ${file}: ${why(err)}`)
  }
}

function describe(cert: string, key: string, source: string): TlsIdentity {
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (err) {
    throw new CairnError(
      'ConfigInvalid',
      `Cannot use the TLS certificate ${source}: it is not a PEM certificate (${(err as Error).message})`,
    )
  }
  return {
    cert,
    key,
    fingerprint: x509.fingerprint256,
    subject: x509.subject.replace(/\n/g, ', '),
    notAfter: new Date(x509.validTo).toISOString(),
    source,
  }
}

/**
 * The certificate of `--tls self-signed`: DATA/tls/cert.pem and key.pem (0600), made at first start
 * for localhost, 127.0.0.1, ::1, this machine's name and the configured hosts, valid 825 days, and
 * made again once expired. It is its own CA (basic constraints CA), so that clients that insist on a
 * CA file (qemu's `ca-cert.pem`) can trust it as one.
 */
async function selfSigned(config: ServiceConfig, log: Logger): Promise<TlsIdentity> {
  const dir = join(config.data, 'tls')
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const names = hostNames(config)
  if (existsSync(certFile) && existsSync(keyFile)) {
    const identity = readIdentity(certFile, keyFile)
    const x509 = new X509Certificate(identity.cert)
    if (Date.parse(x509.validTo) > Date.now()) {
      const missing = names.filter((n) => !covers(x509, n))
      if (missing.length > 0)
        log.warn(
          'the self-signed certificate does not name every configured host; clients that check names refuse them',
          {
            missing,
            fix: `remove ${dir} to make a new certificate (its fingerprint changes)`,
          },
        )
      return { ...identity, source: 'self-signed' }
    }
    log.warn('the self-signed certificate has expired; making a new one (its fingerprint changes)', {
      expired: x509.validTo,
    })
  }
  const now = new Date()
  const pems = await certificates().generate([{ name: 'commonName', value: 'cairn' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + SELF_SIGNED_DAYS * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: names.map((n) =>
          isIpAddress(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n },
        ),
      },
    ],
  })
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  writeFileSync(keyFile, pems.private, { mode: 0o600 })
  chmodSync(keyFile, 0o600)
  writeFileSync(certFile, pems.cert, { mode: 0o644 })
  const identity = describe(pems.cert, pems.private, 'self-signed')
  log.info('made a self-signed TLS certificate', { cert: certFile, names, fingerprint: identity.fingerprint })
  return identity
}

/** The names a self-signed certificate carries: loopback, this machine and every configured host. */
function hostNames(config: ServiceConfig): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostname().toLowerCase()])
  for (const h of [
    config.host,
    config.apiHost,
    config.blobHost,
    config.nbdHost,
    ...(config.apiAllowedHosts ?? []),
  ])
    if (h !== undefined && h !== '' && h !== '0.0.0.0' && h !== '::') names.add(h.replace(/^\[|\]$/g, ''))
  return [...names]
}

const isIpAddress = (n: string) => /^[0-9.]+$/.test(n) || n.includes(':')

function covers(x509: X509Certificate, name: string): boolean {
  return isIpAddress(name) ? x509.checkIP(name) !== undefined : x509.checkHost(name) !== undefined
}

const why = (err: unknown) => {
  const e = err as NodeJS.ErrnoException
  return e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message
}
