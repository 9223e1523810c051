// ServiceListeners: the service's three listeners, wired in one place: the management API (HTTP or
// HTTPS), the Azure blob API and the NBD server (X.509 or PSK TLS, the disk store's exports and the
// mounts of recovery points), their certificates (docs/security.md, "TLS"), where each listens, and
// their closing. CairnService starts them in steps (the API first, once every service it serves is
// open) and closes them in its own order: the API first, the blob API and NBD after the jobs.
import type { Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import type { ListenerTlsInfo } from '../api/index.js'
import { BlobApiServer, type BlobApiServerOptions } from '../blobapi/index.js'
import type { DiskStore } from '../diskstore/index.js'
import {
  DiskStoreExports,
  type NbdObserver,
  NbdServer,
  ReaderExports,
  type ReaderSource,
} from '../nbd/index.js'
import { MOUNT_EXPORT_PREFIX, type NbdEndpoint, type RecoveryPointMounts } from '../protection/index.js'
import { CairnError, httpServerLimits, type Logger, refusePlainHttp } from '../util/index.js'
import { close, listen, listenError } from './_listen.js'
import { LISTENER_DEFAULTS, type ServiceConfig } from './config.js'
import { type ListenerTls, loadListenerTls } from './listener-tls.js'

/** The management API, the blob API and the NBD server of one service. */
export class ServiceListeners {
  readonly #config: ServiceConfig
  readonly #logger: Logger
  /** The listener settings, defaults under the configured ones. */
  readonly #c: ReturnType<typeof listenerSettings>
  readonly #hosts: Record<'api' | 'blob' | 'nbd', string>
  readonly #tls: ListenerTls
  #api: Server | undefined
  #blobApi: BlobApiServer | undefined
  #nbd: NbdServer | undefined
  #nbdAt: NbdEndpoint | undefined
  readonly #urls: Record<string, string> = {}
  readonly #tlsInfo: Record<string, ListenerTlsInfo>

  private constructor(config: ServiceConfig, logger: Logger, tls: ListenerTls) {
    this.#config = config
    this.#logger = logger
    this.#tls = tls
    this.#tlsInfo = tlsInfo(tls)
    this.#c = listenerSettings(config)
    const host = config.host
    this.#hosts = {
      api: this.#c.apiHost ?? host,
      blob: this.#c.blobHost ?? host,
      nbd: this.#c.nbdHost ?? host,
    }
  }

  /** Loads (or makes) the certificates and the PSK file of the listeners; none listens yet. */
  static async open(config: ServiceConfig, logger: Logger): Promise<ServiceListeners> {
    return new ServiceListeners(
      config,
      logger,
      await loadListenerTls(config, logger.child({ component: 'tls' })),
    )
  }

  /** Where each listener is, for example `{ api: 'http://127.0.0.1:7070' }`. */
  get urls(): Record<string, string> {
    return { ...this.#urls }
  }

  /** The TLS of each listener as /api/v1/status shows it. */
  get tls(): Record<string, ListenerTlsInfo> {
    return { ...this.#tlsInfo }
  }

  /** Where NBD listens, once it does (mounts name it in their URIs). */
  get nbdEndpoint(): NbdEndpoint | undefined {
    return this.#nbdAt
  }

  /** The host names the management API answers: IP addresses and localhost always; a bound DNS name joins the configured ones. */
  get apiAllowedHosts(): string[] {
    const apiHost = this.#hosts.api
    return [...(isIP(apiHost) === 0 ? [apiHost] : []), ...(this.#c.apiAllowedHosts ?? [])]
  }

  /** The deadlines of an HTTP connection (idle keep-alive, headers). */
  get #http() {
    return {
      idleTimeoutMs: this.#c.httpIdleTimeout * 1000,
      headerTimeoutMs: this.#c.httpHeaderTimeout * 1000,
    }
  }

  /** Starts the management API on the configured port. */
  async startApi(fetch: (request: Request) => Response | Promise<Response>): Promise<void> {
    const tls = this.#tls
    const apiHost = this.#hosts.api
    // Management requests may stream a whole disk image: only their headers have a deadline.
    const apiLimits = httpServerLimits({ ...this.#http, requestTimeoutMs: 0 })
    if (tls.api === undefined) {
      this.#api = createAdaptorServer({ fetch, serverOptions: apiLimits }) as Server
    } else {
      this.#api = createAdaptorServer({
        fetch,
        createServer: createHttpsServer,
        serverOptions: {
          ...apiLimits,
          minVersion: 'TLSv1.2',
          handshakeTimeout: apiLimits.headersTimeout,
          cert: tls.api.cert,
          key: tls.api.key,
        },
      }) as Server
      refusePlainHttp(this.#api as never, plainHttpAnswer, apiLimits.headersTimeout)
    }
    this.#api.maxConnections = this.#c.apiMaxConnections
    const port = await listen(this.#api, this.#config.port, apiHost, 'management API')
    this.#urls.api = `${tls.api ? 'https' : 'http'}://${urlHost(apiHost)}:${port}`
  }

  /** Starts the Azure blob API over `store` on the configured port. */
  async startBlob(store: DiskStore, options: Pick<BlobApiServerOptions, 'geo' | 'observe'>): Promise<void> {
    const tls = this.#tls
    const blobHost = this.#hosts.blob
    this.#blobApi = new BlobApiServer(store, {
      logger: this.#logger.child({ component: 'blobapi' }),
      maxConnections: this.#c.blobMaxConnections,
      limits: this.#http,
      ...options,
      ...(tls.blob ? { tls: { cert: tls.blob.cert, key: tls.blob.key } } : {}),
    })
    const blobPort = await this.#blobApi
      .listen(this.#config.blobPort, blobHost)
      .catch((err) => Promise.reject(listenError(err, 'blob API', blobHost, this.#config.blobPort)))
    this.#urls.blob = `${tls.blob ? 'https' : 'http'}://${urlHost(blobHost)}:${blobPort}`
  }

  /**
   * Starts the NBD server on the configured port: the disks and snapshots of `diskStore`, and the
   * disks of mounted recovery points (`_mounts/…`, read-only), whose sessions end with their mount.
   */
  async startNbd(
    diskStore: DiskStore,
    mounts: RecoveryPointMounts,
    options: { observe?: NbdObserver } = {},
  ): Promise<void> {
    const tls = this.#tls
    const log = this.#logger
    const nbdHost = this.#hosts.nbd
    const c = this.#c
    const staticPsk = tls.nbdPsk
    this.#nbd = new NbdServer(new ReaderExports(new DiskStoreExports(diskStore), mountExports(mounts)), {
      logger: log.child({ component: 'nbd' }),
      maxConnections: c.nbdMaxConnections,
      ...options,
      handshakeTimeoutMs: c.nbdHandshakeTimeout * 1000,
      handshakeDeadlineMs: c.nbdHandshakeTimeout * 1000,
      ...(staticPsk
        ? {
            tls: {
              // The file's keys, and one generated per mount of a recovery point (its disks only).
              psk: {
                key: (id: string) => staticPsk.key(id) ?? mounts.pskKey(id),
                allows: (id: string, name: string) =>
                  name.startsWith(MOUNT_EXPORT_PREFIX)
                    ? mounts.pskAllows(id, name)
                    : staticPsk.allows(id, name),
              },
            },
          }
        : tls.nbd
          ? { tls: { cert: tls.nbd.cert, key: tls.nbd.key } }
          : {}),
    })
    const nbdPort = await this.#nbd
      .listen(this.#config.nbdPort, nbdHost)
      .catch((err) => Promise.reject(listenError(err, 'NBD server', nbdHost, this.#config.nbdPort)))
    this.#urls.nbd = `${this.#nbd.tls === 'off' ? 'nbd' : 'nbds'}://${urlHost(nbdHost)}:${nbdPort}`
    this.#nbdAt = { host: nbdHost, port: nbdPort, tls: this.#nbd.tls }
    // An unmounted or expired mount leaves no NBD session open.
    const nbd = this.#nbd
    mounts.onRevoke((m) => {
      const names = new Set(m.disks.map((d) => d.export))
      const closed = nbd.disconnect(
        (c) =>
          (c.exportName !== undefined && names.has(c.exportName)) ||
          (m.pskIdentity !== undefined && c.identity === m.pskIdentity),
      )
      if (closed > 0) log.info('nbd connections of an ended mount closed', { mount: m.id, closed })
    })
  }

  /**
   * Prints each certificate's fingerprint (what clients pin) once, and warns of a listener that
   * speaks plain text on an address other than loopback.
   */
  logTls(): void {
    const tls = this.#tls
    const hosts = this.#hosts
    const log = this.#logger
    const byFingerprint = new Map<string, string[]>()
    for (const name of ['api', 'blob', 'nbd'] as const) {
      const fp = name === 'nbd' && tls.nbdPsk ? undefined : tls[name]?.fingerprint
      if (fp !== undefined) byFingerprint.set(fp, [...(byFingerprint.get(fp) ?? []), name])
    }
    for (const [fingerprint, listeners] of byFingerprint) {
      const id = tls[listeners[0] as 'api']!
      log.info(`TLS certificate SHA-256 fingerprint ${fingerprint}`, {
        listeners,
        subject: id.subject,
        notAfter: id.notAfter,
        source: id.source,
      })
    }
    if (tls.nbdPsk)
      log.info('NBD clients authenticate with pre-shared keys', { identities: tls.nbdPsk.identities.length })
    for (const name of ['api', 'blob', 'nbd'] as const) {
      const plain =
        name === 'nbd' ? tls.nbd === undefined && tls.nbdPsk === undefined : tls[name] === undefined
      if (plain && !isLoopback(hosts[name]))
        log.warn(
          `the ${name} listener speaks plain text on ${hosts[name]}: anyone on the network can read it (docs/security.md, "TLS")`,
        )
    }
  }

  /** Closes the management API: in-flight requests finish first. */
  async closeApi(): Promise<void> {
    if (this.#api?.listening) await close(this.#api)
    this.#api = undefined
  }

  /** Closes the blob API. */
  async closeBlob(): Promise<void> {
    await this.#blobApi?.close()
    this.#blobApi = undefined
  }

  /** Closes the NBD server. */
  async closeNbd(): Promise<void> {
    await this.#nbd?.close()
    this.#nbd = undefined
  }
}

/** The mounts of recovery points as read-only NBD exports (`_mounts/…`), each disk's reader shared. */
function mountExports(mounts: RecoveryPointMounts): ReaderSource {
  return {
    owns: (name) => name.startsWith(MOUNT_EXPORT_PREFIX),
    async open(name) {
      const found = mounts.findExport(name)
      if (!found) {
        throw new CairnError(
          'NbdExportNotFound',
          `Cannot open NBD export "${name}": no live mount has it (expired or unmounted)`,
        )
      }
      const { mount, disk } = found
      return {
        disk: await mounts.openDisk(mount, disk),
        description: `disk ${disk.name} of recovery point ${mount.point} of VM ${mount.vm} (from the ${disk.source.from === 'Vault' ? 'vault' : 'snapshot'}), read-only until ${mount.expiresAt}`,
      }
    },
  }
}

/** The listener settings of `config`, defaults under the configured ones. */
function listenerSettings(config: ServiceConfig) {
  return { ...LISTENER_DEFAULTS, ...definedOnly(config) }
}

/** The keys of `o` whose value is not undefined (so defaults spread under them survive). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** The TLS of each listener as /api/v1/status shows it. */
function tlsInfo(tls: ListenerTls): Record<string, ListenerTlsInfo> {
  const out: Record<string, ListenerTlsInfo> = {}
  for (const name of ['api', 'blob', 'nbd'] as const) {
    const id = tls[name]
    if (name === 'nbd' && tls.nbdPsk) out.nbd = { psk: true }
    else if (id)
      out[name] = {
        fingerprint: id.fingerprint,
        notAfter: id.notAfter,
        ...(id.source === 'self-signed' ? { selfSigned: true } : {}),
      }
  }
  return out
}

/** The management API's answer to plain HTTP on its HTTPS port. */
const plainHttpAnswer = {
  status: 400,
  reason: 'Bad Request',
  contentType: 'application/json',
  body: JSON.stringify({
    error: {
      code: 'HttpsRequired',
      message: 'Cannot answer plain HTTP: this port speaks HTTPS only; use an https:// URL',
    },
  }),
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.')

/** A host as it appears in a URL: IPv6 addresses in brackets. */
const urlHost = (host: string) => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host)
